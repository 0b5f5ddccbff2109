//! DeCA: the FlowShield decentralized certificate authority.
//!
//! A DeCA operator issues short-lived X.509 certificates that bind one node's three keys —
//! WireGuard (X25519), libp2p (Ed25519, the certificate's subject key) and chain (secp256k1
//! address) — after the node proves possession of each ([`pop`]). Every issuance and
//! revocation is appended to an RFC 6962 Merkle log ([`log`]) whose root the operator anchors
//! in the on-chain registry ([`registry`]), where operators are registered and revocations
//! recorded. The market checks a provider's certificate with [`verify::verify_node_cert`].
//!
//! This crate is not a general-purpose CA: it issues only node certificates under its own
//! profile, and it does not speak ACME or real OCSP (its status endpoint is JSON).

pub mod authority;
pub mod binding;
pub mod client;

pub mod log;
pub mod node;
pub mod pop;
pub mod registry;
pub mod service;
pub mod store;

pub mod verify;

pub use binding::{BindingField, NodeBinding};
pub use verify::{verify_node_cert, CertFacts, InclusionEvidence, VerifyError};

/// Current Unix time in seconds (certificate validity is in seconds), from
/// the market's clock [`flowshield_proto::unix_ms`].
pub fn unix_now() -> u64 {
    flowshield_proto::unix_ms() / 1000
}
