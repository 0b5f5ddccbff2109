//! Replay and staleness checks for heartbeats (sans-IO: the caller passes
//! the current time).
//!
//! A heartbeat is accepted only if its timestamp lies in
//! `[now - max_age, now + max_future]` and its `seq` is above the last one
//! accepted from the same provider. Entries whose last timestamp has fallen
//! out of the window are forgotten by [`ReplayGuard::prune`]: a replay of any
//! message from such a provider is then refused as stale, so forgetting them
//! opens no hole.
//!
//! The table is bounded: when `max_tracked` providers are tracked and a new
//! one is heard, the provider heard from least recently is evicted. Refusing
//! newcomers instead would let a flood of fresh PeerIds lock real providers
//! out. What eviction costs: an evicted provider's messages still inside the
//! staleness window could be accepted once more; consumers keep the newest
//! timestamp per provider (the fullnode's live offers do), so such a replay
//! changes nothing there.

use crate::error::ProtoError;
use crate::offer::Heartbeat;
use libp2p_identity::PeerId;
use lru::LruCache;
use std::num::NonZeroUsize;

/// How old or how far ahead a heartbeat may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayPolicy {
    /// Older than this is stale.
    pub max_age_ms: u64,
    /// Further ahead than this is from the future (allowed clock skew).
    pub max_future_ms: u64,
    /// Most providers tracked at once; beyond it, a new provider evicts
    /// the one heard from least recently.
    pub max_tracked: usize,
}

impl Default for ReplayPolicy {
    fn default() -> Self {
        Self {
            max_age_ms: 30_000,
            max_future_ms: 5_000,
            max_tracked: 100_000,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct LastSeen {
    seq: u64,
    timestamp_ms: u64,
}

/// Last accepted sequence number per provider, least recently heard first
/// out.
#[derive(Debug)]
pub struct ReplayGuard {
    policy: ReplayPolicy,
    last: LruCache<PeerId, LastSeen>,
    evictions: u64,
}

impl Default for ReplayGuard {
    fn default() -> Self {
        Self::new(ReplayPolicy::default())
    }
}

impl ReplayGuard {
    pub fn new(policy: ReplayPolicy) -> Self {
        let cap = NonZeroUsize::new(policy.max_tracked).unwrap_or(NonZeroUsize::MIN);
        Self {
            policy,
            last: LruCache::new(cap),
            evictions: 0,
        }
    }

    pub fn policy(&self) -> ReplayPolicy {
        self.policy
    }

    /// Checks one message without recording it.
    pub fn check(
        &self,
        author: &PeerId,
        seq: u64,
        timestamp_ms: u64,
        now_ms: u64,
    ) -> Result<(), ProtoError> {
        if timestamp_ms > now_ms.saturating_add(self.policy.max_future_ms) {
            return Err(ProtoError::FromFuture {
                ahead_ms: timestamp_ms - now_ms,
            });
        }
        let age_ms = now_ms.saturating_sub(timestamp_ms);
        if age_ms > self.policy.max_age_ms {
            return Err(ProtoError::Stale { age_ms });
        }
        match self.last.peek(author) {
            Some(last) if seq <= last.seq => Err(ProtoError::Replayed {
                last: last.seq,
                got: seq,
            }),
            _ => Ok(()),
        }
    }

    /// Checks a verified heartbeat and, if accepted, records its `seq`.
    pub fn check_and_record(
        &mut self,
        heartbeat: &Heartbeat,
        now_ms: u64,
    ) -> Result<(), ProtoError> {
        let author = heartbeat.offer.provider_peer_id;
        self.check(&author, heartbeat.seq, heartbeat.timestamp_ms, now_ms)?;
        let seen = LastSeen {
            seq: heartbeat.seq,
            timestamp_ms: heartbeat.timestamp_ms,
        };
        // `push` evicts the least recently heard provider when full.
        if let Some((evicted, _)) = self.last.push(author, seen) {
            if evicted != author {
                self.evictions += 1;
            }
        }
        Ok(())
    }

    /// Forgets providers whose last heartbeat is out of the window; returns
    /// how many were forgotten.
    pub fn prune(&mut self, now_ms: u64) -> usize {
        let max_age = self.policy.max_age_ms;
        let stale: Vec<PeerId> = self
            .last
            .iter()
            .filter(|(_, seen)| now_ms.saturating_sub(seen.timestamp_ms) > max_age)
            .map(|(peer, _)| *peer)
            .collect();
        for peer in &stale {
            self.last.pop(peer);
        }
        stale.len()
    }

    /// Providers evicted to make room since the guard was made.
    pub fn evictions(&self) -> u64 {
        self.evictions
    }

    /// Providers currently tracked.
    pub fn len(&self) -> usize {
        self.last.len()
    }

    pub fn is_empty(&self) -> bool {
        self.last.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::offer::tests::sample_offer;
    use libp2p_identity::Keypair;

    const NOW: u64 = 1_700_000_000_000;

    fn heartbeat(keypair: &Keypair, seq: u64, timestamp_ms: u64) -> Heartbeat {
        Heartbeat {
            offer: sample_offer(keypair),
            seq,
            timestamp_ms,
        }
    }

    #[test]
    fn accepts_increasing_sequence() {
        let key = Keypair::generate_ed25519();
        let mut guard = ReplayGuard::default_policy();
        guard
            .check_and_record(&heartbeat(&key, 1, NOW), NOW)
            .unwrap();
        guard
            .check_and_record(&heartbeat(&key, 2, NOW + 10), NOW + 10)
            .unwrap();
        guard
            .check_and_record(&heartbeat(&key, 10, NOW + 20), NOW + 20)
            .unwrap();
        assert_eq!(guard.len(), 1);
    }

    #[test]
    fn rejects_replayed_and_older_sequence() {
        let key = Keypair::generate_ed25519();
        let mut guard = ReplayGuard::default_policy();
        guard
            .check_and_record(&heartbeat(&key, 5, NOW), NOW)
            .unwrap();
        assert_eq!(
            guard.check_and_record(&heartbeat(&key, 5, NOW), NOW + 1),
            Err(ProtoError::Replayed { last: 5, got: 5 })
        );
        assert_eq!(
            guard.check_and_record(&heartbeat(&key, 4, NOW + 1), NOW + 1),
            Err(ProtoError::Replayed { last: 5, got: 4 })
        );
        // A refused message does not move the high-water mark.
        guard
            .check_and_record(&heartbeat(&key, 6, NOW + 2), NOW + 2)
            .unwrap();
    }

    #[test]
    fn sequences_are_per_provider() {
        let a = Keypair::generate_ed25519();
        let b = Keypair::generate_ed25519();
        let mut guard = ReplayGuard::default_policy();
        guard.check_and_record(&heartbeat(&a, 7, NOW), NOW).unwrap();
        guard.check_and_record(&heartbeat(&b, 1, NOW), NOW).unwrap();
    }

    #[test]
    fn rejects_stale() {
        let key = Keypair::generate_ed25519();
        let mut guard = ReplayGuard::default_policy();
        assert_eq!(
            guard.check_and_record(&heartbeat(&key, 1, NOW - 30_001), NOW),
            Err(ProtoError::Stale { age_ms: 30_001 })
        );
        guard
            .check_and_record(&heartbeat(&key, 1, NOW - 30_000), NOW)
            .unwrap();
    }

    #[test]
    fn rejects_from_future() {
        let key = Keypair::generate_ed25519();
        let mut guard = ReplayGuard::default_policy();
        assert_eq!(
            guard.check_and_record(&heartbeat(&key, 1, NOW + 5_001), NOW),
            Err(ProtoError::FromFuture { ahead_ms: 5_001 })
        );
        guard
            .check_and_record(&heartbeat(&key, 1, NOW + 5_000), NOW)
            .unwrap();
        assert_eq!(
            guard.check(&key.public().to_peer_id(), 2, u64::MAX, NOW),
            Err(ProtoError::FromFuture {
                ahead_ms: u64::MAX - NOW
            })
        );
    }

    #[test]
    fn prune_forgets_only_out_of_window_and_replays_stay_refused() {
        let old = Keypair::generate_ed25519();
        let fresh = Keypair::generate_ed25519();
        let mut guard = ReplayGuard::default_policy();
        let old_hb = heartbeat(&old, 3, NOW);
        guard.check_and_record(&old_hb, NOW).unwrap();
        guard
            .check_and_record(&heartbeat(&fresh, 1, NOW + 20_000), NOW + 20_000)
            .unwrap();
        assert_eq!(guard.prune(NOW + 31_000), 1);
        assert_eq!(guard.len(), 1);
        // The forgotten provider's old heartbeat is still refused: as stale.
        assert!(matches!(
            guard.check_and_record(&old_hb, NOW + 31_000),
            Err(ProtoError::Stale { .. })
        ));
    }

    #[test]
    fn full_table_evicts_the_least_recently_heard() {
        let mut guard = ReplayGuard::new(ReplayPolicy {
            max_tracked: 2,
            ..ReplayPolicy::default()
        });
        let keys: Vec<_> = (0..3).map(|_| Keypair::generate_ed25519()).collect();
        let ids: Vec<PeerId> = keys.iter().map(|k| k.public().to_peer_id()).collect();
        guard
            .check_and_record(&heartbeat(&keys[0], 1, NOW), NOW)
            .unwrap();
        guard
            .check_and_record(&heartbeat(&keys[1], 1, NOW), NOW)
            .unwrap();
        // keys[0] is heard again, so keys[1] is now the least recent.
        guard
            .check_and_record(&heartbeat(&keys[0], 2, NOW + 1), NOW + 1)
            .unwrap();
        // A newcomer is admitted, not refused: a flood of fresh PeerIds
        // cannot lock real providers out.
        guard
            .check_and_record(&heartbeat(&keys[2], 1, NOW + 2), NOW + 2)
            .unwrap();
        assert_eq!(guard.len(), 2);
        assert_eq!(guard.evictions(), 1);
        // keys[0] is still tracked: its replay is refused.
        assert_eq!(
            guard.check(&ids[0], 2, NOW + 3, NOW + 3),
            Err(ProtoError::Replayed { last: 2, got: 2 })
        );
        // keys[1] was evicted: its next sequence number starts afresh.
        assert_eq!(guard.check(&ids[1], 1, NOW + 3, NOW + 3), Ok(()));
        // A provider heard again is not an eviction.
        guard
            .check_and_record(&heartbeat(&keys[2], 2, NOW + 4), NOW + 4)
            .unwrap();
        assert_eq!(guard.evictions(), 1);
    }

    #[test]
    fn flood_of_new_providers_keeps_the_table_at_its_cap() {
        let mut guard = ReplayGuard::new(ReplayPolicy {
            max_tracked: 16,
            ..ReplayPolicy::default()
        });
        let real = Keypair::generate_ed25519();
        for i in 0..100 {
            let fake = Keypair::generate_ed25519();
            guard
                .check_and_record(&heartbeat(&fake, 1, NOW + i), NOW + i)
                .unwrap();
            assert!(guard.len() <= 16);
        }
        assert_eq!(guard.evictions(), 100 - 16);
        // The real provider starting during the flood is heard.
        guard
            .check_and_record(&heartbeat(&real, 1, NOW + 100), NOW + 100)
            .unwrap();
        assert_eq!(guard.len(), 16);
    }

    impl ReplayGuard {
        fn default_policy() -> Self {
            ReplayGuard::new(ReplayPolicy::default())
        }
    }
}
