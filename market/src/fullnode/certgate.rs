//! DeCA admission of providers: a heartbeat is indexed only if the
//! provider's certificate binds the keys the heartbeat names.
//!
//! How the certificate travels: a provider gossips a signed
//! [`CertAnnouncement`] (its `[leaf, operator root]` chain) when it starts
//! and every few heartbeats (`crate::provider`'s announcer); heartbeats themselves
//! stay small. A fullnode keeps the newest announcement per provider. For
//! each heartbeat, [`CertGate::check`] looks up the verdict cached for
//! (provider, certificate hash, the heartbeat's binding); when there is
//! none it asks the fullnode to run [`verify`] — `flowshield_ca::
//! verify_node_cert` against the registry on chain — and to hold the
//! heartbeat until the verdict is in. Verdicts expire: a valid one after
//! the TTL (or at the certificate's end, if sooner), so revocations on
//! chain are seen; a refusal sooner, so a fixed provider is heard again.
//!
//! Policy: a provider with a certificate that does not verify or does not
//! match its heartbeat is always refused. A provider without one is
//! refused only under `require` (`--require-cert`).

use crate::unix_ms;
use crate::wire::cert::binding_of;
use flowshield_ca::registry::Registry;
use flowshield_ca::{verify_node_cert, NodeBinding, VerifyError};
use flowshield_proto::{CertAnnouncement, Heartbeat, PeerId};
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

/// How long a refusal is remembered before the certificate is checked again.
const REFUSAL_TTL_MS: u64 = 30_000;

/// Certificate policy of a fullnode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CertPolicy {
    /// Refuse providers that have announced no certificate.
    pub require: bool,
    /// How long a valid verdict is trusted before it is checked again.
    pub ttl: Duration,
}

impl Default for CertPolicy {
    fn default() -> Self {
        Self {
            require: false,
            ttl: Duration::from_secs(600),
        }
    }
}

/// SHA-256 of the leaf DER, the certificate's identity.
pub type CertHash = [u8; 32];

/// What to do with a heartbeat.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    Accept,
    /// Refuse, for this reason (a metrics label).
    Refuse(&'static str),
    /// Hold it: a check of this provider's certificate is running.
    Hold,
    /// Hold it and run [`verify`] on this chain for this binding.
    Verify(Box<VerifyJob>),
}

/// A certificate check to run.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifyJob {
    pub provider: PeerId,
    pub hash: CertHash,
    pub chain: Arc<Vec<Vec<u8>>>,
    pub expected: NodeBinding,
}

#[derive(Debug, Clone)]
struct Announced {
    hash: CertHash,
    chain: Arc<Vec<Vec<u8>>>,
    timestamp_ms: u64,
}

#[derive(Debug, Clone)]
struct Verdict {
    hash: CertHash,
    binding: NodeBinding,
    /// `Ok` or the refusal reason.
    result: Result<(), &'static str>,
    /// Unix ms after which the certificate is checked again.
    expires_ms: u64,
}

/// The certificate state of every provider heard from (sans-IO; the
/// caller passes the time).
#[derive(Debug, Default)]
pub struct CertGate {
    policy: CertPolicy,
    announced: HashMap<PeerId, Announced>,
    verdicts: HashMap<PeerId, Verdict>,
    running: HashSet<PeerId>,
}

impl CertGate {
    pub fn new(policy: CertPolicy) -> Self {
        Self {
            policy,
            ..Self::default()
        }
    }

    /// Keeps `announcement` if it is the provider's newest; returns whether
    /// it was kept.
    pub fn announce(&mut self, announcement: &CertAnnouncement) -> bool {
        let provider = announcement.provider_peer_id;
        if self
            .announced
            .get(&provider)
            .is_some_and(|a| a.timestamp_ms >= announcement.timestamp_ms)
        {
            return false;
        }
        let hash: CertHash = announcement
            .chain
            .first()
            .map(|leaf| Sha256::digest(leaf).into())
            .unwrap_or_default();
        self.announced.insert(
            provider,
            Announced {
                hash,
                chain: Arc::new(announcement.chain.clone()),
                timestamp_ms: announcement.timestamp_ms,
            },
        );
        true
    }

    /// Decides about a verified heartbeat at `now_ms`.
    pub fn check(&mut self, heartbeat: &Heartbeat, now_ms: u64) -> Decision {
        let provider = heartbeat.offer.provider_peer_id;
        let Some(announced) = self.announced.get(&provider) else {
            return if self.policy.require {
                Decision::Refuse("no_certificate")
            } else {
                Decision::Accept
            };
        };
        let expected = match binding_of(&heartbeat.offer) {
            Ok(binding) => binding,
            Err(reason) => return Decision::Refuse(reason),
        };
        if let Some(verdict) = self.verdicts.get(&provider) {
            if verdict.hash == announced.hash
                && verdict.binding == expected
                && now_ms < verdict.expires_ms
            {
                return match verdict.result {
                    Ok(()) => Decision::Accept,
                    Err(reason) => Decision::Refuse(reason),
                };
            }
        }
        if !self.running.insert(provider) {
            return Decision::Hold;
        }
        Decision::Verify(Box::new(VerifyJob {
            provider,
            hash: announced.hash,
            chain: announced.chain.clone(),
            expected,
        }))
    }

    /// Records the outcome of a [`VerifyJob`] (`Ok(not_after in seconds)`)
    /// finished at `now_ms`.
    pub fn record(
        &mut self,
        job: &VerifyJob,
        outcome: Result<u64, VerifyError>,
        now_ms: u64,
    ) -> Result<(), &'static str> {
        self.running.remove(&job.provider);
        let (result, expires_ms) = match outcome {
            Ok(not_after_secs) => (
                Ok(()),
                now_ms
                    .saturating_add(self.policy.ttl.as_millis() as u64)
                    .min(not_after_secs.saturating_mul(1000)),
            ),
            Err(e) => (Err(refusal_reason(&e)), now_ms + REFUSAL_TTL_MS),
        };
        self.verdicts.insert(
            job.provider,
            Verdict {
                hash: job.hash,
                binding: job.expected.clone(),
                result,
                expires_ms,
            },
        );
        result
    }

    /// Forgets providers no longer live.
    pub fn forget(&mut self, provider: &PeerId) {
        self.announced.remove(provider);
        self.verdicts.remove(provider);
        self.running.remove(provider);
    }
}

/// A stable metrics label for each way a certificate can fail.
pub fn refusal_reason(error: &VerifyError) -> &'static str {
    match error {
        VerifyError::Malformed(_) => "cert_malformed",
        VerifyError::BadSignature(_) => "cert_bad_signature",
        VerifyError::IssuerNotCa => "cert_issuer_not_ca",
        VerifyError::Expired { .. } => "cert_expired",
        VerifyError::NotYetValid { .. } => "cert_not_yet_valid",
        VerifyError::UnknownOperator(_) => "cert_unknown_operator",
        VerifyError::BindingMalformed => "cert_binding_malformed",
        VerifyError::SubjectKeyMismatch => "cert_subject_key_mismatch",
        VerifyError::BindingMismatch { .. } => "cert_binding_mismatch",
        VerifyError::Revoked => "cert_revoked",
        VerifyError::NotInLog(_) => "cert_not_in_log",
        VerifyError::Registry(_) => "cert_registry_unavailable",
    }
}

/// Every label the gate can give, for pre-registering metric series.
pub const REFUSAL_REASONS: [&str; 13] = [
    "no_certificate",
    "cert_malformed",
    "cert_bad_signature",
    "cert_issuer_not_ca",
    "cert_expired",
    "cert_not_yet_valid",
    "cert_unknown_operator",
    "cert_binding_malformed",
    "cert_subject_key_mismatch",
    "cert_binding_mismatch",
    "cert_revoked",
    "cert_not_in_log",
    "cert_registry_unavailable",
];

/// Runs a [`VerifyJob`] against the registry on chain; `Ok(not_after)`.
pub async fn verify(registry: &dyn Registry, job: &VerifyJob) -> Result<u64, VerifyError> {
    let now = unix_ms() / 1000;
    verify_node_cert(registry, &job.chain, &job.expected, None, false, now)
        .await
        .map(|facts| facts.not_after)
}
