//! Attacks on the provider's side of the session protocol, each written as
//! the attacker acts: raw libp2p nodes sending session messages, raw
//! contract calls on a real local chain, traffic through a real data plane.
//! Each test asserts that the attacker gains nothing. Needs root (data
//! planes in network namespaces).
//!
//! - [`stranger`]: a peer that never connected the order acts on it;
//! - [`credit`]: a client that moves traffic and does not pay;
//! - [`griefing`]: capacity, dust orders and borrowed WireGuard keys;
//! - [`egress`]: a client aiming at what lies behind the provider;
//! - [`shaping`]: a client taking more bandwidth than the offer promises;
//! - [`restricted`]: a compromised sidecar reaching for the data plane's key;
//! - [`slowchain`]: a chain mining every 5 s while a session settles.

mod common;

#[path = "adversary/credit.rs"]
mod credit;
#[path = "adversary/egress.rs"]
mod egress;
#[path = "adversary/fixture.rs"]
mod fixture;
#[path = "adversary/griefing.rs"]
mod griefing;
#[path = "adversary/restricted.rs"]
mod restricted;
#[path = "adversary/shaping.rs"]
mod shaping;
#[path = "adversary/slowchain.rs"]
mod slowchain;
#[path = "adversary/stranger.rs"]
mod stranger;
