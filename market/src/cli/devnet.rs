//! A throwaway market for demos and tests: a [`LocalChain`] with the
//! `BandwidthMarket` deployed, funded key files, and a TCP forwarder that
//! makes the node (which listens on 127.0.0.1 only) reachable on another
//! address, e.g. a bridge inside a network namespace. Never for production.

use flowshield_chain::alloy::primitives::Address;
use flowshield_chain::{LocalChain, MarketClient, MarketParams};
use flowshield_market::chain::{write_key_file, ChainSetupError};
use std::net::SocketAddr;
use std::path::Path;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

/// Market parameters for sessions measured in seconds: accept within a
/// minute, 5 s close grace (a client whose provider died is refunded fast).
pub fn demo_params() -> MarketParams {
    MarketParams {
        accept_timeout: 60,
        close_grace: 5,
        ..MarketParams::default()
    }
}

/// Deploys a market on `chain` (owner: dev account 0).
pub async fn deploy(
    chain: &LocalChain,
    params: &MarketParams,
) -> Result<MarketClient, ChainSetupError> {
    let owner = chain.dev_signer(0).ok_or_else(|| ChainSetupError::Field {
        field: "dev accounts",
        reason: "the local chain has none".into(),
    })?;
    Ok(MarketClient::deploy(chain.provider_for(owner)?, params).await?)
}

/// Creates a funded account per name and writes `dir/<name>.key` (0600).
pub async fn funded_key_files(
    chain: &LocalChain,
    dir: &Path,
    names: &[String],
) -> Result<Vec<(String, Address)>, ChainSetupError> {
    let mut out = Vec::new();
    for name in names {
        let signer = chain.funded_signer().await?;
        write_key_file(&dir.join(format!("{name}.key")), &signer)?;
        out.push((name.clone(), signer.address()));
    }
    Ok(out)
}

/// Forwards every connection accepted on `listener` to `target`. Aborting
/// the returned task also ends the connections it forwards.
pub fn forward(listener: TcpListener, target: SocketAddr) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut connections = JoinSet::new();
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let Ok((mut inbound, _)) = accepted else { break };
                    connections.spawn(async move {
                        if let Ok(mut outbound) = TcpStream::connect(target).await {
                            let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                        }
                    });
                }
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
    })
}

/// The `host:port` of an `http://host:port` URL.
pub fn url_addr(url: &str) -> Option<SocketAddr> {
    url.strip_prefix("http://")?
        .trim_end_matches('/')
        .parse()
        .ok()
}
