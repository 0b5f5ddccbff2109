//! One WireGuard peer: its boringtun session state, endpoint, allowed IPs and
//! counters.

use crate::key::{PublicKey, SecretKey};
use boringtun::noise::rate_limiter::RateLimiter;
use boringtun::noise::Tunn;
use ip_network::IpNetwork;
use parking_lot::{Mutex, RwLock};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Mutable per-peer configuration, changed only by UAPI `set`.
#[derive(Debug, Clone, Default)]
pub struct PeerConfig {
    pub preshared_key: Option<SecretKey>,
    pub persistent_keepalive: u16,
    pub allowed_ips: Vec<IpNetwork>,
}

/// A peer of the device. Shared between the data path tasks behind `Arc`.
pub struct Peer {
    pub public_key: PublicKey,
    /// Local 24-bit index; boringtun puts it in the top bits of session ids.
    pub index: u32,
    /// `None` while the device has no private key.
    pub tunn: Mutex<Option<Tunn>>,
    pub endpoint: RwLock<Option<SocketAddr>>,
    /// Sticky source address: the local address the peer last reached us on
    /// at `endpoint`, so replies leave from the address it wrote to (a
    /// multi-homed host would otherwise answer from whatever address the
    /// route picks, and a NAT or the peer would drop the reply). `None`:
    /// let the kernel choose. Written only together with `endpoint` (lock
    /// order: `endpoint`, then this).
    pub local_ip: RwLock<Option<IpAddr>>,
    pub config: RwLock<PeerConfig>,
    pub rx_bytes: AtomicU64,
    pub tx_bytes: AtomicU64,
    /// When we last sent anything to this peer, for persistent keepalive.
    pub last_sent: Mutex<Option<Instant>>,
}

impl Peer {
    pub fn new(public_key: PublicKey, index: u32) -> Self {
        Self {
            public_key,
            index,
            tunn: Mutex::new(None),
            endpoint: RwLock::new(None),
            local_ip: RwLock::new(None),
            config: RwLock::new(PeerConfig::default()),
            rx_bytes: AtomicU64::new(0),
            tx_bytes: AtomicU64::new(0),
            last_sent: Mutex::new(None),
        }
    }

    /// (Re)creates the noise state for the device key `private`. Persistent
    /// keepalive is driven by the device timers, not by boringtun, so that
    /// changing it does not reset the session.
    pub fn reset_tunn(&self, private: Option<&SecretKey>, limiter: Option<Arc<RateLimiter>>) {
        let psk = self.config.read().preshared_key.as_ref().map(|k| k.0);
        *self.tunn.lock() = private.map(|private| {
            Tunn::new(
                private.to_x25519(),
                self.public_key.to_x25519(),
                psk,
                None,
                self.index,
                limiter,
            )
        });
    }

    /// Unix time of the last completed handshake, `(0, 0)` if there was none.
    pub fn last_handshake(&self) -> (u64, u32) {
        let since = self.tunn.lock().as_ref().and_then(|t| t.stats().0);
        match since.and_then(|d| SystemTime::now().checked_sub(d)) {
            Some(at) => {
                let d = at.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
                (d.as_secs(), d.subsec_nanos())
            }
            None => (0, 0),
        }
    }

    pub fn note_sent(&self, bytes: usize) {
        self.tx_bytes.fetch_add(bytes as u64, Ordering::Relaxed);
        *self.last_sent.lock() = Some(Instant::now());
    }

    /// Counts an accepted datagram of `bytes` and notes where it came from
    /// (`from`) and which of our addresses it was sent to (`local`).
    pub fn note_received(&self, bytes: usize, from: SocketAddr, local: Option<IpAddr>) {
        self.rx_bytes.fetch_add(bytes as u64, Ordering::Relaxed);
        self.note_endpoint(from, local);
    }

    /// Roaming: the latest authenticated source becomes the endpoint, and
    /// the address it wrote to becomes our source for replies. A new
    /// source with no local address (none reported) clears the sticky one,
    /// as wireguard-go does.
    pub fn note_endpoint(&self, from: SocketAddr, local: Option<IpAddr>) {
        let unchanged = {
            let endpoint = self.endpoint.read();
            *endpoint == Some(from) && *self.local_ip.read() == local
        };
        if !unchanged {
            let mut endpoint = self.endpoint.write();
            *endpoint = Some(from);
            *self.local_ip.write() = local;
        }
    }

    /// Sets the endpoint from configuration (UAPI `endpoint=`): we have not
    /// heard from it there yet, so the kernel picks the source.
    pub fn set_endpoint(&self, endpoint: SocketAddr) {
        let mut current = self.endpoint.write();
        *current = Some(endpoint);
        *self.local_ip.write() = None;
    }

    /// Where to send: the endpoint and the sticky source address, read as
    /// one consistent pair.
    pub fn route(&self) -> Option<(SocketAddr, Option<IpAddr>)> {
        let endpoint = self.endpoint.read();
        let local = *self.local_ip.read();
        endpoint.map(|e| (e, local))
    }

    /// Forgets the sticky source if it is still `local` for `endpoint`
    /// (the address is gone from this host: sending from it failed).
    pub fn clear_local_ip(&self, endpoint: SocketAddr, local: IpAddr) {
        let current = self.endpoint.read();
        if *current == Some(endpoint) {
            let mut ip = self.local_ip.write();
            if *ip == Some(local) {
                *ip = None;
            }
        }
    }

    /// Whether a persistent keepalive is due at `now`.
    pub fn keepalive_due(&self, now: Instant) -> bool {
        let interval = self.config.read().persistent_keepalive;
        if interval == 0 {
            return false;
        }
        match *self.last_sent.lock() {
            Some(at) => now.duration_since(at) >= Duration::from_secs(interval.into()),
            None => true,
        }
    }
}

impl std::fmt::Debug for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peer")
            .field("public_key", &self.public_key)
            .field("index", &self.index)
            .finish_non_exhaustive()
    }
}
