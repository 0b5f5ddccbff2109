//! The fullnode's in-memory copy of the live offers (sans-IO).
//!
//! SQL stays the source of truth (it survives restarts, serves listings),
//! but ranking 10k offers per `/v1/match` by reading them from SQL each
//! time costs milliseconds and a database round trip. The fullnode instead
//! keeps every live provider's latest verified heartbeat here, updated as
//! each heartbeat is accepted (before its batched SQL write), loaded from
//! SQL at start and expired on the same clock as the SQL rows. A match is
//! then one pass over a dense `Vec` under a read lock.
//!
//! Bounded under floods: at most [`LiveOffers::cap`] providers are kept
//! (`--max-live-providers`); a new one beyond it evicts the least recently
//! heard, counted in `flowshield_evictions_total{map="live_offers"}`. The
//! evicted ones are handed to the ingest loop ([`LiveOffers::take_evicted`])
//! so its per-provider write state forgets them too. An evicted provider is
//! live again with its next heartbeat.

use crate::fullnode::index::IndexedProvider;
use crate::net::MapGauges;
use flowshield_proto::{Offer, PeerId};
use lru::LruCache;
use std::sync::{Arc, RwLock};

/// Live providers kept by default: ten times the market's 10k-provider
/// target, a few hundred MiB at most.
pub const DEFAULT_MAX_LIVE: usize = 200_000;

/// Evicted providers remembered until the ingest loop takes them (it takes
/// them after every upsert; the bound only matters for other callers).
const MAX_UNTAKEN_EVICTIONS: usize = 1024;

/// One live provider.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveEntry {
    pub offer: Offer,
    pub seq: u64,
    pub timestamp_ms: u64,
    pub last_seen_ms: u64,
    /// The signed heartbeat envelope (shared: it is copied into every match
    /// answer and every batch write).
    pub signed_heartbeat: Arc<str>,
}

impl From<IndexedProvider> for LiveEntry {
    fn from(p: IndexedProvider) -> Self {
        Self {
            offer: p.offer,
            seq: p.seq,
            timestamp_ms: p.timestamp_ms,
            last_seen_ms: p.last_seen_ms,
            signed_heartbeat: p.signed_heartbeat.into(),
        }
    }
}

/// Live providers, densely stored for fast scans.
#[derive(Debug)]
pub struct LiveOffers {
    entries: Vec<LiveEntry>,
    /// Index into `entries`, in the order providers were last heard (the
    /// least recent is evicted first).
    by_peer: LruCache<PeerId, usize>,
    cap: usize,
    evictions: u64,
    evicted: Vec<PeerId>,
    gauges: Option<MapGauges>,
}

impl Default for LiveOffers {
    fn default() -> Self {
        Self::with_cap(DEFAULT_MAX_LIVE, None)
    }
}

/// The live offers shared between the ingest task and the HTTP API.
pub type SharedLive = Arc<RwLock<LiveOffers>>;

impl LiveOffers {
    /// Keeps at most `cap` providers (at least one), reporting size and
    /// evictions to `gauges`.
    pub fn with_cap(cap: usize, gauges: Option<MapGauges>) -> Self {
        let live = Self {
            entries: Vec::new(),
            by_peer: LruCache::unbounded(),
            cap: cap.max(1),
            evictions: 0,
            evicted: Vec::new(),
            gauges,
        };
        live.report();
        live
    }

    /// The most providers kept.
    pub fn cap(&self) -> usize {
        self.cap
    }

    /// Providers evicted to make room so far.
    pub fn evictions(&self) -> u64 {
        self.evictions
    }

    fn report(&self) {
        if let Some(g) = &self.gauges {
            g.observe(self.entries.len(), self.evictions);
        }
    }

    /// Stores `entry` unless the provider already has a newer heartbeat;
    /// returns whether it was stored. A new provider beyond the cap evicts
    /// the least recently heard one (see [`LiveOffers::take_evicted`]).
    pub fn upsert(&mut self, entry: LiveEntry) -> bool {
        let peer = entry.offer.provider_peer_id;
        match self.by_peer.peek(&peer) {
            Some(&i) => {
                if self.entries[i].timestamp_ms > entry.timestamp_ms {
                    return false;
                }
                self.entries[i] = entry;
                self.by_peer.promote(&peer);
            }
            None => {
                while self.entries.len() >= self.cap {
                    let Some((oldest, _)) = self.by_peer.peek_lru() else {
                        break;
                    };
                    let oldest = *oldest;
                    self.remove_entry(&oldest);
                    self.evictions += 1;
                    if self.evicted.len() >= MAX_UNTAKEN_EVICTIONS {
                        self.evicted.remove(0);
                    }
                    self.evicted.push(oldest);
                }
                self.by_peer.put(peer, self.entries.len());
                self.entries.push(entry);
            }
        }
        self.report();
        true
    }

    /// The providers evicted since the last call (the ingest loop forgets
    /// their pending writes).
    pub fn take_evicted(&mut self) -> Vec<PeerId> {
        std::mem::take(&mut self.evicted)
    }

    /// Drops one provider; returns whether it was live.
    pub fn remove(&mut self, peer: &PeerId) -> bool {
        let removed = self.remove_entry(peer);
        self.report();
        removed
    }

    fn remove_entry(&mut self, peer: &PeerId) -> bool {
        let Some(i) = self.by_peer.pop(peer) else {
            return false;
        };
        self.entries.swap_remove(i);
        if let Some(moved) = self.entries.get(i) {
            // Its place changed, not when it was heard.
            if let Some(slot) = self.by_peer.peek_mut(&moved.offer.provider_peer_id) {
                *slot = i;
            }
        }
        true
    }

    /// Drops providers last seen before `cutoff_ms`; returns them.
    pub fn expire(&mut self, cutoff_ms: u64) -> Vec<PeerId> {
        let silent: Vec<PeerId> = self
            .entries
            .iter()
            .filter(|e| e.last_seen_ms < cutoff_ms)
            .map(|e| e.offer.provider_peer_id)
            .collect();
        for peer in &silent {
            self.remove_entry(peer);
        }
        self.report();
        silent
    }

    pub fn get(&self, peer: &PeerId) -> Option<&LiveEntry> {
        self.by_peer.peek(peer).map(|&i| &self.entries[i])
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every live offer, in no particular order.
    pub fn offers(&self) -> impl Iterator<Item = &Offer> + '_ {
        self.entries.iter().map(|e| &e.offer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flowshield_proto::{Keypair, Region, WgPublicKey};

    fn entry(key: &Keypair, timestamp_ms: u64, last_seen_ms: u64) -> LiveEntry {
        LiveEntry {
            offer: Offer {
                provider_peer_id: key.public().to_peer_id(),
                chain_address: "0x0000000000000000000000000000000000000001"
                    .parse()
                    .unwrap(),
                wg_public_key: WgPublicKey([1; 32]),
                endpoint: "192.0.2.1:51820".parse().unwrap(),
                region: Region::new("eu").unwrap(),
                price_per_gib_wei: timestamp_ms as u128,
                price_per_hour_wei: 0,
                capacity_mbps: 10,
                max_clients: 1,
                tunnel_subnet: None,
            },
            seq: timestamp_ms,
            timestamp_ms,
            last_seen_ms,
            signed_heartbeat: Arc::from("{}"),
        }
    }

    #[test]
    fn keeps_the_newest_and_removes_by_swapping() {
        let keys: Vec<Keypair> = (0..3).map(|_| Keypair::generate_ed25519()).collect();
        let mut live = LiveOffers::default();
        for k in &keys {
            assert!(live.upsert(entry(k, 10, 10)));
        }
        assert!(!live.upsert(entry(&keys[1], 5, 50)), "older is ignored");
        assert!(live.upsert(entry(&keys[1], 20, 50)));
        assert_eq!(live.len(), 3);
        assert!(live.remove(&keys[0].public().to_peer_id()));
        assert!(!live.remove(&keys[0].public().to_peer_id()));
        // The entry moved into the hole is still found by its PeerId.
        for k in &keys[1..] {
            let peer = k.public().to_peer_id();
            assert_eq!(live.get(&peer).unwrap().offer.provider_peer_id, peer);
        }
        assert_eq!(live.get(&keys[1].public().to_peer_id()).unwrap().seq, 20);
    }

    #[test]
    fn expires_the_silent() {
        let keys: Vec<Keypair> = (0..4).map(|_| Keypair::generate_ed25519()).collect();
        let mut live = LiveOffers::default();
        for (i, k) in keys.iter().enumerate() {
            live.upsert(entry(k, 1, i as u64 * 100));
        }
        assert_eq!(live.expire(150).len(), 2);
        assert_eq!(live.len(), 2);
        assert_eq!(live.offers().count(), 2);
        assert!(live.get(&keys[3].public().to_peer_id()).is_some());
        assert!(live.get(&keys[0].public().to_peer_id()).is_none());
    }

    #[test]
    fn a_flood_past_the_cap_evicts_the_least_recently_heard() {
        let metrics = crate::fullnode::metrics::Metrics::new().unwrap();
        let mut live = LiveOffers::with_cap(3, Some(metrics.map_gauges("live_offers")));
        let keys: Vec<Keypair> = (0..6).map(|_| Keypair::generate_ed25519()).collect();
        let id = |i: usize| keys[i].public().to_peer_id();
        for k in &keys[..3] {
            assert!(live.upsert(entry(k, 10, 10)));
        }
        // keys[0] is heard again: keys[1] is now the least recent.
        assert!(live.upsert(entry(&keys[0], 20, 20)));
        assert!(live.take_evicted().is_empty());
        for k in &keys[3..] {
            assert!(live.upsert(entry(k, 30, 30)));
        }
        assert_eq!(live.len(), 3);
        assert_eq!(live.evictions(), 3);
        assert_eq!(live.take_evicted(), vec![id(1), id(2), id(0)]);
        assert!(live.take_evicted().is_empty(), "taken once");
        for i in 3..6 {
            assert_eq!(live.get(&id(i)).unwrap().offer.provider_peer_id, id(i));
        }
        assert_eq!(live.offers().count(), 3);
        let text = metrics.render();
        assert!(
            text.contains("flowshield_tracked_peers{map=\"live_offers\"} 3"),
            "{text}"
        );
        assert!(
            text.contains("flowshield_evictions_total{map=\"live_offers\"} 3"),
            "{text}"
        );
        // Removal and expiry keep the index and the gauge right.
        assert!(live.remove(&id(4)));
        let mut silent = live.expire(31);
        silent.sort();
        let mut want = vec![id(3), id(5)];
        want.sort();
        assert_eq!(silent, want);
        assert!(live.is_empty());
        assert!(metrics
            .render()
            .contains("flowshield_tracked_peers{map=\"live_offers\"} 0"));
    }
}
