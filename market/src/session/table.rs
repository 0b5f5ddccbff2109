//! The provider's table of order sessions (sans-IO): what it checks before
//! accepting an order, how it takes vouchers, and when it redeems or ends a
//! session. The [`crate::provider::host`] driver feeds it chain reads, UAPI counters
//! and the clock, and carries out what it decides.
//!
//! **Who may act on a session.** A session belongs to the libp2p peer that
//! made its `Connect` (libp2p authenticates the sender's PeerId); vouchers
//! and `Disconnect` from any other peer are refused
//! ([`SessionError::NotSessionClient`]) and leave the session untouched. A
//! voucher counts as a strike (under-paying, above the escrow) only once its
//! signature is the order client's, so nobody else can make a session
//! collect strikes.
//!
//! **Capacity.** An order holds one of the provider's places from the moment
//! its `Connect` passes the checks ([`SessionTable::reserve`]) while it is
//! accepted on chain, not only once admitted: concurrent `Connect`s cannot
//! all see a free place and together pass `max_clients` or the per-client
//! cap. A failed acceptance gives the place back ([`SessionTable::release`]).
//!
//! **Credit.** The client may owe at most [`SessionPolicy::credit_limit`]
//! beyond its best voucher: [`SessionTable::check_credit`], fed the data
//! plane's counters at least once a second, says when to stop forwarding for
//! the peer, when to restore it and when the escrow is spent.

pub use super::error::SessionError;
use super::pricing::{self, Prices, MAX_UNDERPAID_STRIKES};
use super::record::SessionRecord;
use crate::wire::session::{ConnectRequest, VoucherMessage, CONNECT_MAX_SKEW_MS};
use flowshield_chain::alloy::primitives::{Address, U256};
use flowshield_chain::alloy::sol_types::Eip712Domain;
use flowshield_chain::voucher::{verify_voucher, SignedVoucher, VoucherError, VoucherLedger};
use flowshield_chain::OrderStatus;
use flowshield_proto::{PeerId, WgPublicKey};
use std::collections::HashMap;
use std::net::Ipv4Addr;

/// The chain's view of an order, as the table needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderView {
    pub client: Address,
    pub provider: Address,
    pub status: OrderStatus,
    pub escrow: U256,
}

/// The provider's session policy.
#[derive(Debug, Clone)]
pub struct SessionPolicy {
    /// Our chain address (the `provider` of orders we accept).
    pub me: Address,
    pub min_escrow: U256,
    pub prices: Prices,
    /// End a session when no voucher arrived for this long.
    pub idle_timeout_ms: u64,
    /// Redeem when the unredeemed amount reaches this...
    pub redeem_threshold: U256,
    /// ...or when this long passed since the last redemption.
    pub redeem_interval_ms: u64,
    /// What a client may owe beyond its best voucher before the provider
    /// stops forwarding for it (see [`crate::session::pricing::Prices::default_credit_limit`]).
    pub credit_limit: U256,
    /// Sessions at once (the offer's `max_clients`).
    pub max_clients: u32,
    /// Sessions at once for one client chain address.
    pub max_orders_per_client: u32,
}

/// The default of [`SessionPolicy::max_orders_per_client`].
pub const DEFAULT_MAX_ORDERS_PER_CLIENT: u32 = 4;

/// One accepted order.
#[derive(Debug, Clone)]
pub struct Session {
    pub order_id: U256,
    pub client: Address,
    /// The libp2p peer that connected the order: the only one heard on it.
    pub client_peer: PeerId,
    pub wg_key: WgPublicKey,
    pub address: Ipv4Addr,
    pub ledger: VoucherLedger,
    pub escrow: U256,
    pub accepted_at_ms: u64,
    pub last_voucher_ms: u64,
    /// What the provider measured as due when the last voucher arrived...
    pub due_at_last_voucher: U256,
    /// ...and when the one before it arrived (the tolerance is a share of
    /// the difference, see [`crate::session::pricing`]).
    pub due_before_last_voucher: U256,
    /// Forwarding is stopped: the client owes more than the credit limit.
    pub blocked: bool,
    pub strikes: u32,
    pub last_redeem_ms: u64,
    /// What the chain has paid so far.
    pub redeemed: U256,
}

/// What an observer (the dashboard) sees of one session.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionSnapshot {
    pub order_id: U256,
    pub client: Address,
    pub wg_key: WgPublicKey,
    pub address: Ipv4Addr,
    pub escrow: U256,
    pub accepted_at_ms: u64,
    /// When the last voucher was taken; `None` before the first.
    pub last_voucher_ms: Option<u64>,
    /// The best voucher's cumulative amount (0 before the first).
    pub vouchers_cumulative: U256,
    /// What the chain has paid so far.
    pub redeemed: U256,
}

impl Session {
    pub fn snapshot(&self) -> SessionSnapshot {
        let cumulative = self.ledger.owed();
        SessionSnapshot {
            order_id: self.order_id,
            client: self.client,
            wg_key: self.wg_key,
            address: self.address,
            escrow: self.escrow,
            accepted_at_ms: self.accepted_at_ms,
            last_voucher_ms: (!cumulative.is_zero()).then_some(self.last_voucher_ms),
            vouchers_cumulative: cumulative,
            redeemed: self.redeemed,
        }
    }
}

/// What taking a voucher led to.
#[derive(Debug, Clone, PartialEq)]
pub struct VoucherOutcome {
    pub cumulative: U256,
    /// Redeem this now (threshold or interval reached).
    pub redeem: Option<SignedVoucher>,
}

/// Why a session is to be ended without the client asking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    Idle,
    Underpaying,
    /// What the data plane measured costs the whole escrow.
    EscrowSpent,
}

/// What [`SessionTable::check_credit`] asks the driver to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreditAction {
    /// The client owes more than the credit limit: stop forwarding.
    Block,
    /// A voucher covered the debt: forward again.
    Restore,
    /// The escrow is spent: end and settle.
    End,
}

/// An order whose `Connect` passed the checks and is being accepted on
/// chain: it holds a place and its WireGuard key.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Reservation {
    client: Address,
    wg_key: WgPublicKey,
}

/// All sessions of one provider.
#[derive(Debug)]
pub struct SessionTable {
    policy: SessionPolicy,
    domain: Eip712Domain,
    sessions: HashMap<U256, Session>,
    /// Orders between their `Connect` checks and admission.
    reserved: HashMap<U256, Reservation>,
}

impl SessionTable {
    pub fn new(policy: SessionPolicy, domain: Eip712Domain) -> Self {
        Self {
            policy,
            domain,
            sessions: HashMap::new(),
            reserved: HashMap::new(),
        }
    }

    pub fn policy(&self) -> &SessionPolicy {
        &self.policy
    }

    pub fn get(&self, order: &U256) -> Option<&Session> {
        self.sessions.get(order)
    }

    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    pub fn order_ids(&self) -> Vec<U256> {
        self.sessions.keys().copied().collect()
    }

    /// Every session, oldest first.
    pub fn snapshot(&self) -> Vec<SessionSnapshot> {
        let mut all: Vec<SessionSnapshot> = self.sessions.values().map(Session::snapshot).collect();
        all.sort_by_key(|s| (s.accepted_at_ms, s.order_id));
        all
    }

    /// Everything a `Connect` must pass before the provider accepts the
    /// order on chain. Returns the order id.
    pub fn check_connect(
        &self,
        request: &ConnectRequest,
        order: Option<&OrderView>,
        me_peer: &PeerId,
        now_ms: u64,
    ) -> Result<U256, SessionError> {
        let order_id = self.check_connect_unpaid(request, order, me_peer, now_ms)?;
        if let Some(order) = order {
            if order.escrow < self.policy.min_escrow {
                return Err(SessionError::EscrowTooSmall {
                    order: order_id,
                    escrow: order.escrow,
                    min: self.policy.min_escrow,
                });
            }
            self.check_capacity(order.client)?;
        }
        Ok(order_id)
    }

    /// Room for one more session of `client`: fewer than `max_clients`
    /// sessions in all and fewer than `max_orders_per_client` of its own,
    /// counting the orders still being accepted.
    pub fn check_capacity(&self, client: Address) -> Result<(), SessionError> {
        let max = self.policy.max_clients;
        if self.sessions.len() + self.reserved.len() >= max as usize {
            return Err(SessionError::ProviderFull { max });
        }
        let max = self.policy.max_orders_per_client;
        let held = self
            .sessions
            .values()
            .filter(|s| s.client == client)
            .count()
            + self
                .reserved
                .values()
                .filter(|r| r.client == client)
                .count();
        if held >= max as usize {
            return Err(SessionError::TooManyOrders { client, max });
        }
        Ok(())
    }

    /// [`Self::check_connect`] but the escrow and capacity checks: a
    /// `Connect` passing this is the order's client's own (so the provider
    /// may reject a dust order on chain for it).
    pub fn check_connect_unpaid(
        &self,
        request: &ConnectRequest,
        order: Option<&OrderView>,
        me_peer: &PeerId,
        now_ms: u64,
    ) -> Result<U256, SessionError> {
        let skew_ms = now_ms.abs_diff(request.timestamp_ms);
        if skew_ms > CONNECT_MAX_SKEW_MS {
            return Err(SessionError::StaleConnect { skew_ms });
        }
        let (order_id, signer) = request.recover(me_peer)?;
        if self.sessions.contains_key(&order_id) || self.reserved.contains_key(&order_id) {
            return Err(SessionError::AlreadyConnected(order_id));
        }
        let key = request.client_wg_public_key;
        if let Some(other) = self.sessions.values().find(|s| s.wg_key == key) {
            return Err(SessionError::KeyInUse(other.wg_key, other.order_id));
        }
        if let Some((other, _)) = self.reserved.iter().find(|(_, r)| r.wg_key == key) {
            return Err(SessionError::KeyInUse(key, *other));
        }
        let order = order.ok_or(SessionError::UnknownOrder(order_id))?;
        if order.status == OrderStatus::None {
            return Err(SessionError::UnknownOrder(order_id));
        }
        if order.provider != self.policy.me {
            return Err(SessionError::NotOurOrder {
                order: order_id,
                provider: order.provider,
            });
        }
        if order.status != OrderStatus::Pending {
            return Err(SessionError::NotPending {
                order: order_id,
                status: order.status,
            });
        }
        if signer != order.client {
            return Err(SessionError::WrongClient {
                order: order_id,
                client: order.client,
                signer,
            });
        }
        Ok(order_id)
    }

    /// Holds a place (and `wg_key`) for `order` of `client` while it is
    /// accepted on chain. Call after [`Self::check_connect`] passed, under
    /// the same lock; [`Self::admit`] or [`Self::release`] ends it.
    pub fn reserve(&mut self, order: U256, client: Address, wg_key: WgPublicKey) {
        self.reserved.insert(order, Reservation { client, wg_key });
    }

    /// Gives back the place of an order whose acceptance failed.
    pub fn release(&mut self, order: &U256) {
        self.reserved.remove(order);
    }

    /// Orders holding a place while they are accepted.
    pub fn reserved_len(&self) -> usize {
        self.reserved.len()
    }

    /// Records an order accepted on chain for `client_peer`, with its
    /// tunnel address (its reservation, if any, becomes the session).
    #[allow(clippy::too_many_arguments)]
    pub fn admit(
        &mut self,
        order_id: U256,
        order: &OrderView,
        client_peer: PeerId,
        wg_key: WgPublicKey,
        address: Ipv4Addr,
        now_ms: u64,
    ) {
        self.reserved.remove(&order_id);
        let ledger = VoucherLedger::new(self.domain.clone(), order_id, order.client, order.escrow);
        self.sessions.insert(
            order_id,
            Session {
                order_id,
                client: order.client,
                client_peer,
                wg_key,
                address,
                ledger,
                escrow: order.escrow,
                accepted_at_ms: now_ms,
                last_voucher_ms: now_ms,
                due_at_last_voucher: U256::ZERO,
                due_before_last_voucher: U256::ZERO,
                blocked: false,
                strikes: 0,
                last_redeem_ms: now_ms,
                redeemed: U256::ZERO,
            },
        );
    }

    /// Takes up a session recorded before a restart (see
    /// [`crate::session::reconcile`]): its best voucher (checked again) and
    /// what the chain paid. The under-payment baseline starts afresh, so the
    /// first voucher after the restart cannot be a strike.
    pub fn restore(&mut self, record: &SessionRecord, now_ms: u64) {
        let view = OrderView {
            client: record.client,
            provider: self.policy.me,
            status: OrderStatus::Active,
            escrow: record.escrow,
        };
        self.admit(
            record.order_id,
            &view,
            record.client_peer,
            record.wg_key,
            record.address,
            now_ms,
        );
        if let Some(session) = self.sessions.get_mut(&record.order_id) {
            session.accepted_at_ms = record.accepted_at_ms;
            if let Some(best) = &record.best {
                if let Err(e) = session.ledger.offer(best.clone()) {
                    tracing::warn!(order = %record.order_id, error = %e, "recorded voucher refused");
                }
            }
            session.ledger.mark_redeemed(record.redeemed);
            session.redeemed = record.redeemed;
        }
    }

    /// The session of `order`, if `from` is the peer that connected it.
    pub fn session_of(&self, order: U256, from: &PeerId) -> Result<&Session, SessionError> {
        let session = self
            .sessions
            .get(&order)
            .ok_or(SessionError::NoSession(order))?;
        if session.client_peer != *from {
            return Err(SessionError::NotSessionClient { order, peer: *from });
        }
        Ok(session)
    }

    /// Takes a voucher sent by `from`; `measured_bytes` is the peer's rx + tx
    /// on our data plane right now.
    pub fn offer_voucher(
        &mut self,
        from: &PeerId,
        message: &VoucherMessage,
        measured_bytes: u64,
        now_ms: u64,
    ) -> Result<VoucherOutcome, SessionError> {
        let order_id = message.order_id;
        let voucher = message.to_signed();
        let policy = self.policy.clone();
        self.session_of(order_id, from)?;
        let session = self
            .sessions
            .get_mut(&order_id)
            .ok_or(SessionError::NoSession(order_id))?;
        // Only the client's own signature may cost it anything: a voucher
        // nobody can prove the client signed is refused without a strike.
        verify_voucher(&self.domain, &voucher, session.client)
            .map_err(|e| VoucherError::BadSignature(e.to_string()))?;
        // Replays and stale vouchers are refused as such, not as under-payment.
        let current = session.ledger.owed();
        if voucher.cumulative_amount <= current {
            return Err(VoucherError::NotIncreasing {
                given: voucher.cumulative_amount,
                current,
            }
            .into());
        }
        if voucher.cumulative_amount > session.escrow {
            session.strikes += 1;
            return Err(VoucherError::ExceedsEscrow {
                given: voucher.cumulative_amount,
                escrow: session.escrow,
            }
            .into());
        }
        if let Err(e) = pricing::check_not_underpaid(
            voucher.cumulative_amount,
            session.due_at_last_voucher,
            session.due_before_last_voucher,
        ) {
            session.strikes += 1;
            return Err(e.into());
        }
        session.ledger.offer(voucher)?;
        session.strikes = 0;
        session.last_voucher_ms = now_ms;
        let elapsed = now_ms.saturating_sub(session.accepted_at_ms);
        session.due_before_last_voucher = session.due_at_last_voucher;
        session.due_at_last_voucher = policy.prices.due(measured_bytes, elapsed, session.escrow);
        let cumulative = session.ledger.owed();
        let redeem = session.ledger.to_redeem().and_then(|best| {
            let unredeemed = best.cumulative_amount.saturating_sub(session.redeemed);
            let waited = now_ms.saturating_sub(session.last_redeem_ms);
            (unredeemed >= policy.redeem_threshold || waited >= policy.redeem_interval_ms)
                .then(|| best.clone())
        });
        Ok(VoucherOutcome { cumulative, redeem })
    }

    /// The chain redeemed up to `amount` on `order`.
    pub fn mark_redeemed(&mut self, order: U256, amount: U256, now_ms: u64) {
        if let Some(s) = self.sessions.get_mut(&order) {
            s.ledger.mark_redeemed(amount);
            s.redeemed = s.redeemed.max(amount);
            s.last_redeem_ms = now_ms;
        }
    }

    /// Weighs what the data plane measured for `order` (`measured_bytes`,
    /// rx + tx, and the time since acceptance) against its best voucher;
    /// says what to change, if anything. The driver calls it at least once
    /// a second per session and after each voucher.
    pub fn check_credit(
        &mut self,
        order: U256,
        measured_bytes: u64,
        now_ms: u64,
    ) -> Option<CreditAction> {
        let policy = &self.policy;
        let session = self.sessions.get_mut(&order)?;
        let elapsed = now_ms.saturating_sub(session.accepted_at_ms);
        let due = policy.prices.due(measured_bytes, elapsed, session.escrow);
        if !session.escrow.is_zero() && due >= session.escrow {
            return Some(CreditAction::End);
        }
        let owing = due.saturating_sub(session.ledger.owed());
        match (owing > policy.credit_limit, session.blocked) {
            (true, false) => {
                session.blocked = true;
                Some(CreditAction::Block)
            }
            (false, true) => {
                session.blocked = false;
                Some(CreditAction::Restore)
            }
            _ => None,
        }
    }

    /// Sessions the provider should end on its own.
    pub fn to_end(&self, now_ms: u64) -> Vec<(U256, EndReason)> {
        self.sessions
            .values()
            .filter_map(|s| {
                if s.strikes >= MAX_UNDERPAID_STRIKES {
                    Some((s.order_id, EndReason::Underpaying))
                } else if now_ms.saturating_sub(s.last_voucher_ms) > self.policy.idle_timeout_ms {
                    Some((s.order_id, EndReason::Idle))
                } else {
                    None
                }
            })
            .collect()
    }

    pub fn remove(&mut self, order: &U256) -> Option<Session> {
        self.sessions.remove(order)
    }
}

#[cfg(test)]
#[path = "table_tests.rs"]
mod tests;
