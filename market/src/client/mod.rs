//! The client role: find a provider, buy bandwidth on chain, bring up the
//! client's own `flowshield` interface with the provider as peer, pay with
//! vouchers as traffic flows, fail over when the provider goes silent, and
//! settle on `disconnect`.
//!
//! The client talks to its owner through JSON lines on stdout, one
//! [`ClientEvent`] each (`connected` with `purchase_to_first_packet_ms`,
//! `failover`, `abandoned_order_closed`, `disconnected`), and takes `disconnect` on a
//! unix control socket (0600, see [`control`]) or on SIGTERM/Ctrl-C.
//!
//! Voucher rule ([`pay`]; the provider's check is in
//! [`crate::session::pricing`]): every `voucher_secs` the client signs
//! `max(due, last + 1 wei)`, capped at the offer's price of its own
//! counters plus 1 wei a second, and at the escrow, where `due` prices its
//! own UAPI rx + tx of the provider peer and the time since `Connected`.
//! The extra wei keeps vouchers strictly increasing, so an idle tunnel
//! still tells the provider the client is alive. A refusal meaning the
//! provider holds no session makes the client fail over.
//!
//! Trust: before the tunnel is configured, [`checks`] verifies the
//! provider's `Connected` against the chain (order Active with the chosen
//! provider, WireGuard key as registered) and its routes against the
//! offer's tunnel subnet and the client's underlay ([`underlay`]).
//!
//! Layout: this file checks the configuration and runs the loop;
//! [`session`] finds a provider, opens the order and pays for it;
//! [`settle`] ends it on chain.

pub mod checks;
pub mod config;
pub mod control;
pub mod discovery;
pub mod pay;
mod session;
mod settle;
pub mod tunnel;
pub mod underlay;

use crate::chain::ChainSetupError;
use crate::identity;
use crate::net::{self, NetConfig};
use crate::wire::client::{ClientEvent, Disconnected};
use crate::wire::session::parse_u256;
use config::ClientFile;
use discovery::Wanted;
use flowshield_chain::alloy::signers::local::PrivateKeySigner;
use flowshield_chain::alloy::sol_types::Eip712Domain;
use flowshield_chain::MarketClient;
use flowshield_proto::{PeerId, Region};
use session::{establish, pay_loop, SessionEnd};
use settle::{close_abandoned, disconnect};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, Mutex};
use tokio::task::JoinSet;
use tracing::Instrument;

/// How long to wait for an order to be settled on chain.
pub(crate) const SETTLE_TIMEOUT: Duration = Duration::from_secs(120);

/// Why the client stopped.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error(transparent)]
    Chain(#[from] ChainSetupError),
    #[error("chain: {0}")]
    ChainCall(String),
    #[error("{field}: {reason}")]
    Field { field: &'static str, reason: String },
    #[error(transparent)]
    Net(#[from] net::NetError),
    #[error("identity: {0}")]
    Identity(String),
    #[error(transparent)]
    Discovery(#[from] discovery::DiscoveryError),
    #[error("provider {peer} is not trusted: {error}")]
    Distrusted {
        peer: PeerId,
        error: checks::Distrust,
    },
    #[error("provider {peer} refused the session: {reason}")]
    Refused { peer: PeerId, reason: String },
    #[error(transparent)]
    Tunnel(#[from] tunnel::TunnelError),
    #[error("control socket {path}: {reason}")]
    Control { path: String, reason: String },
    #[error("gave up after {0} attempts to connect to a provider")]
    GaveUp(u32),
}

pub(super) fn chain_err(what: &str) -> impl Fn(flowshield_chain::ChainError) -> ClientError + '_ {
    move |e| ClientError::ChainCall(format!("{what}: {e}"))
}

/// Prints one JSON event line on stdout.
pub fn emit(event: &ClientEvent) {
    use std::io::Write;
    let Ok(line) = serde_json::to_string(event) else {
        return;
    };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// What the command line may override.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub region: Option<String>,
    pub max_price_per_gib_wei: Option<String>,
}

/// The client's shared chain access: transactions of one account go one at
/// a time so their nonces never collide.
#[derive(Clone)]
pub(crate) struct Chain {
    pub(crate) market: MarketClient,
    pub(crate) tx_lock: Arc<Mutex<()>>,
    pub(crate) signer: PrivateKeySigner,
    pub(crate) domain: Eip712Domain,
}

/// Runs the client until it is told to disconnect; returns the
/// `disconnected` summary.
pub async fn run(
    file: ClientFile,
    overrides: Overrides,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<Disconnected, ClientError> {
    let field = |field: &'static str, reason: String| ClientError::Field { field, reason };
    let escrow = parse_u256("escrow_wei", &file.escrow_wei)
        .map_err(|e| field("escrow_wei", e.to_string()))?;
    let region = overrides
        .region
        .or(file.region.clone())
        .map(|r| Region::new(&r).map_err(|e| field("region", e.to_string())))
        .transpose()?;
    let max_price = match overrides
        .max_price_per_gib_wei
        .or(file.max_price_per_gib_wei.clone())
    {
        Some(text) => text.trim().parse::<u128>().map_err(|_| {
            field(
                "max_price_per_gib_wei",
                format!("'{text}' is not a decimal number of wei"),
            )
        })?,
        None => u128::MAX,
    };
    let (signer, market) = file.chain.connect().await?;
    let domain = market
        .eip712_domain()
        .await
        .map_err(chain_err("reading the market"))?;
    let chain = Chain {
        market,
        tx_lock: Arc::new(Mutex::new(())),
        signer,
        domain,
    };
    let keypair = identity::load_or_create(&file.identity_file)
        .map_err(|e| ClientError::Identity(e.to_string()))?;
    let mut net_config = NetConfig::new(keypair);
    net_config.listen = if file.listen.is_empty() {
        vec!["/ip4/0.0.0.0/tcp/0".parse().expect("valid multiaddr")]
    } else {
        parse_addrs(&file.listen, "listen")?
    };
    net_config.bootstrap = parse_addrs(&file.bootstrap, "bootstrap")?;
    let (net, mut net_events) = net::spawn(net_config).await?;
    // Every task started here is owned by `tasks` and stopped before
    // `run` returns.
    let mut tasks = JoinSet::new();
    // The client answers no requests; drain events so the network never blocks.
    tasks.spawn(async move { while net_events.recv().await.is_some() {} });

    let (control_tx, mut control_rx) = mpsc::channel(4);
    let control = match control::serve(&file.control_socket(), control_tx.clone()) {
        Ok(control) => control,
        Err(e) => {
            tasks.shutdown().await;
            net.shutdown().await;
            return Err(e);
        }
    };
    tasks.spawn(async move {
        shutdown.await;
        let _ = control_tx.send(None).await;
    });

    let mut wanted = Wanted {
        region,
        max_price_per_gib_wei: max_price,
        exclude: HashSet::new(),
    };
    // Orders of lost providers being closed on chain.
    let mut closing: JoinSet<()> = JoinSet::new();
    let mut failover_from: Option<(PeerId, Instant)> = None;
    let result = loop {
        let mut session =
            match establish(&file, &chain, &net, &mut wanted, escrow, &mut closing).await {
                Ok(s) => s,
                Err(e) => break Err(e),
            };
        if let Some((from, since)) = failover_from.take() {
            emit(&ClientEvent::FailoverDone {
                from_provider: from,
                to_provider: session.offer.provider_peer_id,
                order_id: session.order_id,
                failover_ms: since.elapsed().as_millis() as u64,
            });
        }
        let span = tracing::info_span!("session", order = %session.order_id, provider = %session.offer.provider_peer_id);
        let end = pay_loop(&file, &chain, &net, &mut session, escrow, &mut control_rx)
            .instrument(span.clone())
            .await;
        match end {
            SessionEnd::ProviderLost(reason) => {
                let peer = session.offer.provider_peer_id;
                emit(&ClientEvent::Failover {
                    from_provider: peer,
                    order_id: session.order_id,
                    reason,
                });
                wanted.exclude.insert(peer);
                failover_from = Some((peer, Instant::now()));
                let _ =
                    tunnel::flowshield(&file.flowshield_bin, "down", &file.wg_quick_path()).await;
                closing.spawn(
                    close_abandoned(chain.clone(), session.order_id, escrow).instrument(span),
                );
            }
            SessionEnd::Disconnect(reply) => {
                let summary = disconnect(&file, &chain, &net, &mut session, escrow)
                    .instrument(span)
                    .await;
                // Let lost providers' orders finish closing, within bounds.
                let _ = tokio::time::timeout(SETTLE_TIMEOUT, async {
                    while closing.join_next().await.is_some() {}
                })
                .await;
                let event = match &summary {
                    Ok(s) => ClientEvent::Disconnected(s.clone()),
                    Err(e) => ClientEvent::Error {
                        error: e.to_string(),
                    },
                };
                emit(&event);
                if let Some(reply) = reply {
                    if reply.send(event).is_ok() {
                        // The control handler writes the answer on its own
                        // task; give it time before the runtime stops.
                        tokio::time::sleep(Duration::from_millis(300)).await;
                    }
                }
                break summary;
            }
        }
    };
    control.abort();
    let _ = control.await;
    closing.shutdown().await;
    tasks.shutdown().await;
    let _ = std::fs::remove_file(file.control_socket());
    net.shutdown().await;
    result
}

fn parse_addrs(
    texts: &[String],
    what: &'static str,
) -> Result<Vec<libp2p::Multiaddr>, ClientError> {
    texts
        .iter()
        .map(|t| {
            t.parse().map_err(|_| ClientError::Field {
                field: what,
                reason: format!("'{t}' is not a multiaddr"),
            })
        })
        .collect()
}
