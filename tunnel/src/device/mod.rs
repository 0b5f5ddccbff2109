//! The device: interface keys, the peer table, AllowedIPs routing and
//! counters. It is configured only by UAPI [`SetRequest`]s and knows nothing
//! of sockets: [`datapath`] turns datagrams and TUN packets into outputs
//! through the [`Outputs`] trait, and [`driver`] does the actual IO.

mod batch;
pub mod datapath;
pub mod driver;
mod peer;
pub mod sockets;
mod workers;

pub use datapath::Outputs;
pub use peer::{Peer, PeerConfig};

use crate::key::{PublicKey, SecretKey};
use crate::uapi::{Counters, DeviceSnapshot, PeerSnapshot, SetRequest};
use boringtun::noise::rate_limiter::RateLimiter;
use indexmap::IndexMap;
use ip_network::IpNetwork;
use ip_network_table::IpNetworkTable;
use parking_lot::RwLock;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Handshake messages per second the device accepts before it demands
/// cookies. boringtun's own device uses 100; every handshake message passes
/// the shared limiter twice here (once to route it before the expensive DH,
/// once inside `Tunn::decapsulate`), hence the doubling.
const HANDSHAKE_RATE_LIMIT: u64 = 2 * 100;

/// Largest peer index boringtun can carry (it shifts indices left by 8).
const MAX_INDEX: u32 = (1 << 24) - 1;

/// Interface state behind the device lock.
pub struct DeviceState {
    pub(crate) private_key: Option<SecretKey>,
    pub(crate) public_key: Option<PublicKey>,
    pub(crate) listen_port: u16,
    pub(crate) fwmark: u32,
    pub(crate) peers: IndexMap<PublicKey, Arc<Peer>>,
    pub(crate) by_index: HashMap<u32, Arc<Peer>>,
    pub(crate) routes: IpNetworkTable<Arc<Peer>>,
    pub(crate) rate_limiter: Option<Arc<RateLimiter>>,
    next_index: u32,
}

/// Packet counters, updated lock-free by the data path.
#[derive(Default)]
pub struct AtomicCounters {
    pub malformed_packets: AtomicU64,
    pub unknown_peer_packets: AtomicU64,
    pub disallowed_source_packets: AtomicU64,
    pub no_route_packets: AtomicU64,
    pub no_endpoint_packets: AtomicU64,
    pub cookie_replies_sent: AtomicU64,
}

impl AtomicCounters {
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
    pub fn snapshot(&self) -> Counters {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Counters {
            malformed_packets: get(&self.malformed_packets),
            unknown_peer_packets: get(&self.unknown_peer_packets),
            disallowed_source_packets: get(&self.disallowed_source_packets),
            no_route_packets: get(&self.no_route_packets),
            no_endpoint_packets: get(&self.no_endpoint_packets),
            cookie_replies_sent: get(&self.cookie_replies_sent),
        }
    }
}

/// A WireGuard device (one interface).
pub struct Device {
    pub(crate) state: RwLock<DeviceState>,
    pub counters: AtomicCounters,
}

impl Default for Device {
    fn default() -> Self {
        Self::new()
    }
}

impl Device {
    pub fn new() -> Self {
        Self {
            state: RwLock::new(DeviceState {
                private_key: None,
                public_key: None,
                listen_port: 0,
                fwmark: 0,
                peers: IndexMap::new(),
                by_index: HashMap::new(),
                routes: IpNetworkTable::new(),
                rate_limiter: None,
                // Start at a random index so restarts do not reuse ids.
                next_index: rand_core::RngCore::next_u32(&mut rand_core::OsRng) & MAX_INDEX,
            }),
            counters: AtomicCounters::default(),
        }
    }

    pub fn listen_port(&self) -> u16 {
        self.state.read().listen_port
    }

    pub fn fwmark(&self) -> u32 {
        self.state.read().fwmark
    }

    pub fn public_key(&self) -> Option<PublicKey> {
        self.state.read().public_key
    }

    /// Applies a parsed `set` transaction. Parsing already rejected every
    /// bad line, and the driver binds a new listen port before calling this,
    /// so applying cannot fail halfway.
    pub fn apply(&self, req: &SetRequest) {
        let mut st = self.state.write();
        if let Some(key) = &req.private_key {
            let new_key = (!key.is_zero()).then(|| key.clone());
            if new_key != st.private_key {
                st.set_private_key(new_key);
            }
        }
        if let Some(port) = req.listen_port {
            st.listen_port = port;
        }
        if let Some(mark) = req.fwmark {
            st.fwmark = mark;
        }
        if req.replace_peers {
            let all: Vec<PublicKey> = st.peers.keys().copied().collect();
            for key in all {
                st.remove_peer(&key);
            }
        }
        for update in &req.peers {
            if Some(update.public_key) == st.public_key {
                tracing::warn!(peer = %update.public_key, "ignoring peer with the interface's own public key");
                continue;
            }
            if update.remove {
                st.remove_peer(&update.public_key);
                continue;
            }
            let (peer, created) = match st.peers.get(&update.public_key) {
                Some(peer) => (peer.clone(), false),
                None if update.update_only => continue,
                None => (st.add_peer(update.public_key), true),
            };
            let mut psk_changed = false;
            {
                let mut cfg = peer.config.write();
                if let Some(psk) = &update.preshared_key {
                    let psk = (!psk.is_zero()).then(|| psk.clone());
                    psk_changed = psk != cfg.preshared_key;
                    cfg.preshared_key = psk;
                }
                if let Some(interval) = update.persistent_keepalive {
                    cfg.persistent_keepalive = interval;
                }
            }
            if let Some(endpoint) = update.endpoint {
                peer.set_endpoint(endpoint);
            }
            if update.replace_allowed_ips {
                st.clear_routes(&peer);
            }
            for net in &update.allowed_ips {
                st.add_route(&peer, *net);
            }
            if created || psk_changed {
                peer.reset_tunn(st.private_key.as_ref(), st.rate_limiter.clone());
            }
        }
    }

    /// What `get=1` reports.
    pub fn snapshot(&self) -> DeviceSnapshot {
        let st = self.state.read();
        DeviceSnapshot {
            private_key: st.private_key.clone(),
            own_public_key: None,
            listen_port: st.listen_port,
            fwmark: st.fwmark,
            peers: st
                .peers
                .values()
                .map(|peer| {
                    // Lock order: the data path holds `tunn` while it
                    // updates `endpoint` (roaming), so never hold
                    // `endpoint` while taking `tunn` (last_handshake):
                    // read each in its own statement.
                    let endpoint = *peer.endpoint.read();
                    let last_handshake = peer.last_handshake();
                    let cfg = peer.config.read();
                    PeerSnapshot {
                        public_key: peer.public_key,
                        preshared_key: cfg.preshared_key.clone(),
                        endpoint,
                        last_handshake,
                        rx_bytes: peer.rx_bytes.load(Ordering::Relaxed),
                        tx_bytes: peer.tx_bytes.load(Ordering::Relaxed),
                        persistent_keepalive: cfg.persistent_keepalive,
                        allowed_ips: cfg.allowed_ips.clone(),
                    }
                })
                .collect(),
        }
    }
}

impl DeviceState {
    fn set_private_key(&mut self, key: Option<SecretKey>) {
        self.public_key = key.as_ref().map(SecretKey::public_key);
        self.rate_limiter = self
            .public_key
            .map(|p| Arc::new(RateLimiter::new(&p.to_x25519(), HANDSHAKE_RATE_LIMIT)));
        self.private_key = key;
        // A peer with our own public key would be talking to itself.
        if let Some(own) = self.public_key {
            self.remove_peer(&own);
        }
        for peer in self.peers.values() {
            peer.reset_tunn(self.private_key.as_ref(), self.rate_limiter.clone());
        }
    }

    fn add_peer(&mut self, public_key: PublicKey) -> Arc<Peer> {
        let mut index = self.next_index;
        while self.by_index.contains_key(&index) {
            index = (index + 1) & MAX_INDEX;
        }
        self.next_index = (index + 1) & MAX_INDEX;
        let peer = Arc::new(Peer::new(public_key, index));
        self.peers.insert(public_key, peer.clone());
        self.by_index.insert(index, peer.clone());
        peer
    }

    fn remove_peer(&mut self, public_key: &PublicKey) {
        if let Some(peer) = self.peers.shift_remove(public_key) {
            self.clear_routes(&peer);
            self.by_index.remove(&peer.index);
        }
    }

    fn clear_routes(&mut self, peer: &Arc<Peer>) {
        let nets = std::mem::take(&mut peer.config.write().allowed_ips);
        for net in nets {
            self.routes.remove(net);
        }
    }

    /// Routes `net` to `peer`, taking it away from any peer that had it.
    fn add_route(&mut self, peer: &Arc<Peer>, net: IpNetwork) {
        if let Some(previous) = self.routes.insert(net, peer.clone()) {
            if !Arc::ptr_eq(&previous, peer) {
                previous.config.write().allowed_ips.retain(|n| *n != net);
            }
        }
        let mut cfg = peer.config.write();
        if !cfg.allowed_ips.contains(&net) {
            cfg.allowed_ips.push(net);
        }
    }
}

#[cfg(test)]
mod tests;
