//! The provider's table of order sessions (sans-IO): what it checks before
//! accepting an order, how it takes vouchers, and when it redeems or ends a
//! session. The [`crate::provider::host`] driver feeds it chain reads, UAPI counters
//! and the clock, and carries out what it decides.

use super::pricing::{self, Prices, Underpaid, MAX_UNDERPAID_STRIKES};
use crate::wire::session::{
    ConnectRequest, RejectKind, VoucherMessage, WireError, CONNECT_MAX_SKEW_MS,
};
use flowshield_chain::alloy::primitives::{Address, U256};
use flowshield_chain::alloy::sol_types::Eip712Domain;
use flowshield_chain::voucher::{SignedVoucher, VoucherError, VoucherLedger};
use flowshield_chain::OrderStatus;
use flowshield_proto::{PeerId, WgPublicKey};
use std::collections::HashMap;
use std::net::Ipv4Addr;

/// Why a session message was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SessionError {
    #[error("malformed request: {0}")]
    Wire(#[from] WireError),
    #[error("order {0} does not exist on chain")]
    UnknownOrder(U256),
    #[error("order {order} is with provider {provider}, not with this provider")]
    NotOurOrder { order: U256, provider: Address },
    #[error("order {order} is {status:?}, expected Pending")]
    NotPending { order: U256, status: OrderStatus },
    #[error("order {order} escrows {escrow} wei, this provider needs at least {min}")]
    EscrowTooSmall {
        order: U256,
        escrow: U256,
        min: U256,
    },
    #[error("order {order} was opened by {client}, but the request is signed by {signer}")]
    WrongClient {
        order: U256,
        client: Address,
        signer: Address,
    },
    #[error("connect timestamp is {skew_ms} ms away from the provider's clock (max {CONNECT_MAX_SKEW_MS})")]
    StaleConnect { skew_ms: u64 },
    #[error("order {0} already has a session")]
    AlreadyConnected(U256),
    #[error("WireGuard key {0} is already used by order {1}")]
    KeyInUse(WgPublicKey, U256),
    #[error("order {0} has no session with this provider")]
    NoSession(U256),
    #[error("voucher refused: {0}")]
    Voucher(#[from] VoucherError),
    #[error(transparent)]
    Underpaid(#[from] Underpaid),
    #[error("provider busy: {0}")]
    Unavailable(String),
}

impl SessionError {
    /// A stable name for programs (`Rejected.kind`).
    pub fn kind(&self) -> RejectKind {
        match self {
            Self::Wire(_) => RejectKind::Malformed,
            Self::UnknownOrder(_) => RejectKind::UnknownOrder,
            Self::NotOurOrder { .. } => RejectKind::NotOurOrder,
            Self::NotPending { .. } => RejectKind::NotPending,
            Self::EscrowTooSmall { .. } => RejectKind::EscrowTooSmall,
            Self::WrongClient { .. } => RejectKind::WrongClient,
            Self::StaleConnect { .. } => RejectKind::StaleConnect,
            Self::AlreadyConnected(_) => RejectKind::AlreadyConnected,
            Self::KeyInUse(..) => RejectKind::KeyInUse,
            Self::NoSession(_) => RejectKind::NoSession,
            Self::Voucher(VoucherError::NotIncreasing { .. }) => RejectKind::VoucherNotIncreasing,
            Self::Voucher(VoucherError::ExceedsEscrow { .. }) => RejectKind::VoucherExceedsEscrow,
            Self::Voucher(VoucherError::BadSignature(_)) => RejectKind::VoucherBadSignature,
            Self::Voucher(VoucherError::WrongOrder { .. }) => RejectKind::VoucherWrongOrder,
            Self::Underpaid(_) => RejectKind::Underpaid,
            Self::Unavailable(_) => RejectKind::Unavailable,
        }
    }
}

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
}

/// One accepted order.
#[derive(Debug, Clone)]
pub struct Session {
    pub order_id: U256,
    pub client: Address,
    pub wg_key: WgPublicKey,
    pub address: Ipv4Addr,
    pub ledger: VoucherLedger,
    pub escrow: U256,
    pub accepted_at_ms: u64,
    pub last_voucher_ms: u64,
    /// What the provider measured as due when the last voucher arrived.
    pub due_at_last_voucher: U256,
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
}

/// All sessions of one provider.
#[derive(Debug)]
pub struct SessionTable {
    policy: SessionPolicy,
    domain: Eip712Domain,
    sessions: HashMap<U256, Session>,
}

impl SessionTable {
    pub fn new(policy: SessionPolicy, domain: Eip712Domain) -> Self {
        Self {
            policy,
            domain,
            sessions: HashMap::new(),
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
        let skew_ms = now_ms.abs_diff(request.timestamp_ms);
        if skew_ms > CONNECT_MAX_SKEW_MS {
            return Err(SessionError::StaleConnect { skew_ms });
        }
        let (order_id, signer) = request.recover(me_peer)?;
        if self.sessions.contains_key(&order_id) {
            return Err(SessionError::AlreadyConnected(order_id));
        }
        if let Some(other) = self
            .sessions
            .values()
            .find(|s| s.wg_key == request.client_wg_public_key)
        {
            return Err(SessionError::KeyInUse(other.wg_key, other.order_id));
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
        if order.escrow < self.policy.min_escrow {
            return Err(SessionError::EscrowTooSmall {
                order: order_id,
                escrow: order.escrow,
                min: self.policy.min_escrow,
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

    /// Records an order accepted on chain, with its tunnel address.
    pub fn admit(
        &mut self,
        order_id: U256,
        order: &OrderView,
        wg_key: WgPublicKey,
        address: Ipv4Addr,
        now_ms: u64,
    ) {
        let ledger = VoucherLedger::new(self.domain.clone(), order_id, order.client, order.escrow);
        self.sessions.insert(
            order_id,
            Session {
                order_id,
                client: order.client,
                wg_key,
                address,
                ledger,
                escrow: order.escrow,
                accepted_at_ms: now_ms,
                last_voucher_ms: now_ms,
                due_at_last_voucher: U256::ZERO,
                strikes: 0,
                last_redeem_ms: now_ms,
                redeemed: U256::ZERO,
            },
        );
    }

    /// Takes a voucher; `measured_bytes` is the peer's rx + tx on our data
    /// plane right now.
    pub fn offer_voucher(
        &mut self,
        message: &VoucherMessage,
        measured_bytes: u64,
        now_ms: u64,
    ) -> Result<VoucherOutcome, SessionError> {
        let order_id = message.order_id;
        let voucher = message.to_signed();
        let policy = self.policy.clone();
        let session = self
            .sessions
            .get_mut(&order_id)
            .ok_or(SessionError::NoSession(order_id))?;
        // Replays and stale vouchers are refused as such, not as under-payment.
        let current = session.ledger.owed();
        if voucher.cumulative_amount <= current {
            return Err(VoucherError::NotIncreasing {
                given: voucher.cumulative_amount,
                current,
            }
            .into());
        }
        if let Err(e) =
            pricing::check_not_underpaid(voucher.cumulative_amount, session.due_at_last_voucher)
        {
            session.strikes += 1;
            return Err(e.into());
        }
        session.ledger.offer(voucher)?;
        session.strikes = 0;
        session.last_voucher_ms = now_ms;
        let elapsed = now_ms.saturating_sub(session.accepted_at_ms);
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
