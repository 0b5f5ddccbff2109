//! The client role: find a provider, buy bandwidth on chain, bring up the
//! client's own `flowshield` interface with the provider as peer, pay with
//! vouchers as traffic flows, fail over when the provider goes silent, and
//! settle on `disconnect`.
//!
//! The client talks to its owner through JSON lines on stdout, one per
//! event (`connected` with `purchase_to_first_packet_ms`, `failover`,
//! `abandoned_order_closed`, `disconnected`), and takes `disconnect` on a
//! unix control socket (0600, see [`control`]) or on SIGTERM/Ctrl-C.
//!
//! Voucher rule (the provider's check is in [`crate::session::pricing`]):
//! every `voucher_secs` the client signs `max(due, last + 1 wei)`, capped at
//! the escrow, where `due` prices its own UAPI rx + tx of the provider peer
//! and the time since `Connected`. The extra wei keeps vouchers strictly
//! increasing, so an idle tunnel still tells the provider the client is
//! alive.

pub mod config;
pub mod control;
pub mod discovery;
pub mod tunnel;

use crate::chain::ChainSetupError;
use crate::net::{self, MarketRequest, MarketResponse, NetConfig, NetHandle};
use crate::session::pricing::Prices;
use crate::wire::session::VoucherMessage;
use crate::wire::session::{
    parse_u256, ConnectRequest, ConnectedInfo, SessionRequest, SessionResponse,
};
use crate::{identity, unix_ms};
use config::ClientFile;
use discovery::{Source, Wanted};
use flowshield_chain::alloy::primitives::{Address, U256};
use flowshield_chain::alloy::signers::local::PrivateKeySigner;
use flowshield_chain::alloy::sol_types::Eip712Domain;
use flowshield_chain::voucher::sign_voucher;
use flowshield_chain::{MarketClient, OrderStatus};
use flowshield_proto::{Offer, PeerId, Region, WgPublicKey};
use flowshield_tunnel::key::SecretKey;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot, Mutex};
use tokio::task::JoinHandle;
use tracing::Instrument;

/// A handshake older than this (WireGuard re-keys every 2 min) means the
/// provider's data plane is gone.
const HANDSHAKE_STALE_SECS: u64 = 180 + 30;
/// Attempts to find and connect to a provider before giving up.
const CONNECT_ATTEMPTS: u32 = 5;
/// How long to wait for an order to be settled on chain.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(120);

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
    #[error("provider {peer} refused the session: {reason}")]
    Refused { peer: PeerId, reason: String },
    #[error(transparent)]
    Tunnel(#[from] tunnel::TunnelError),
    #[error("control socket {path}: {reason}")]
    Control { path: String, reason: String },
    #[error("gave up after {0} attempts to connect to a provider")]
    GaveUp(u32),
}

fn chain_err(what: &str) -> impl Fn(flowshield_chain::ChainError) -> ClientError + '_ {
    move |e| ClientError::ChainCall(format!("{what}: {e}"))
}

/// Prints one JSON event line on stdout.
pub fn emit(value: Value) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{value}");
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
struct Chain {
    market: MarketClient,
    tx_lock: Arc<Mutex<()>>,
    signer: PrivateKeySigner,
    domain: Eip712Domain,
}

/// One live session with a provider.
struct Session {
    order_id: U256,
    offer: Offer,
    info: ConnectedInfo,
    provider_key: [u8; 32],
    connected_at: Instant,
    last_voucher: U256,
    bytes: u64,
}

enum SessionEnd {
    Disconnect(Option<oneshot::Sender<Value>>),
    ProviderLost(String),
}

/// Runs the client until it is told to disconnect; returns the
/// `disconnected` summary.
pub async fn run(
    file: ClientFile,
    overrides: Overrides,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<Value, ClientError> {
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
    let (signer, market) = file.chain.connect()?;
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
    // The client answers no requests; drain events so the network never blocks.
    tokio::spawn(async move { while net_events.recv().await.is_some() {} });

    let (control_tx, mut control_rx) = mpsc::channel(4);
    let control = control::serve(&file.control_socket(), control_tx.clone())?;
    tokio::spawn(async move {
        shutdown.await;
        let _ = control_tx.send(None).await;
    });

    let mut wanted = Wanted {
        region,
        max_price_per_gib_wei: max_price,
        exclude: HashSet::new(),
    };
    let mut closing: Vec<JoinHandle<()>> = Vec::new();
    let mut failover_from: Option<(PeerId, Instant)> = None;
    let result = loop {
        let mut session = match establish(&file, &chain, &net, &mut wanted, escrow).await {
            Ok(s) => s,
            Err(e) => break Err(e),
        };
        if let Some((from, since)) = failover_from.take() {
            emit(json!({
                "event": "failover_done",
                "from_provider": from.to_base58(),
                "to_provider": session.offer.provider_peer_id.to_base58(),
                "order_id": session.order_id.to_string(),
                "failover_ms": since.elapsed().as_millis() as u64,
            }));
        }
        let span = tracing::info_span!("session", order = %session.order_id, provider = %session.offer.provider_peer_id);
        let end = pay_loop(&file, &chain, &net, &mut session, escrow, &mut control_rx)
            .instrument(span.clone())
            .await;
        match end {
            SessionEnd::ProviderLost(reason) => {
                let peer = session.offer.provider_peer_id;
                emit(json!({
                    "event": "failover",
                    "from_provider": peer.to_base58(),
                    "order_id": session.order_id.to_string(),
                    "reason": reason,
                }));
                wanted.exclude.insert(peer);
                failover_from = Some((peer, Instant::now()));
                let _ =
                    tunnel::flowshield(&file.flowshield_bin, "down", &file.wg_quick_path()).await;
                closing.push(tokio::spawn(
                    close_abandoned(chain.clone(), session.order_id, escrow).instrument(span),
                ));
            }
            SessionEnd::Disconnect(reply) => {
                let summary = disconnect(&file, &chain, &net, &mut session, escrow)
                    .instrument(span)
                    .await;
                for handle in closing.drain(..) {
                    let _ = tokio::time::timeout(SETTLE_TIMEOUT, handle).await;
                }
                let value = match &summary {
                    Ok(v) => v.clone(),
                    Err(e) => json!({"event": "error", "error": e.to_string()}),
                };
                emit(value.clone());
                if let Some(reply) = reply {
                    if reply.send(value).is_ok() {
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

/// Finds a provider, opens the order, connects, brings the tunnel up and
/// waits for the first packet. Retries with other providers.
async fn establish(
    file: &ClientFile,
    chain: &Chain,
    net: &NetHandle,
    wanted: &mut Wanted,
    escrow: U256,
) -> Result<Session, ClientError> {
    let mut last_error = None;
    for attempt in 1..=CONNECT_ATTEMPTS {
        let started = Instant::now();
        let (offer, source) = match discovery::find(&file.fullnodes, net, wanted).await {
            Ok((offer, source, _)) => (offer, source),
            Err(e) => {
                tracing::warn!(attempt, error = %e, "no provider found yet");
                last_error = Some(ClientError::Discovery(e));
                // Back-off of a bounded retry loop (providers may still be announcing).
                tokio::time::sleep(Duration::from_secs(2)).await;
                continue;
            }
        };
        let peer = offer.provider_peer_id;
        match try_provider(file, chain, net, &offer, escrow, started).await {
            Ok(session) => {
                emit(json!({
                    "event": "connected",
                    "order_id": session.order_id.to_string(),
                    "provider": peer.to_base58(),
                    "provider_chain_address": offer.chain_address.to_string(),
                    "found_via": match &source { Source::Fullnode(url) => url.clone(), Source::Dht => "dht".into() },
                    "tunnel_address": session.info.tunnel_address,
                    "endpoint": session.info.endpoint,
                    "escrow_wei": escrow.to_string(),
                    "purchase_to_first_packet_ms": started.elapsed().as_millis() as u64,
                }));
                return Ok(session);
            }
            Err(e) => {
                tracing::warn!(%peer, error = %e, "provider unusable, excluding it");
                wanted.exclude.insert(peer);
                last_error = Some(e);
            }
        }
    }
    Err(last_error.unwrap_or(ClientError::GaveUp(CONNECT_ATTEMPTS)))
}

async fn try_provider(
    file: &ClientFile,
    chain: &Chain,
    net: &NetHandle,
    offer: &Offer,
    escrow: U256,
    started: Instant,
) -> Result<Session, ClientError> {
    let peer = offer.provider_peer_id;
    let provider_address = Address::from(offer.chain_address.0);
    let order_id = {
        let _tx = chain.tx_lock.lock().await;
        chain
            .market
            .open_order(provider_address, escrow)
            .await
            .map_err(chain_err("openOrder"))?
            .0
    };
    tracing::info!(order = %order_id, %peer, "order opened");
    let secret = SecretKey::generate_private();
    let wg = WgPublicKey(secret.public_key().0);
    let refused = |reason: String| ClientError::Refused { peer, reason };
    let connected = async {
        if !net.connected_peers().await?.contains(&peer) {
            if let Err(e) = net.find_peer(peer).await {
                tracing::debug!(%peer, error = %e, "DHT lookup of the provider failed");
            }
        }
        let request = ConnectRequest::sign(&chain.signer, order_id, wg, &peer, unix_ms())
            .map_err(|e| refused(e.to_string()))?;
        match net
            .request(
                peer,
                MarketRequest::Session(SessionRequest::Connect(request)),
            )
            .await?
        {
            MarketResponse::Session(SessionResponse::Connected(info)) => Ok(info),
            MarketResponse::Session(SessionResponse::Rejected { error, .. }) => Err(refused(error)),
            other => Err(refused(format!("unexpected answer {other:?}"))),
        }
    }
    .await;
    let info = match connected {
        Ok(info) => info,
        Err(e) => {
            // Never accepted: take the escrow back at once.
            let _tx = chain.tx_lock.lock().await;
            if let Err(c) = chain.market.cancel_order(order_id).await {
                tracing::warn!(order = %order_id, error = %c, "cancelling the order failed");
            }
            return Err(e);
        }
    };
    let session = Session {
        order_id,
        offer: offer.clone(),
        provider_key: info.provider_wg_public_key.0,
        info,
        connected_at: Instant::now(),
        last_voucher: U256::ZERO,
        bytes: 0,
    };
    let up =
        async {
            let text = tunnel::wg_quick_text(&secret, &session.info)?;
            let path = file.wg_quick_path();
            // A previous session's interface (failover) goes first.
            if flowshield_tunnel::uapi::socket_path(&file.interface).exists() {
                let _ = tunnel::flowshield(&file.flowshield_bin, "down", &path).await;
            }
            tunnel::write_private(&path, &text)?;
            tunnel::flowshield(&file.flowshield_bin, "up", &path).await?;
            let provider_ip: Ipv4Addr = session.info.provider_tunnel_ip.parse().map_err(|_| {
                tunnel::TunnelError::BadInfo {
                    field: "provider_tunnel_ip",
                    value: session.info.provider_tunnel_ip.clone(),
                }
            })?;
            let left = Duration::from_secs(file.first_packet_timeout_secs)
                .saturating_sub(started.elapsed())
                .max(Duration::from_secs(2));
            tunnel::wait_first_packet(&file.interface, session.provider_key, provider_ip, left)
                .await
        }
        .await;
    if let Err(e) = up {
        let _ = tunnel::flowshield(&file.flowshield_bin, "down", &file.wg_quick_path()).await;
        tokio::spawn(close_abandoned(chain.clone(), order_id, U256::ZERO));
        return Err(e.into());
    }
    Ok(session)
}

/// Signs and sends vouchers until told to disconnect or the provider is lost.
async fn pay_loop(
    file: &ClientFile,
    chain: &Chain,
    net: &NetHandle,
    session: &mut Session,
    escrow: U256,
    control: &mut mpsc::Receiver<Option<oneshot::Sender<Value>>>,
) -> SessionEnd {
    let every = Duration::from_secs(file.voucher_secs);
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    let mut failures = 0u32;
    loop {
        tokio::select! {
            command = control.recv() => {
                return SessionEnd::Disconnect(command.flatten());
            }
            _ = ticker.tick() => {
                let Some(counters) = tunnel::counters(&file.interface, session.provider_key).await else {
                    return SessionEnd::ProviderLost("the tunnel interface is gone".into());
                };
                session.bytes = counters.bytes;
                let now = unix_ms() / 1000;
                if counters.last_handshake != 0 && now.saturating_sub(counters.last_handshake) > HANDSHAKE_STALE_SECS {
                    return SessionEnd::ProviderLost(format!("no handshake for {HANDSHAKE_STALE_SECS} s"));
                }
                match send_voucher(chain, net, session, escrow, every * 2).await {
                    Ok(()) => failures = 0,
                    Err(e) => {
                        failures += 1;
                        tracing::warn!(failures, error = %e, "voucher not delivered");
                        if failures >= file.max_failed_vouchers.max(1) {
                            return SessionEnd::ProviderLost(format!("provider stopped answering: {e}"));
                        }
                    }
                }
            }
        }
    }
}

/// What the session costs now, by the client's own counters.
fn amount_now(session: &Session, escrow: U256) -> U256 {
    let prices = Prices {
        per_gib: U256::from(session.offer.price_per_gib_wei),
        per_hour: U256::from(session.offer.price_per_hour_wei),
    };
    let elapsed = session.connected_at.elapsed().as_millis() as u64;
    prices
        .due(session.bytes, elapsed, escrow)
        .max(session.last_voucher + U256::from(1))
        .min(escrow)
}

/// Sends one voucher; a refusal is logged, not an error (the provider is
/// alive); no answer is an error.
async fn send_voucher(
    chain: &Chain,
    net: &NetHandle,
    session: &mut Session,
    escrow: U256,
    timeout: Duration,
) -> Result<(), String> {
    let amount = amount_now(session, escrow);
    if amount <= session.last_voucher {
        return Ok(()); // escrow exhausted: nothing more to sign
    }
    let voucher = sign_voucher(&chain.signer, &chain.domain, session.order_id, amount)
        .map_err(|e| e.to_string())?;
    let request = MarketRequest::Session(SessionRequest::Voucher(VoucherMessage::from_signed(
        &voucher,
    )));
    let answer = tokio::time::timeout(
        timeout,
        net.request(session.offer.provider_peer_id, request),
    )
    .await
    .map_err(|_| format!("no answer within {timeout:?}"))?
    .map_err(|e| e.to_string())?;
    match answer {
        MarketResponse::Session(SessionResponse::VoucherAccepted { .. }) => {
            session.last_voucher = amount;
            Ok(())
        }
        MarketResponse::Session(SessionResponse::Rejected { kind, error }) => {
            tracing::warn!(%kind, %error, "voucher refused by the provider");
            Ok(())
        }
        other => Err(format!("unexpected answer {other:?}")),
    }
}

/// Final voucher, `Disconnect`, settlement on chain, refund withdrawn,
/// tunnel down.
async fn disconnect(
    file: &ClientFile,
    chain: &Chain,
    net: &NetHandle,
    session: &mut Session,
    escrow: U256,
) -> Result<Value, ClientError> {
    if let Some(c) = tunnel::counters(&file.interface, session.provider_key).await {
        session.bytes = c.bytes;
    }
    let timeout = Duration::from_secs(file.voucher_secs.max(2) * 2);
    if let Err(e) = send_voucher(chain, net, session, escrow, timeout).await {
        tracing::warn!(error = %e, "final voucher not delivered");
    }
    let request = MarketRequest::Session(SessionRequest::Disconnect {
        order_id: session.order_id.to_string(),
    });
    let by_provider = match tokio::time::timeout(
        Duration::from_secs(30),
        net.request(session.offer.provider_peer_id, request),
    )
    .await
    {
        Ok(Ok(MarketResponse::Session(SessionResponse::Disconnected { .. }))) => true,
        other => {
            tracing::warn!(answer = ?other.map(|r| r.map(|_| ())), "provider did not settle; closing on chain");
            false
        }
    };
    let _ = tunnel::flowshield(&file.flowshield_bin, "down", &file.wg_quick_path()).await;
    let refunded = settle_and_withdraw(chain, session.order_id, !by_provider).await?;
    let order = chain
        .market
        .order(session.order_id)
        .await
        .map_err(chain_err("reading the order"))?;
    Ok(json!({
        "event": "disconnected",
        "order_id": session.order_id.to_string(),
        "provider": session.offer.provider_peer_id.to_base58(),
        "settled_by": if by_provider { "provider" } else { "client" },
        "bytes": session.bytes,
        "voucher_wei": session.last_voucher.to_string(),
        "escrow_wei": order.escrow.to_string(),
        "provider_paid_wei": order.redeemed.to_string(),
        "client_refunded_wei": refunded.to_string(),
        "status": format!("{:?}", OrderStatus::from_u8(order.status).unwrap_or(OrderStatus::None)),
    }))
}

/// Waits for `order` to be settled (requesting close and settling itself
/// when `close` is set), then withdraws. Returns the refund.
async fn settle_and_withdraw(chain: &Chain, order: U256, close: bool) -> Result<U256, ClientError> {
    let market = &chain.market;
    if close {
        let _tx = chain.tx_lock.lock().await;
        if let Err(e) = market.request_close(order).await {
            tracing::debug!(error = %e, "requestClose refused (already closing or settled?)");
        }
    }
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    loop {
        let status = market
            .order_status(order)
            .await
            .map_err(chain_err("reading the order"))?;
        match status {
            OrderStatus::Settled | OrderStatus::Cancelled => break,
            OrderStatus::Pending => {
                let _tx = chain.tx_lock.lock().await;
                let _ = market.cancel_order(order).await;
            }
            OrderStatus::Closing if close => {
                // Reverts with CloseGraceActive until the provider's grace ends.
                let _tx = chain.tx_lock.lock().await;
                let _ = market.settle(order).await;
            }
            _ => {}
        }
        if Instant::now() >= deadline {
            return Err(ClientError::ChainCall(format!(
                "order {order} not settled within {SETTLE_TIMEOUT:?} (status {status:?})"
            )));
        }
        // Poll interval of a bounded wait (deadline above).
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let record = market
        .order(order)
        .await
        .map_err(chain_err("reading the order"))?;
    let refund = record.escrow.saturating_sub(record.redeemed);
    let _tx = chain.tx_lock.lock().await;
    if let Err(e) = market.withdraw().await {
        tracing::debug!(error = %e, "nothing withdrawn");
    }
    Ok(refund)
}

/// Closes the order of a provider that went away: request close, settle
/// after the grace period, withdraw the refund.
async fn close_abandoned(chain: Chain, order: U256, _escrow: U256) {
    match settle_and_withdraw(&chain, order, true).await {
        Ok(refund) => emit(json!({
            "event": "abandoned_order_closed",
            "order_id": order.to_string(),
            "client_refunded_wei": refund.to_string(),
        })),
        Err(e) => tracing::warn!(%order, error = %e, "abandoned order not closed"),
    }
}
