//! The fullnode's in-memory copy of the live offers (sans-IO).
//!
//! SQL stays the source of truth (it survives restarts, serves listings),
//! but ranking 10k offers per `/v1/match` by reading them from SQL each
//! time costs milliseconds and a database round trip. The fullnode instead
//! keeps every live provider's latest verified heartbeat here, updated as
//! each heartbeat is accepted (before its batched SQL write), loaded from
//! SQL at start and expired on the same clock as the SQL rows. A match is
//! then one pass over a dense `Vec` under a read lock.

use crate::fullnode::index::IndexedProvider;
use flowshield_proto::{Offer, PeerId};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

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
#[derive(Debug, Default)]
pub struct LiveOffers {
    entries: Vec<LiveEntry>,
    by_peer: HashMap<PeerId, usize>,
}

/// The live offers shared between the ingest task and the HTTP API.
pub type SharedLive = Arc<RwLock<LiveOffers>>;

impl LiveOffers {
    /// Stores `entry` unless the provider already has a newer heartbeat;
    /// returns whether it was stored.
    pub fn upsert(&mut self, entry: LiveEntry) -> bool {
        let peer = entry.offer.provider_peer_id;
        match self.by_peer.get(&peer) {
            Some(&i) => {
                if self.entries[i].timestamp_ms > entry.timestamp_ms {
                    return false;
                }
                self.entries[i] = entry;
            }
            None => {
                self.by_peer.insert(peer, self.entries.len());
                self.entries.push(entry);
            }
        }
        true
    }

    /// Drops one provider; returns whether it was live.
    pub fn remove(&mut self, peer: &PeerId) -> bool {
        let Some(i) = self.by_peer.remove(peer) else {
            return false;
        };
        self.entries.swap_remove(i);
        if let Some(moved) = self.entries.get(i) {
            self.by_peer.insert(moved.offer.provider_peer_id, i);
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
            self.remove(peer);
        }
        silent
    }

    pub fn get(&self, peer: &PeerId) -> Option<&LiveEntry> {
        self.by_peer.get(peer).map(|&i| &self.entries[i])
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
}
