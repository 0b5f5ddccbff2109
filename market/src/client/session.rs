//! One session with a provider: find and open it ([`establish`],
//! [`try_provider`]), then pay for it with vouchers ([`pay_loop`]).

use super::checks::{self, OrderOnChain, RouteRules};
use super::config::ClientFile;
use super::discovery::{self, Source, Wanted};
use super::pay::{self, VoucherVerdict};
use super::{
    chain_err, control::DisconnectReply, emit, settle::close_abandoned, tunnel, underlay, Chain,
    ClientError,
};
use crate::net::{MarketRequest, MarketResponse, NetHandle};
use crate::session::pricing::Prices;
use crate::unix_ms;
use crate::wire::client::ClientEvent;
use crate::wire::raw::RawSessionRequest;
use crate::wire::session::{
    ConnectRequest, ConnectedInfo, SessionRequest, SessionResponse, VoucherMessage,
};
use flowshield_chain::alloy::primitives::{Address, U256};
use flowshield_chain::voucher::sign_voucher;
use flowshield_chain::OrderStatus;
use flowshield_proto::{Offer, PeerId, WgPublicKey};
use flowshield_tunnel::key::SecretKey;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

/// A handshake older than this (WireGuard re-keys every 2 min) means the
/// provider's data plane is gone.
pub(super) const HANDSHAKE_STALE_SECS: u64 = 180 + 30;
/// Attempts to find and connect to a provider before giving up.
pub(super) const CONNECT_ATTEMPTS: u32 = 5;

/// One live session with a provider.
pub(super) struct Session {
    pub(super) order_id: U256,
    pub(super) offer: Offer,
    pub(super) info: ConnectedInfo,
    pub(super) provider_key: WgPublicKey,
    pub(super) connected_at: Instant,
    pub(super) last_voucher: U256,
    pub(super) bytes: u64,
}

/// Sends one session message to `peer` and reads its answer. An answer
/// that does not decode is refused naming the field (`allowed_ips: …`).
pub(super) async fn ask(
    net: &NetHandle,
    peer: PeerId,
    request: &SessionRequest,
) -> Result<SessionResponse, ClientError> {
    let refused = |reason: String| ClientError::Refused { peer, reason };
    let raw = RawSessionRequest::encode(request).map_err(|e| refused(e.to_string()))?;
    match net.request(peer, MarketRequest::Session(raw)).await? {
        MarketResponse::Session(answer) => answer
            .decode()
            .map_err(|e| refused(format!("unreadable answer: {e}"))),
        other => Err(refused(format!("unexpected answer {other:?}"))),
    }
}

pub(super) enum SessionEnd {
    Disconnect(Option<DisconnectReply>),
    ProviderLost(String),
}

/// Finds a provider, opens the order, connects, brings the tunnel up and
/// waits for the first packet. Retries with other providers.
pub(super) async fn establish(
    file: &ClientFile,
    chain: &Chain,
    net: &NetHandle,
    wanted: &mut Wanted,
    escrow: U256,
    closing: &mut JoinSet<()>,
) -> Result<Session, ClientError> {
    let mut last_error = None;
    // A provider's refusal says more than a later "no provider left".
    let mut last_refusal = None;
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
        match try_provider(file, chain, net, &offer, escrow, started, closing).await {
            Ok(session) => {
                emit(&ClientEvent::Connected {
                    order_id: session.order_id,
                    provider: peer,
                    provider_chain_address: offer.chain_address.to_string(),
                    found_via: match &source {
                        Source::Fullnode(url) => url.clone(),
                        Source::Dht => "dht".into(),
                    },
                    tunnel_address: session.info.tunnel_address.to_string(),
                    endpoint: session.info.endpoint.to_string(),
                    escrow_wei: escrow,
                    purchase_to_first_packet_ms: started.elapsed().as_millis() as u64,
                });
                return Ok(session);
            }
            Err(e) => {
                tracing::warn!(%peer, error = %e, "provider unusable, excluding it");
                wanted.exclude.insert(peer);
                last_refusal = Some(e);
            }
        }
    }
    Err(last_refusal
        .or(last_error)
        .unwrap_or(ClientError::GaveUp(CONNECT_ATTEMPTS)))
}

pub(super) async fn try_provider(
    file: &ClientFile,
    chain: &Chain,
    net: &NetHandle,
    offer: &Offer,
    escrow: U256,
    started: Instant,
    closing: &mut JoinSet<()>,
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
        match ask(net, peer, &SessionRequest::Connect(request)).await? {
            SessionResponse::Connected(info) => Ok(info),
            SessionResponse::Rejected { error, .. } => Err(refused(error)),
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
    // Nothing the provider said is used before the chain vouches for it.
    if let Err(e) = verify_connected(file, chain, offer, order_id, &info).await {
        abandon_unused(chain, order_id, closing).await;
        return Err(e);
    }
    let session = Session {
        order_id,
        offer: offer.clone(),
        provider_key: info.provider_wg_public_key,
        info,
        connected_at: Instant::now(),
        last_voucher: U256::ZERO,
        bytes: 0,
    };
    let up = async {
        let text = tunnel::wg_quick_text(&secret, &session.info)?;
        let path = file.wg_quick_path();
        // A previous session's interface (failover) goes first.
        if flowshield_tunnel::uapi::socket_path(&file.interface).exists() {
            let _ = tunnel::flowshield(&file.flowshield_bin, "down", &path).await;
        }
        tunnel::write_private(&path, &text)?;
        tunnel::flowshield(&file.flowshield_bin, "up", &path).await?;
        let provider_ip = session.info.provider_tunnel_ip;
        let left = Duration::from_secs(file.first_packet_timeout_secs)
            .saturating_sub(started.elapsed())
            .max(Duration::from_secs(2));
        tunnel::wait_first_packet(&file.interface, &session.provider_key, provider_ip, left).await
    }
    .await;
    if let Err(e) = up {
        let _ = tunnel::flowshield(&file.flowshield_bin, "down", &file.wg_quick_path()).await;
        closing.spawn(close_abandoned(chain.clone(), order_id, U256::ZERO));
        return Err(e.into());
    }
    Ok(session)
}

/// Checks a `Connected` answer against the chain and the client's
/// underlay (see [`checks`]) before the tunnel is configured with it.
async fn verify_connected(
    file: &ClientFile,
    chain: &Chain,
    offer: &Offer,
    order_id: U256,
    info: &ConnectedInfo,
) -> Result<(), ClientError> {
    let peer = offer.provider_peer_id;
    let distrusted = |error: checks::Distrust| ClientError::Distrusted { peer, error };
    let chosen = Address::from(offer.chain_address.0);
    let order = chain
        .market
        .order(order_id)
        .await
        .map_err(chain_err("reading the order"))?;
    let on_chain = OrderOnChain {
        client: order.client,
        provider: order.provider,
        status: OrderStatus::from_u8(order.status).unwrap_or(OrderStatus::None),
    };
    checks::check_order(&on_chain, chain.signer.address(), chosen).map_err(distrusted)?;
    let record = chain
        .market
        .provider_record(chosen)
        .await
        .map_err(chain_err("reading the provider"))?;
    checks::check_provider_key(record.wgPublicKey.0, &info.provider_wg_public_key)
        .map_err(distrusted)?;
    let mut fixed = vec![offer.endpoint.ip(), info.endpoint.ip()];
    fixed.extend(file.fullnodes.iter().filter_map(|u| underlay::url_ip(u)));
    fixed.extend(underlay::url_ip(&file.chain.rpc_url));
    for text in &file.bootstrap {
        if let Ok(addr) = text.parse::<libp2p::Multiaddr>() {
            fixed.extend(underlay::multiaddr_ips(&addr));
        }
    }
    let underlay = underlay::collect(&fixed, &file.interface);
    let rules = RouteRules {
        subnet: offer.tunnel_subnet,
        requested: &file.requested_routes,
        underlay: &underlay,
    };
    checks::check_routes(info, &rules).map_err(distrusted)
}

/// Gives up an order the client will not use: a pending one is cancelled
/// at once; an accepted one is asked to close now and settled in the
/// background.
async fn abandon_unused(chain: &Chain, order_id: U256, closing: &mut JoinSet<()>) {
    let status = chain.market.order_status(order_id).await;
    {
        let _tx = chain.tx_lock.lock().await;
        let done = match status {
            Ok(OrderStatus::Pending) => chain.market.cancel_order(order_id).await,
            _ => chain.market.request_close(order_id).await,
        };
        if let Err(e) = done {
            tracing::warn!(order = %order_id, error = %e, "giving the order up failed");
        }
    }
    closing.spawn(close_abandoned(chain.clone(), order_id, U256::ZERO));
}

/// Signs and sends vouchers until told to disconnect or the provider is lost.
pub(super) async fn pay_loop(
    file: &ClientFile,
    chain: &Chain,
    net: &NetHandle,
    session: &mut Session,
    escrow: U256,
    control: &mut mpsc::Receiver<Option<DisconnectReply>>,
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
                let Some(counters) = tunnel::counters(&file.interface, &session.provider_key).await else {
                    return SessionEnd::ProviderLost("the tunnel interface is gone".into());
                };
                session.bytes = counters.bytes();
                let now = unix_ms() / 1000;
                if counters.last_handshake.0 != 0 && now.saturating_sub(counters.last_handshake.0) > HANDSHAKE_STALE_SECS {
                    return SessionEnd::ProviderLost(format!("no handshake for {HANDSHAKE_STALE_SECS} s"));
                }
                match send_voucher(chain, net, session, escrow, every * 2).await {
                    Ok(()) => failures = 0,
                    Err(VoucherFailure::SessionGone(reason)) => {
                        return SessionEnd::ProviderLost(format!("the provider dropped the session: {reason}"));
                    }
                    Err(VoucherFailure::Undelivered(e)) => {
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

/// What the session costs now, by the client's own counters, capped by
/// the offer's prices (see [`pay`]); `None` when nothing more is due.
pub(super) fn amount_now(session: &Session, escrow: U256) -> Option<U256> {
    let prices = Prices {
        per_gib: U256::from(session.offer.price_per_gib_wei),
        per_hour: U256::from(session.offer.price_per_hour_wei),
    };
    let elapsed = session.connected_at.elapsed().as_millis() as u64;
    pay::next_voucher(
        &prices,
        session.bytes,
        elapsed,
        session.last_voucher,
        escrow,
    )
}

/// Why a voucher did not go through.
#[derive(Debug)]
pub(super) enum VoucherFailure {
    /// No answer, or not an answer to a voucher.
    Undelivered(String),
    /// The provider holds no session for the order any more.
    SessionGone(String),
}

impl std::fmt::Display for VoucherFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Undelivered(e) => f.write_str(e),
            Self::SessionGone(e) => write!(f, "session gone: {e}"),
        }
    }
}

/// Sends one voucher. A refusal about the amount is logged, not an error
/// (the provider is alive, and gets no more than the client's own
/// counters price); a refusal saying the session is gone ends it.
pub(super) async fn send_voucher(
    chain: &Chain,
    net: &NetHandle,
    session: &mut Session,
    escrow: U256,
    timeout: Duration,
) -> Result<(), VoucherFailure> {
    use VoucherFailure::Undelivered;
    let Some(amount) = amount_now(session, escrow) else {
        return Ok(()); // escrow or cap reached: nothing more to sign
    };
    let voucher = sign_voucher(&chain.signer, &chain.domain, session.order_id, amount)
        .map_err(|e| Undelivered(e.to_string()))?;
    let request = SessionRequest::Voucher(VoucherMessage::from_signed(&voucher));
    let answer = tokio::time::timeout(timeout, ask(net, session.offer.provider_peer_id, &request))
        .await
        .map_err(|_| Undelivered(format!("no answer within {timeout:?}")))?
        .map_err(|e| Undelivered(e.to_string()))?;
    match pay::verdict(&answer) {
        VoucherVerdict::Accepted => {
            session.last_voucher = amount;
            Ok(())
        }
        VoucherVerdict::Refused(reason) => {
            tracing::warn!(%reason, "voucher refused by the provider");
            Ok(())
        }
        VoucherVerdict::SessionGone(reason) => Err(VoucherFailure::SessionGone(reason)),
        VoucherVerdict::Unexpected(reason) => Err(Undelivered(reason)),
    }
}
