//! `flowshield-verifier`: probes FlowShield providers through real WireGuard tunnels
//! and reports on their quality.
//!
//! What it does, per round (cron or interval schedule with jitter, [`schedule`]):
//! 1. lists targets ([`target`]): the config's `[[targets]]`, or providers with active
//!    orders on the market (WireGuard key from the chain; endpoint, tunnel addressing
//!    and advertised quality from the config until the market publishes offers);
//! 2. probes each one as a client would ([`probe`]): a `flowshield daemon` interface
//!    with the verifier's own WireGuard key, optionally inside a network namespace
//!    (`verifier.netns`) so probe traffic never mixes with the host's; measures
//!    handshake time, RTT and loss (`ping -n` through the tunnel), and throughput (a
//!    bounded download from the provider's probe responder, [`probe::responder`]);
//!    numeric addresses only, nothing is ever resolved; the interface is always torn
//!    down;
//! 3. judges the metrics against the quality the provider promised on chain ([`stats`],
//!    [`judge`], sans IO; the config's thresholds only when it registered none, and
//!    then failures are never reported);
//! 4. stores everything in SQLite ([`store`]); a passing probe, and the K-th
//!    consecutive failing probe of a period (K: the market's `failStreak`), is signed as
//!    an EIP-712 `PublishedReport` for the chain's current period with the verifier's
//!    chain key ([`report`]) and published to every configured fullnode ([`publish`]).
//!    That type is not the contract's vote type, so nobody can relay it on chain;
//! 5. votes on chain from its own key (`submitReport`), once per provider and period
//!    ([`vote`]): fail at the K-th consecutive failure; otherwise pass after the period
//!    ends, inside its challenge window, if it saw the provider pass — both sides count
//!    in the quorum. Slashing is the contract's: `finalize` after the period's challenge
//!    window, when enough distinct verifiers' failing votes are a large enough share of
//!    all its votes.
//!
//! Design decisions:
//! - Passing votes wait for the period's end: the contract takes one vote per verifier
//!   and period, kept for a failure that may still come in the period. Each vote bonds
//!   `reportBond` of the verifier's stake until the period is finalized and claimed, so
//!   a verifier stakes the minimum plus a bond per (provider, period) it may vote on
//!   before its bonds come back.
//! - Failing probes short of the streak are not signed.
//! - A probe that cannot run because of the verifier's side (no route to the
//!   endpoint, daemon cannot start) is an error and produces no report; a provider
//!   that does not complete the handshake, loses packets or is slow is measured and
//!   fails.
//! - Probe admission: the provider must admit the verifier's WireGuard key as a peer
//!   with the configured tunnel address. In production the market's provider role will
//!   do that when the verifier buys a small order or presents its registered-verifier
//!   identity; until then the provider operator configures it.
//! - The provider side of the throughput probe is `flowshield-verifier responder`; the
//!   fullnode side of publication (`POST /v1/reports`) comes with the market sidecar.
//!
//! What it is not: not a load tester (transfers are capped at 16 MiB), not a monitor
//! of the verifier's own network, and it holds no market logic.

#![warn(missing_docs)]

pub mod config;
pub mod display;
pub mod error;
pub mod judge;
pub mod keys;
pub mod probe;
pub mod publish;
pub mod report;
pub mod schedule;
pub mod stats;
pub mod store;
pub mod target;
pub mod verifier;
pub mod vote;

pub use config::{Config, MarketSource, ProbeSettings, SourceKind};
pub use error::{ConfigError, ProbeError, Result, VerifierError};
pub use stats::{AdvertisedQuality, Metrics, Verdict};
pub use target::{ChainSource, ProbeTarget, StaticSource, TargetSource};
pub use verifier::{ChainOutcome, ProbeResult, RoundReport, Verifier};
