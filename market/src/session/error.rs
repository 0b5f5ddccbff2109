//! Why the provider refused a session message ([`SessionError`]), and the
//! stable name programs see for each reason ([`SessionError::kind`]).

use super::pricing::Underpaid;
use crate::wire::session::{RejectKind, WireError, CONNECT_MAX_SKEW_MS};
use flowshield_chain::alloy::primitives::{Address, U256};
use flowshield_chain::voucher::VoucherError;
use flowshield_chain::OrderStatus;
use flowshield_proto::{PeerId, WgPublicKey};

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
    #[error("WireGuard key {0} is already a peer on the provider's interface")]
    KeyOnInterface(WgPublicKey),
    #[error("order {0} has no session with this provider")]
    NoSession(U256),
    #[error("order {order}'s session belongs to the peer that connected it, not to {peer}")]
    NotSessionClient { order: U256, peer: PeerId },
    #[error("provider full: it serves at most {max} clients at once")]
    ProviderFull { max: u32 },
    #[error("client {client} already holds {max} orders with this provider (the most allowed)")]
    TooManyOrders { client: Address, max: u32 },
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
            Self::KeyInUse(..) | Self::KeyOnInterface(_) => RejectKind::KeyInUse,
            Self::NoSession(_) => RejectKind::NoSession,
            Self::NotSessionClient { .. } => RejectKind::NotSessionClient,
            Self::ProviderFull { .. } => RejectKind::ProviderFull,
            Self::TooManyOrders { .. } => RejectKind::TooManyOrders,
            Self::Voucher(VoucherError::NotIncreasing { .. }) => RejectKind::VoucherNotIncreasing,
            Self::Voucher(VoucherError::ExceedsEscrow { .. }) => RejectKind::VoucherExceedsEscrow,
            Self::Voucher(VoucherError::BadSignature(_)) => RejectKind::VoucherBadSignature,
            Self::Voucher(VoucherError::WrongOrder { .. }) => RejectKind::VoucherWrongOrder,
            Self::Underpaid(_) => RejectKind::Underpaid,
            Self::Unavailable(_) => RejectKind::Unavailable,
        }
    }
}
