//! What a provider records about its order sessions so that they survive a
//! restart: one [`SessionRecord`] per order it took on, and one
//! [`AddedPeer`] per WireGuard peer it put on its data plane.
//!
//! These are plain values: the provider's store
//! (`crate::provider::store`) persists them, and [`super::reconcile`]
//! compares them with the chain and the data plane at start. A peer on the
//! data plane with no [`AddedPeer`] is not the provider's (the operator's
//! own peers, a verifier's probe peer) and is never touched.

use flowshield_chain::alloy::primitives::{Address, U256};
use flowshield_chain::voucher::SignedVoucher;
use flowshield_proto::{PeerId, WgPublicKey};
use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// Where a recorded session stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordState {
    /// Connect admitted; `acceptOrder` sent or about to be, not yet seen
    /// mined. The client has not been told yes.
    Accepting,
    /// Accepted on chain and acknowledged to the client; vouchers flow.
    Active,
    /// Ending: the provider will redeem its best voucher and settle.
    Ending,
}

impl RecordState {
    /// The name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Accepting => "accepting",
            Self::Active => "active",
            Self::Ending => "ending",
        }
    }
}

impl fmt::Display for RecordState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A state name that is none of [`RecordState`]'s.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown session state '{0}' (expected accepting, active or ending)")]
pub struct UnknownState(pub String);

impl FromStr for RecordState {
    type Err = UnknownState;
    fn from_str(s: &str) -> Result<Self, UnknownState> {
        match s {
            "accepting" => Ok(Self::Accepting),
            "active" => Ok(Self::Active),
            "ending" => Ok(Self::Ending),
            other => Err(UnknownState(other.chars().take(32).collect())),
        }
    }
}

/// Everything the provider must remember about one order session.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionRecord {
    pub order_id: U256,
    /// The order's client chain address (who signs vouchers).
    pub client: Address,
    /// The libp2p peer that connected the order.
    pub client_peer: PeerId,
    pub wg_key: WgPublicKey,
    /// The client's tunnel address.
    pub address: Ipv4Addr,
    pub escrow: U256,
    pub state: RecordState,
    /// The best voucher taken (highest cumulative amount), if any.
    pub best: Option<SignedVoucher>,
    /// What the chain has paid so far, as last seen.
    pub redeemed: U256,
    pub accepted_at_ms: u64,
    /// When the best voucher was taken (0 before the first).
    pub last_voucher_ms: u64,
    /// When the record last changed.
    pub updated_ms: u64,
}

impl SessionRecord {
    /// The best voucher's amount (0 before the first).
    pub fn best_amount(&self) -> U256 {
        self.best
            .as_ref()
            .map_or(U256::ZERO, |v| v.cumulative_amount)
    }

    /// The best voucher, if it pays more than `redeemed`.
    pub fn unredeemed_voucher(&self, redeemed: U256) -> Option<&SignedVoucher> {
        self.best
            .as_ref()
            .filter(|v| v.cumulative_amount > redeemed)
    }
}

/// A WireGuard peer the provider put on its data plane (recorded before
/// the UAPI call that adds it, forgotten after the one that removes it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddedPeer {
    pub wg_key: WgPublicKey,
    pub order_id: U256,
    pub address: Ipv4Addr,
    pub added_ms: u64,
}
