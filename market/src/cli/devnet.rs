//! A throwaway market for demos and tests: a [`LocalChain`] with the
//! `BandwidthMarket` deployed, funded key files, and a TCP forwarder that
//! makes the node (which listens on 127.0.0.1 only) reachable on another
//! address, e.g. a bridge inside a network namespace. Never for production.

use flowshield_chain::alloy::primitives::{Address, U256};
use flowshield_chain::{governance, LocalChain, MarketClient, MarketParams};
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

/// Seconds governance changes wait on the demo chain's timelock.
pub const DEMO_TIMELOCK_DELAY: u64 = 86_400;

/// Deploys a market on `chain`, owned by a timelock for which dev account 0
/// proposes and executes.
pub async fn deploy(
    chain: &LocalChain,
    params: &MarketParams,
) -> Result<MarketClient, ChainSetupError> {
    let owner = chain.dev_signer(0).ok_or_else(|| ChainSetupError::Field {
        field: "dev accounts",
        reason: "the local chain has none".into(),
    })?;
    let proposer = owner.address();
    let provider = chain.provider_for(owner)?;
    let (market, _timelock) =
        governance::deploy_market(provider, params, DEMO_TIMELOCK_DELAY, proposer).await?;
    Ok(market)
}

/// Creates a funded account per name, writes `dir/<name>.key` (0600) and
/// stakes it as a verifier: the minimum plus 100 report bonds.
pub async fn staked_verifiers(
    chain: &LocalChain,
    market: &MarketClient,
    dir: &Path,
    names: &[String],
) -> Result<Vec<(String, Address)>, ChainSetupError> {
    let params = market.params().await?;
    let stake = params.min_verifier_stake + params.report_bond * U256::from(100u64);
    let mut out = Vec::new();
    for name in names {
        let signer = chain.funded_signer().await?;
        write_key_file(&dir.join(format!("{name}.key")), &signer)?;
        let as_verifier = market.with_provider(chain.provider_for(signer.clone())?);
        as_verifier.join_verifiers(stake).await?;
        out.push((name.clone(), signer.address()));
    }
    Ok(out)
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
