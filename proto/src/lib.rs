//! # flowshield-proto
//!
//! The market's wire types, shared by every crate that speaks to the market:
//! - [`cert`]: [`CertAnnouncement`], a provider's DeCA certificate chain,
//!   signed and gossiped apart from its heartbeats.
//! - [`offer`]: what a provider sells ([`Offer`]) and the periodic
//!   [`Heartbeat`] that carries it.
//! - [`signed`]: [`SignedMessage`], the envelope that binds a payload to the
//!   libp2p Ed25519 key of its author, with size limits on decode.
//! - [`replay`]: [`ReplayGuard`], which rejects replayed, stale and
//!   future-dated heartbeats.
//! - [`error`]: [`ProtoError`], one variant per reason a message is refused.
//!
//! Everything here is sans-IO: no sockets, no clocks (callers pass `now_ms`),
//! no async runtime. Not here: transport (libp2p lives in `flowshield-market`),
//! chain types, certificate verification (that is `flowshield-ca`).

pub mod cert;
pub mod error;
pub mod offer;
pub mod replay;
pub mod signed;

pub use cert::CertAnnouncement;
pub use error::ProtoError;
pub use libp2p_identity::{Keypair, PeerId, PublicKey};
pub use offer::{ChainAddress, Heartbeat, Offer, Region, WgPublicKey};
pub use replay::{ReplayGuard, ReplayPolicy};
pub use signed::{
    max_envelope_for, Signable, SignedMessage, MAX_ENVELOPE_BYTES, MAX_PAYLOAD_BYTES,
};
