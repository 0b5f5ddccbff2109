//! # flowshield-proto
//!
//! The market's wire types, shared by every crate that speaks to the market:
//! - [`cert`]: [`CertAnnouncement`], a provider's DeCA certificate chain,
//!   signed and gossiped apart from its heartbeats.
//! - [`offer`]: what a provider sells ([`Offer`]) and the periodic
//!   [`Heartbeat`] that carries it.
//! - [`signed`]: [`SignedMessage`], the envelope that binds a payload to the
//!   libp2p Ed25519 key of its author, with size limits on decode.
//! - [`batch`]: [`verify_batch`], many signed messages checked at once,
//!   each getting the answer it would get alone.
//! - [`replay`]: [`ReplayGuard`], which rejects replayed, stale and
//!   future-dated heartbeats.
//! - [`error`]: [`ProtoError`], one variant per reason a message is refused.
//! - [`eip712`]: the market contract's EIP-712 domain, the verifier
//!   [`Report`] struct, its digest and contract-strict signature recovery
//!   (`flowshield-chain` re-exports them for on-chain submission).
//! - [`report`]: [`SignedReport`], the document a verifier publishes to
//!   fullnodes, and [`verify_report`], the checks a receiver makes.
//! - [`unix_ms`]: the clock every signed message is stamped with.
//!
//! Everything here is sans-IO: no sockets, no async runtime, and the checks
//! take the time as an argument (`now_ms`) rather than read a clock.
//! Not here: transport (libp2p lives in `flowshield-market`), chain calls
//! and signing keys (`flowshield-chain`), certificate verification (that is
//! `flowshield-ca`).

pub mod batch;
pub mod cert;
pub mod eip712;
pub mod error;
pub mod offer;
pub mod replay;
pub mod report;
pub mod signed;
pub mod signers;

pub use batch::verify_batch;
pub use cert::CertAnnouncement;
pub use eip712::{market_domain, published_report_digest, report_digest, Report};
pub use error::ProtoError;
pub use libp2p_identity::{Keypair, PeerId, PublicKey};
pub use offer::{peer_id_hash, ChainAddress, Heartbeat, Offer, Region, TunnelSubnet, WgPublicKey};
pub use replay::{ReplayGuard, ReplayPolicy};
pub use report::{verify_report, CheckedReport, InvalidReport, SignedReport};
pub use signed::{
    max_envelope_for, Signable, SignedMessage, MAX_ENVELOPE_BYTES, MAX_PAYLOAD_BYTES,
};
pub use signers::SignerKeys;

/// Milliseconds since the Unix epoch (0 if the clock is before it): the
/// timestamp of every signed market message and the `now_ms` the checks take.
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}
