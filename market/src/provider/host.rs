//! The provider's session driver: feeds [`SessionTable`] with chain reads,
//! UAPI counters and the clock, and carries out its decisions — accept the
//! order on chain, hand out a tunnel address, push the peer to the data
//! plane, redeem vouchers, settle and remove the peer. Every message is
//! passed to the table with the libp2p PeerId that sent it, so only the
//! peer that connected an order is heard on it; [`SessionHost::enforce_credit`]
//! stops forwarding (allowed IPs through UAPI) for a client past its credit.
//!
//! **Durable first.** Each session is recorded in the provider's store
//! ([`crate::provider::store`]) before the client hears yes: the record
//! before `acceptOrder`, its peer before the UAPI call that adds it, each
//! voucher before `VoucherAccepted`. At start, [`crate::provider::recover`]
//! reconciles the store with the chain and the data plane and
//! [`SessionHost::resume`] takes the surviving sessions up again.
//!
//! **No chain I/O under the session lock.** One mutex guards the table and
//! the address pool and is held only for the sans-IO decisions; chain reads
//! and transactions happen outside it, so a slow chain (a block every few
//! seconds) never holds up another session's vouchers. Redemptions run as
//! tasks of their own. Transactions share one signer whose nonce is read
//! from the node for each, so they take turns on a second lock (`tx_lock`),
//! which vouchers never wait for. Orders being connected hold their place
//! in the table ([`SessionTable::reserve`]) and orders being ended are
//! marked, so a concurrent `Connect` or end cannot race them.
//!
//! **Ending answers first.** A session ends ([`SessionHost::end`]: the
//! client's `Disconnect`, idle, spent escrow) by recording the intent in
//! the store and removing the peer; its settlement on chain (redeem the
//! best voucher, settle, withdraw) then runs on a task of its own, so the
//! client hears `Disconnected` at once even when blocks take seconds, and
//! a restart settles what a crash interrupted.

use super::shaping::{Shaper, ShapingPlan};
use super::store::SessionStore;
use crate::dataplane::DataPlane;
use crate::session::pool::TunnelAddressPool;
use crate::session::pricing::Prices;
use crate::session::record::{RecordState, SessionRecord};
use crate::session::table::{
    EndReason, OrderView, SessionError, SessionPolicy, SessionSnapshot, SessionTable,
};
use crate::unix_ms;
use crate::wire::raw::RawSessionRequest;
use crate::wire::session::{
    ConnectRequest, ConnectedInfo, SessionRequest, SessionResponse, VoucherMessage,
};
use flowshield_chain::alloy::primitives::{Address, U256};
use flowshield_chain::{MarketClient, OrderStatus};
use flowshield_proto::{PeerId, WgPublicKey};
use ipnet::{IpNet, Ipv4Net};
use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::Mutex;
use tracing::Instrument;

/// The credit check: data-plane counters weighed against vouchers.
#[path = "host_credit.rs"]
mod credit;
/// Accepting an order and ending a session: the chain half.
#[path = "host_lifecycle.rs"]
mod lifecycle;

/// Everything the host needs besides the policy.
#[derive(Debug, Clone)]
pub struct HostConfig {
    pub peer_id: PeerId,
    pub market: MarketClient,
    /// Where sessions are recorded before they are acknowledged.
    pub store: SessionStore,
    pub dataplane: DataPlane,
    pub tunnel_subnet: String,
    pub provider_wg_public_key: WgPublicKey,
    pub endpoint: SocketAddr,
    /// Routes handed to clients besides the provider's subnet.
    pub client_allowed_ips: Vec<IpNet>,
    pub keepalive_secs: u16,
    pub policy: SessionPolicy,
    /// Per-client rate limits, set when a session starts and lifted when
    /// it ends (`None`: unshaped).
    pub shaper: Option<Shaper>,
}

struct State {
    table: SessionTable,
    pool: TunnelAddressPool,
    settled: SettledTally,
    /// Orders being ended (settling on chain).
    ending: HashSet<U256>,
}

/// Sessions ended (and their orders settled) since the provider started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SettledTally {
    pub sessions: u64,
    /// What those orders paid the provider on chain, in wei.
    pub paid: U256,
}

/// What an observer (the dashboard) sees of the host at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct HostSnapshot {
    /// Open sessions, oldest first.
    pub sessions: Vec<SessionSnapshot>,
    pub settled: SettledTally,
}

/// The provider's sessions. Cheap to clone.
#[derive(Clone)]
pub struct SessionHost {
    config: Arc<HostConfig>,
    state: Arc<Mutex<State>>,
    /// Held while a transaction is sent (one signer, one nonce at a time).
    tx_lock: Arc<Mutex<()>>,
    /// Held from a forwarding decision (under the session lock) until the
    /// data plane carries it out (after it), so decisions reach the data
    /// plane in the order they were made. Taken before the session lock.
    forwarding: Arc<Mutex<()>>,
}

impl std::fmt::Debug for SessionHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionHost")
            .field("peer_id", &self.config.peer_id)
            .field("iface", &self.config.dataplane.iface())
            .finish()
    }
}

fn rejected(e: &SessionError) -> SessionResponse {
    SessionResponse::Rejected {
        kind: e.kind(),
        error: e.to_string(),
    }
}

fn chain_error(what: &str, e: impl std::fmt::Display) -> SessionError {
    SessionError::Unavailable(format!("{what} on chain failed: {e}"))
}

impl SessionHost {
    pub async fn new(config: HostConfig) -> Result<Self, SessionError> {
        let domain = config
            .market
            .eip712_domain()
            .await
            .map_err(|e| chain_error("reading the EIP-712 domain", e))?;
        let pool = TunnelAddressPool::new(&config.tunnel_subnet)
            .map_err(|e| SessionError::Unavailable(e.to_string()))?;
        if let Some(shaper) = &config.shaper {
            shaper
                .install()
                .await
                .map_err(|e| SessionError::Unavailable(e.to_string()))?;
        }
        Ok(Self {
            state: Arc::new(Mutex::new(State {
                table: SessionTable::new(config.policy.clone(), domain),
                pool,
                settled: SettledTally::default(),
                ending: HashSet::new(),
            })),
            config: Arc::new(config),
            tx_lock: Arc::new(Mutex::new(())),
            forwarding: Arc::new(Mutex::new(())),
        })
    }

    /// Takes up sessions that survived a restart (from
    /// [`crate::provider::recover`]): their addresses and vouchers.
    pub async fn resume(&self, records: &[SessionRecord]) {
        let mut state = self.state.lock().await;
        let now = unix_ms();
        for record in records {
            if let Err(e) = state.pool.reserve(record.address) {
                tracing::warn!(order = %record.order_id, error = %e, "tunnel address of a resumed session not reserved");
            }
            state.table.restore(record, now);
            if let Some(shaper) = &self.config.shaper {
                if let Err(e) = shaper.add(record.address).await {
                    tracing::error!(order = %record.order_id, error = %e, "resumed session not shaped");
                }
            }
            tracing::info!(order = %record.order_id, address = %record.address, best = %record.best_amount(), "session taken up again");
        }
    }

    fn store_error(e: impl std::fmt::Display) -> SessionError {
        SessionError::Unavailable(format!("session store: {e}"))
    }

    pub fn prices(&self) -> Prices {
        self.config.policy.prices
    }

    /// The session policy in force (credit limit, capacity, escrow floor).
    pub fn policy(&self) -> &SessionPolicy {
        &self.config.policy
    }

    /// Open sessions (for observers and tests).
    pub async fn session_count(&self) -> usize {
        self.state.lock().await.table.len()
    }

    /// Open sessions and what ended ones paid (for the dashboard).
    pub async fn snapshot(&self) -> HostSnapshot {
        let state = self.state.lock().await;
        HostSnapshot {
            sessions: state.table.snapshot(),
            settled: state.settled,
        }
    }

    /// The market contract, as this provider signs for it.
    pub fn market(&self) -> &MarketClient {
        &self.config.market
    }

    /// The per-client shaping plan in force, if any (for the dashboard).
    pub fn shaping(&self) -> Option<&ShapingPlan> {
        self.config.shaper.as_ref().map(Shaper::plan)
    }

    /// This provider's chain address.
    pub fn chain_address(&self) -> Address {
        self.config.policy.me
    }

    /// Answers one session message as it came over the wire: decoded here,
    /// so a malformed one is refused (`malformed`, naming the field).
    pub async fn handle_raw(&self, from: PeerId, request: &RawSessionRequest) -> SessionResponse {
        match request.decode() {
            Ok(request) => self.handle(from, request).await,
            Err(e) => {
                let e = SessionError::Wire(e);
                tracing::info!(%from, kind = %e.kind(), error = %e, "session request refused");
                rejected(&e)
            }
        }
    }

    /// Answers one session message.
    pub async fn handle(&self, from: PeerId, request: SessionRequest) -> SessionResponse {
        let result = match request {
            SessionRequest::Connect(req) => {
                let span = tracing::info_span!("connect", order = %req.order_id, %from);
                self.connect(from, req).instrument(span).await
            }
            SessionRequest::Voucher(v) => {
                let span = tracing::debug_span!("voucher", order = %v.order_id, %from);
                self.voucher(from, &v).instrument(span).await
            }
            SessionRequest::Disconnect { order_id } => {
                let span = tracing::info_span!("disconnect", order = %order_id, %from);
                async {
                    // Only the peer that connected the order may end it.
                    self.state.lock().await.table.session_of(order_id, &from)?;
                    // Answered once the settlement is recorded and the peer
                    // removed; the chain transactions follow on their own.
                    let redeemed = self.end(order_id, "client disconnected").await?;
                    Ok(SessionResponse::Disconnected {
                        order_id,
                        redeemed_wei: redeemed,
                    })
                }
                .instrument(span)
                .await
            }
        };
        result.unwrap_or_else(|e| {
            tracing::info!(kind = %e.kind(), error = %e, "session request refused");
            rejected(&e)
        })
    }

    async fn order_view(&self, id: U256) -> Result<Option<OrderView>, SessionError> {
        let record = self
            .config
            .market
            .order(id)
            .await
            .map_err(|e| chain_error("reading the order", e))?;
        let status = OrderStatus::from_u8(record.status).unwrap_or(OrderStatus::None);
        Ok((status != OrderStatus::None).then_some(OrderView {
            client: record.client,
            provider: record.provider,
            status,
            escrow: record.escrow,
        }))
    }

    async fn connect(
        &self,
        from: PeerId,
        req: ConnectRequest,
    ) -> Result<SessionResponse, SessionError> {
        // Cheap checks first: a bad signature costs no chain read.
        let (id, _) = req.recover(&self.config.peer_id)?;
        let order = self.order_view(id).await?;
        let wg = req.client_wg_public_key;
        // A key already on the interface is someone else's peer (the
        // operator's, another session's): taking it would hijack its routes.
        let present = self
            .config
            .dataplane
            .counters()
            .await
            .map_err(|e| SessionError::Unavailable(format!("data plane: {e}")))?;
        let reserved = {
            let mut state = self.state.lock().await;
            let checked =
                state
                    .table
                    .check_connect(&req, order.as_ref(), &self.config.peer_id, unix_ms());
            match (checked, &order) {
                (Err(e @ SessionError::EscrowTooSmall { .. }), _) => Err(e),
                (Err(e), _) => return Err(e),
                (Ok(_), None) => return Err(SessionError::UnknownOrder(id)),
                (Ok(_), Some(order)) => {
                    if present.iter().any(|p| p.public_key == wg) {
                        return Err(SessionError::KeyOnInterface(wg));
                    }
                    let address = state
                        .pool
                        .allocate()
                        .map_err(|e| SessionError::Unavailable(e.to_string()))?;
                    // The client's address in the provider's subnet, e.g. 10.77.0.2/24.
                    match Ipv4Net::new(address, state.pool.prefix_len()) {
                        Ok(net) => {
                            // Its place is held from here, so Connects racing
                            // this one see it taken while it is accepted.
                            state.table.reserve(id, order.client, wg);
                            Ok((address, net, state.pool.provider_address()))
                        }
                        Err(e) => {
                            let _ = state.pool.release(address);
                            return Err(SessionError::Unavailable(e.to_string()));
                        }
                    }
                }
            }
        };
        let (address, tunnel_address, provider_tunnel_ip) = match reserved {
            Ok(reserved) => reserved,
            Err(e) => {
                // The order's client asked (checked before the escrow):
                // reject the dust order on chain, refunding it, so it never
                // holds one of the provider's accepted-order slots.
                let _tx = self.tx_lock.lock().await;
                match self.config.market.reject_order(id).await {
                    Ok(_) => tracing::info!("dust order rejected on chain"),
                    Err(e) => tracing::warn!(error = %e, "rejecting the dust order failed"),
                }
                return Err(e);
            }
        };
        let order = order.ok_or(SessionError::UnknownOrder(id))?;
        let now = unix_ms();
        let record = SessionRecord {
            order_id: id,
            client: order.client,
            client_peer: from,
            wg_key: wg,
            address,
            escrow: order.escrow,
            state: RecordState::Accepting,
            best: None,
            redeemed: U256::ZERO,
            accepted_at_ms: now,
            last_voucher_ms: now,
            updated_ms: now,
        };
        let accepted = self.accept_and_add(&record).await;
        let mut state = self.state.lock().await;
        if let Err(e) = accepted {
            state.table.release(&id);
            let _ = state.pool.release(address);
            return Err(e);
        }
        state.table.admit(id, &order, from, wg, address, now);
        drop(state);
        if let Err(e) = self
            .config
            .store
            .set_state(id, RecordState::Active, unix_ms())
            .await
        {
            // Accepted, with its peer, and recorded as accepting: a restart
            // resumes it, so the session stands.
            tracing::warn!(error = %e, "recording the session as active failed");
        }
        tracing::info!(%address, client = %order.client, escrow = %order.escrow, "order accepted, peer added");
        let mut allowed_ips = vec![IpNet::V4(tunnel_address.trunc())];
        allowed_ips.extend(self.config.client_allowed_ips.iter().copied());
        Ok(SessionResponse::Connected(ConnectedInfo {
            order_id: id,
            tunnel_address: IpNet::V4(tunnel_address),
            provider_wg_public_key: self.config.provider_wg_public_key,
            endpoint: self.config.endpoint,
            allowed_ips,
            persistent_keepalive: self.config.keepalive_secs,
            provider_tunnel_ip,
        }))
    }

    /// rx + tx bytes of `key` on our data plane (0 if unknown).
    async fn measured_bytes(&self, key: WgPublicKey) -> u64 {
        match self.config.dataplane.peer_counters(&key).await {
            Ok(counters) => counters.map_or(0, |c| c.bytes()),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read peer counters");
                0
            }
        }
    }

    async fn voucher(
        &self,
        from: PeerId,
        message: &VoucherMessage,
    ) -> Result<SessionResponse, SessionError> {
        let id = message.order_id;
        let key = {
            let state = self.state.lock().await;
            if state.ending.contains(&id) {
                return Err(SessionError::NoSession(id));
            }
            state.table.session_of(id, &from)?.wg_key
        };
        let bytes = self.measured_bytes(key).await;
        let now = unix_ms();
        let outcome = {
            let mut state = self.state.lock().await;
            // Checked again: an end that began meanwhile has taken the
            // session's vouchers as they were, and would miss this one.
            if state.ending.contains(&id) {
                return Err(SessionError::NoSession(id));
            }
            state.table.offer_voucher(&from, message, bytes, now)?
        };
        // Durable before it is acknowledged: a crash after this keeps it.
        self.config
            .store
            .record_voucher(&message.to_signed(), now)
            .await
            .map_err(Self::store_error)?;
        // A voucher that covers the debt restores forwarding at once.
        self.check_credit_after_voucher(id, bytes, now).await;
        if let Some(voucher) = outcome.redeem {
            // On its own task: the client's answer never waits for a block.
            let host = self.clone();
            tokio::spawn(
                async move {
                    let redeemed = {
                        let _tx = host.tx_lock.lock().await;
                        host.config.market.redeem_voucher(&voucher).await
                    };
                    match redeemed {
                        Ok(_) => {
                            let amount = voucher.cumulative_amount;
                            tracing::info!(%amount, "voucher redeemed");
                            host.state
                                .lock()
                                .await
                                .table
                                .mark_redeemed(id, amount, unix_ms());
                            if let Err(e) = host
                                .config
                                .store
                                .record_redeemed(id, amount, unix_ms())
                                .await
                            {
                                tracing::warn!(error = %e, "recording the redemption failed");
                            }
                        }
                        // Kept as the best voucher; redeemed at settlement.
                        Err(e) => tracing::warn!(error = %e, "redeeming failed"),
                    }
                }
                .instrument(tracing::info_span!("redeem", order = %id)),
            );
        }
        Ok(SessionResponse::VoucherAccepted {
            order_id: id,
            cumulative_wei: outcome.cumulative,
        })
    }

    /// Periodic work: end idle or under-paying sessions and those whose
    /// client asked the chain to close.
    pub async fn tick(&self) {
        let (to_end, all) = {
            let state = self.state.lock().await;
            (state.table.to_end(unix_ms()), state.table.order_ids())
        };
        let mut ending: Vec<(U256, &'static str)> = to_end
            .into_iter()
            .map(|(id, why)| {
                let why = match why {
                    EndReason::Idle => "no voucher within the idle timeout",
                    EndReason::Underpaying => "repeated under-paying vouchers",
                    EndReason::EscrowSpent => "the escrow is spent",
                };
                (id, why)
            })
            .collect();
        for id in all {
            if ending.iter().any(|(e, _)| *e == id) {
                continue;
            }
            if let Ok(OrderStatus::Closing) = self.config.market.order_status(id).await {
                ending.push((id, "client requested close on chain"));
            }
        }
        for (id, why) in ending {
            if let Err(e) = self.end(id, why).await {
                tracing::warn!(order = %id, error = %e, "ending the session failed");
            }
        }
    }
}
