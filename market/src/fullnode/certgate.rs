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
//!
//! Bounded under floods ([`GateLimits`]): announcements and verdicts are
//! kept for at most `max_providers` providers each, the least recently
//! heard evicted first; at most `max_running` checks run on chain at once.
//! When that many are running, a provider with an expired verdict keeps it
//! until there is room, and a provider with none is refused as
//! `cert_checks_busy` (it is checked on a later heartbeat).

use crate::net::MapGauges;
use crate::unix_ms;
use crate::wire::cert::binding_of;
use flowshield_ca::registry::Registry;
use flowshield_ca::{verify_node_cert, NodeBinding, VerifyError};
use flowshield_proto::{CertAnnouncement, Heartbeat, PeerId};
use lru::LruCache;
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::num::NonZeroUsize;
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

/// How much certificate state a fullnode keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GateLimits {
    /// Providers whose announcement (and, separately, verdict) is kept.
    pub max_providers: usize,
    /// Certificate checks running on chain at once.
    pub max_running: usize,
}

impl Default for GateLimits {
    fn default() -> Self {
        Self {
            max_providers: 100_000,
            max_running: 64,
        }
    }
}

/// Where the gate reports the size and evictions of its maps.
#[derive(Debug, Clone)]
pub struct GateGauges {
    pub announced: MapGauges,
    pub verdicts: MapGauges,
    pub running: MapGauges,
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

/// The certificate state of the providers heard from most recently
/// (sans-IO; the caller passes the time).
#[derive(Debug)]
pub struct CertGate {
    policy: CertPolicy,
    limits: GateLimits,
    announced: LruCache<PeerId, Announced>,
    verdicts: LruCache<PeerId, Verdict>,
    running: HashSet<PeerId>,
    announced_evictions: u64,
    verdict_evictions: u64,
    gauges: Option<GateGauges>,
}

impl CertGate {
    pub fn new(policy: CertPolicy) -> Self {
        Self::with_limits(policy, GateLimits::default(), None)
    }

    pub fn with_limits(policy: CertPolicy, limits: GateLimits, gauges: Option<GateGauges>) -> Self {
        let cap = NonZeroUsize::new(limits.max_providers).unwrap_or(NonZeroUsize::MIN);
        Self {
            policy,
            limits,
            announced: LruCache::new(cap),
            verdicts: LruCache::new(cap),
            running: HashSet::new(),
            announced_evictions: 0,
            verdict_evictions: 0,
            gauges,
        }
    }

    /// Providers with a kept announcement, kept verdict, running check.
    pub fn sizes(&self) -> (usize, usize, usize) {
        (
            self.announced.len(),
            self.verdicts.len(),
            self.running.len(),
        )
    }

    /// Announcements and verdicts evicted to make room so far.
    pub fn evictions(&self) -> (u64, u64) {
        (self.announced_evictions, self.verdict_evictions)
    }

    fn report(&self) {
        if let Some(g) = &self.gauges {
            g.announced
                .observe(self.announced.len(), self.announced_evictions);
            g.verdicts
                .observe(self.verdicts.len(), self.verdict_evictions);
            g.running.observe(self.running.len(), 0);
        }
    }

    /// Keeps `announcement` if it is the provider's newest; returns whether
    /// it was kept.
    pub fn announce(&mut self, announcement: &CertAnnouncement) -> bool {
        let provider = announcement.provider_peer_id;
        if self
            .announced
            .peek(&provider)
            .is_some_and(|a| a.timestamp_ms >= announcement.timestamp_ms)
        {
            return false;
        }
        let hash: CertHash = announcement
            .chain
            .first()
            .map(|leaf| Sha256::digest(leaf).into())
            .unwrap_or_default();
        let announced = Announced {
            hash,
            chain: Arc::new(announcement.chain.clone()),
            timestamp_ms: announcement.timestamp_ms,
        };
        if let Some((evicted, _)) = self.announced.push(provider, announced) {
            if evicted != provider {
                self.announced_evictions += 1;
            }
        }
        self.report();
        true
    }

    /// Decides about a verified heartbeat at `now_ms`.
    pub fn check(&mut self, heartbeat: &Heartbeat, now_ms: u64) -> Decision {
        let provider = heartbeat.offer.provider_peer_id;
        // `get` marks the provider as recently heard.
        let Some(announced) = self.announced.get(&provider).cloned() else {
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
        let cached = self.verdicts.get(&provider).and_then(|verdict| {
            (verdict.hash == announced.hash && verdict.binding == expected)
                .then_some((verdict.result, now_ms < verdict.expires_ms))
        });
        let from_verdict = |result: Result<(), &'static str>| match result {
            Ok(()) => Decision::Accept,
            Err(reason) => Decision::Refuse(reason),
        };
        match cached {
            Some((result, true)) => return from_verdict(result),
            _ if self.running.contains(&provider) => return Decision::Hold,
            // No room for another check: an expired verdict stands until
            // there is.
            Some((result, false)) if self.running.len() >= self.limits.max_running => {
                return from_verdict(result)
            }
            None if self.running.len() >= self.limits.max_running => {
                return Decision::Refuse("cert_checks_busy")
            }
            _ => {}
        }
        self.running.insert(provider);
        self.report();
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
        let verdict = Verdict {
            hash: job.hash,
            binding: job.expected.clone(),
            result,
            expires_ms,
        };
        if let Some((evicted, _)) = self.verdicts.push(job.provider, verdict) {
            if evicted != job.provider {
                self.verdict_evictions += 1;
            }
        }
        self.report();
        result
    }

    /// Forgets providers no longer live.
    pub fn forget(&mut self, provider: &PeerId) {
        self.announced.pop(provider);
        self.verdicts.pop(provider);
        self.running.remove(provider);
        self.report();
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
pub const REFUSAL_REASONS: [&str; 14] = [
    "no_certificate",
    "cert_checks_busy",
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

#[cfg(test)]
mod tests {
    use super::*;
    use flowshield_proto::{Keypair, Offer, Region, WgPublicKey};

    const NOW: u64 = 1_700_000_000_000;

    fn heartbeat(keypair: &Keypair) -> Heartbeat {
        Heartbeat {
            offer: Offer {
                provider_peer_id: keypair.public().to_peer_id(),
                chain_address: "0x00112233445566778899aabbccddeeff00112233"
                    .parse()
                    .expect("address"),
                wg_public_key: WgPublicKey([7; 32]),
                endpoint: "192.0.2.10:51820".parse().expect("endpoint"),
                region: Region::new("eu-west").expect("region"),
                price_per_gib_wei: 1,
                price_per_hour_wei: 1,
                capacity_mbps: 10,
                max_clients: 1,
                tunnel_subnet: None,
            },
            seq: 1,
            timestamp_ms: NOW,
        }
    }

    fn announcement(keypair: &Keypair, timestamp_ms: u64) -> CertAnnouncement {
        CertAnnouncement {
            provider_peer_id: keypair.public().to_peer_id(),
            chain: vec![keypair.public().encode_protobuf(), vec![1, 2, 3]],
            timestamp_ms,
        }
    }

    fn gate(max_providers: usize, max_running: usize) -> CertGate {
        CertGate::with_limits(
            CertPolicy::default(),
            GateLimits {
                max_providers,
                max_running,
            },
            None,
        )
    }

    fn job(decision: Decision) -> VerifyJob {
        match decision {
            Decision::Verify(job) => *job,
            other => panic!("expected a check, got {other:?}"),
        }
    }

    #[test]
    fn announcements_are_bounded_and_evict_the_least_recent() {
        let mut gate = gate(3, 64);
        let keys: Vec<_> = (0..5).map(|_| Keypair::generate_ed25519()).collect();
        for key in &keys {
            assert!(gate.announce(&announcement(key, NOW)));
        }
        assert_eq!(gate.sizes().0, 3);
        assert_eq!(gate.evictions().0, 2);
        // The first two were evicted: their heartbeats count as without
        // a certificate (accepted, the policy does not require one).
        assert_eq!(gate.check(&heartbeat(&keys[0]), NOW), Decision::Accept);
        // The newest three are still known: their certificate gets checked.
        assert!(matches!(
            gate.check(&heartbeat(&keys[4]), NOW),
            Decision::Verify(_)
        ));
    }

    #[test]
    fn verdicts_are_bounded() {
        let mut gate = gate(2, 64);
        let keys: Vec<_> = (0..3).map(|_| Keypair::generate_ed25519()).collect();
        for key in &keys {
            gate.announce(&announcement(key, NOW));
            let job = job(gate.check(&heartbeat(key), NOW));
            assert_eq!(gate.record(&job, Ok(u64::MAX / 1000), NOW), Ok(()));
        }
        assert_eq!(gate.sizes().1, 2);
        assert_eq!(gate.evictions().1, 1);
        assert_eq!(gate.check(&heartbeat(&keys[2]), NOW + 1), Decision::Accept);
    }

    #[test]
    fn running_checks_are_capped_and_expired_verdicts_stand_meanwhile() {
        let mut gate = gate(100, 1);
        let known = Keypair::generate_ed25519();
        gate.announce(&announcement(&known, NOW));
        let first = job(gate.check(&heartbeat(&known), NOW));
        assert_eq!(gate.record(&first, Ok(u64::MAX / 1000), NOW), Ok(()));

        // A newcomer takes the only slot; a second one is refused as busy.
        let a = Keypair::generate_ed25519();
        let b = Keypair::generate_ed25519();
        gate.announce(&announcement(&a, NOW));
        gate.announce(&announcement(&b, NOW));
        let running = job(gate.check(&heartbeat(&a), NOW));
        assert_eq!(gate.check(&heartbeat(&a), NOW), Decision::Hold);
        assert_eq!(
            gate.check(&heartbeat(&b), NOW),
            Decision::Refuse("cert_checks_busy")
        );
        assert_eq!(gate.sizes().2, 1);

        // The known provider's verdict has expired, but with no room to
        // check again it stands rather than dropping a good provider.
        let later = NOW + CertPolicy::default().ttl.as_millis() as u64 + 1;
        assert_eq!(gate.check(&heartbeat(&known), later), Decision::Accept);

        // Once the slot is free, the newcomer is checked.
        gate.record(&running, Err(VerifyError::Revoked), NOW)
            .unwrap_err();
        assert!(matches!(
            gate.check(&heartbeat(&b), NOW),
            Decision::Verify(_)
        ));
    }
}
