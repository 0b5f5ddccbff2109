//! A hold on a data plane through its UAPI socket: adding and removing a
//! client's WireGuard peer, as `wg set` would, and reading peer counters,
//! as `wg show` would (the provider's session host and dashboard, the
//! client's own tunnel).
//!
//! The requests are built sans-IO ([`add_peer_request`],
//! [`remove_peer_request`]) and sent with `flowshield-tunnel`'s blocking UAPI
//! client on tokio's blocking pool, so any UAPI implementation (flowshield,
//! wireguard-go) can be driven.

use flowshield_proto::WgPublicKey;
use flowshield_tunnel::key::PublicKey;
use flowshield_tunnel::uapi::client::{self, ClientError};
use flowshield_tunnel::uapi::{DeviceSnapshot, PeerUpdate, SetRequest};
use ip_network::{IpNetwork, Ipv4Network};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

/// Why the data plane refused or could not be reached.
#[derive(Debug, thiserror::Error)]
pub enum DataPlaneError {
    #[error(transparent)]
    Uapi(#[from] ClientError),
    #[error("UAPI call to {iface} did not finish: {reason}")]
    Task { iface: String, reason: String },
}

/// `set=1` adding `public_key` with `address/32` as its only allowed IP.
pub fn add_peer_request(public_key: &WgPublicKey, address: Ipv4Addr) -> SetRequest {
    let mut peer = PeerUpdate::new(PublicKey(public_key.0));
    peer.replace_allowed_ips = true;
    // A /32 is always a valid prefix.
    if let Ok(net) = Ipv4Network::new(address, 32) {
        peer.allowed_ips.push(IpNetwork::V4(net));
    }
    SetRequest {
        peers: vec![peer],
        ..SetRequest::default()
    }
}

/// `set=1` changing only the allowed IPs of an existing peer (never
/// creating one): `address/32`, or none at all, which stops forwarding for
/// the peer while keeping its session and counters.
pub fn allowed_ips_request(public_key: &WgPublicKey, address: Option<Ipv4Addr>) -> SetRequest {
    let mut peer = PeerUpdate::new(PublicKey(public_key.0));
    peer.update_only = true;
    peer.replace_allowed_ips = true;
    if let Some(Ok(net)) = address.map(|a| Ipv4Network::new(a, 32)) {
        peer.allowed_ips.push(IpNetwork::V4(net));
    }
    SetRequest {
        peers: vec![peer],
        ..SetRequest::default()
    }
}

/// `set=1` removing `public_key`.
pub fn remove_peer_request(public_key: &WgPublicKey) -> SetRequest {
    let mut peer = PeerUpdate::new(PublicKey(public_key.0));
    peer.remove = true;
    SetRequest {
        peers: vec![peer],
        ..SetRequest::default()
    }
}

/// One peer's counters as the data plane reports them (`get=1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerCounters {
    pub public_key: WgPublicKey,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    /// Unix time of the last handshake, (seconds, nanoseconds); (0, 0) if none.
    pub last_handshake: (u64, u32),
}

impl PeerCounters {
    /// rx + tx bytes.
    pub fn bytes(&self) -> u64 {
        self.rx_bytes.saturating_add(self.tx_bytes)
    }

    /// Unix milliseconds of the last handshake, `None` before the first.
    pub fn last_handshake_ms(&self) -> Option<u64> {
        let (secs, nanos) = self.last_handshake;
        (secs != 0).then(|| secs.saturating_mul(1000) + u64::from(nanos) / 1_000_000)
    }
}

/// One WireGuard interface reached through its UAPI socket.
#[derive(Debug, Clone)]
pub struct DataPlane {
    iface: String,
    /// The UAPI socket: the interface's full one, or its restricted one
    /// ([`flowshield_tunnel::uapi::restricted`]), which is all a provider
    /// needs.
    socket: PathBuf,
}

impl DataPlane {
    /// Through the interface's full UAPI socket.
    pub fn new(iface: impl Into<String>) -> Self {
        let iface = iface.into();
        let socket = flowshield_tunnel::uapi::socket_path(&iface);
        Self { iface, socket }
    }

    /// Through the UAPI socket at `socket` (e.g. the restricted one).
    pub fn with_socket(iface: impl Into<String>, socket: impl Into<PathBuf>) -> Self {
        Self {
            iface: iface.into(),
            socket: socket.into(),
        }
    }

    /// The interface's restricted socket if its daemon serves one, else
    /// its full socket.
    pub fn least_privileged(iface: impl Into<String>) -> Self {
        let iface = iface.into();
        let restricted = flowshield_tunnel::uapi::restricted::socket_path(&iface);
        if restricted.exists() {
            Self::with_socket(iface, restricted)
        } else {
            Self::new(iface)
        }
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    pub fn iface(&self) -> &str {
        &self.iface
    }

    /// Adds (or updates) a client peer whose tunnel address is `address`.
    pub async fn add_peer(
        &self,
        public_key: &WgPublicKey,
        address: Ipv4Addr,
    ) -> Result<(), DataPlaneError> {
        tracing::info!(iface = %self.iface, peer = %public_key, %address, "adding peer");
        self.send(add_peer_request(public_key, address)).await
    }

    /// Stops (`None`) or restores (`Some(address)`) forwarding for a peer,
    /// through its allowed IPs; an absent peer is left absent.
    pub async fn set_forwarding(
        &self,
        public_key: &WgPublicKey,
        address: Option<Ipv4Addr>,
    ) -> Result<(), DataPlaneError> {
        tracing::info!(iface = %self.iface, peer = %public_key, forwarding = address.is_some(), "setting forwarding");
        self.send(allowed_ips_request(public_key, address)).await
    }

    /// Removes a client peer; removing an absent peer is not an error.
    pub async fn remove_peer(&self, public_key: &WgPublicKey) -> Result<(), DataPlaneError> {
        tracing::info!(iface = %self.iface, peer = %public_key, "removing peer");
        self.send(remove_peer_request(public_key)).await
    }

    /// The interface's state over UAPI `get` (a blocking socket call, run
    /// off the async threads).
    async fn snapshot(&self) -> Result<DeviceSnapshot, DataPlaneError> {
        let (iface, socket) = (self.iface.clone(), self.socket.clone());
        Ok(
            tokio::task::spawn_blocking(move || client::get_at(&socket, &iface))
                .await
                .map_err(|e| DataPlaneError::Task {
                    iface: self.iface.clone(),
                    reason: e.to_string(),
                })??,
        )
    }

    /// Every peer's counters.
    pub async fn counters(&self) -> Result<Vec<PeerCounters>, DataPlaneError> {
        let snapshot = self.snapshot().await?;
        Ok(snapshot
            .peers
            .iter()
            .map(|p| PeerCounters {
                public_key: WgPublicKey(p.public_key.0),
                rx_bytes: p.rx_bytes,
                tx_bytes: p.tx_bytes,
                last_handshake: p.last_handshake,
            })
            .collect())
    }

    /// Every peer's key and allowed IPs (what a provider reconciles its
    /// records against at start).
    pub async fn peers(&self) -> Result<Vec<(WgPublicKey, Vec<IpNetwork>)>, DataPlaneError> {
        let snapshot = self.snapshot().await?;
        Ok(snapshot
            .peers
            .into_iter()
            .map(|p| (WgPublicKey(p.public_key.0), p.allowed_ips))
            .collect())
    }

    /// The counters of one peer; `None` if the data plane has no such peer.
    pub async fn peer_counters(
        &self,
        public_key: &WgPublicKey,
    ) -> Result<Option<PeerCounters>, DataPlaneError> {
        Ok(self
            .counters()
            .await?
            .into_iter()
            .find(|p| p.public_key == *public_key))
    }

    async fn send(&self, request: SetRequest) -> Result<(), DataPlaneError> {
        let (iface, socket) = (self.iface.clone(), self.socket.clone());
        let text = request.to_uapi();
        tokio::task::spawn_blocking(move || client::call_at(&socket, &iface, &text))
            .await
            .map_err(|e| DataPlaneError::Task {
                iface: self.iface.clone(),
                reason: e.to_string(),
            })??;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Write};
    use std::os::unix::net::UnixListener;

    const KEY: WgPublicKey = WgPublicKey([0xab; 32]);

    #[test]
    fn add_request_is_wg_set_text() {
        let text = add_peer_request(&KEY, Ipv4Addr::new(10, 77, 0, 2)).to_uapi();
        assert_eq!(
            text,
            format!(
                "set=1\npublic_key={}\nreplace_allowed_ips=true\nallowed_ip=10.77.0.2/32\n",
                "ab".repeat(32)
            )
        );
    }

    #[test]
    fn forwarding_requests_only_touch_an_existing_peer() {
        let stop = allowed_ips_request(&KEY, None).to_uapi();
        assert_eq!(
            stop,
            format!(
                "set=1\npublic_key={}\nupdate_only=true\nreplace_allowed_ips=true\n",
                "ab".repeat(32)
            )
        );
        let resume = allowed_ips_request(&KEY, Some(Ipv4Addr::new(10, 77, 0, 2))).to_uapi();
        assert!(resume.ends_with("replace_allowed_ips=true\nallowed_ip=10.77.0.2/32\n"));
    }

    #[test]
    fn remove_request_is_wg_set_text() {
        let text = remove_peer_request(&KEY).to_uapi();
        assert_eq!(
            text,
            format!("set=1\npublic_key={}\nremove=true\n", "ab".repeat(32))
        );
    }

    /// A stand-in UAPI server on the real socket path: answers `errno` to
    /// each request and hands back what it read.
    fn fake_daemon(iface: &str, errno: i32) -> Option<std::thread::JoinHandle<Vec<String>>> {
        let path = flowshield_tunnel::uapi::socket_path(iface);
        if std::fs::create_dir_all(flowshield_tunnel::uapi::SOCKET_DIR).is_err() {
            return None;
        }
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path).ok()?;
        Some(std::thread::spawn(move || {
            let mut requests = Vec::new();
            for _ in 0..2 {
                let (stream, _) = listener.accept().unwrap();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut request = String::new();
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap() == 0 || line == "\n" {
                        break;
                    }
                    request.push_str(&line);
                }
                (&stream)
                    .write_all(format!("errno={errno}\n\n").as_bytes())
                    .unwrap();
                requests.push(request);
            }
            let _ = std::fs::remove_file(&path);
            requests
        }))
    }

    #[tokio::test]
    async fn sends_set_requests_over_the_uapi_socket() {
        let iface = format!("fsm{}", std::process::id() % 100_000);
        let Some(daemon) = fake_daemon(&iface, 0) else {
            eprintln!("skipped: cannot create a socket in /var/run/wireguard (not root?)");
            return;
        };
        let plane = DataPlane::new(&iface);
        plane
            .add_peer(&KEY, Ipv4Addr::new(10, 77, 0, 3))
            .await
            .unwrap();
        plane.remove_peer(&KEY).await.unwrap();
        let requests = daemon.join().unwrap();
        assert!(requests[0].contains("allowed_ip=10.77.0.3/32\n"));
        assert!(requests[1].ends_with("remove=true\n"));
    }

    #[tokio::test]
    async fn reports_a_refusal_and_an_absent_interface() {
        let iface = format!("fsr{}", std::process::id() % 100_000);
        let Some(daemon) = fake_daemon(&iface, 22) else {
            eprintln!("skipped: cannot create a socket in /var/run/wireguard (not root?)");
            return;
        };
        let plane = DataPlane::new(&iface);
        let err = plane
            .add_peer(&KEY, Ipv4Addr::new(10, 77, 0, 3))
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                DataPlaneError::Uapi(ClientError::Errno { errno: 22, .. })
            ),
            "{err}"
        );
        let _ = plane.remove_peer(&KEY).await;
        daemon.join().unwrap();
        let absent = DataPlane::new("fs-absent0");
        let err = absent.remove_peer(&KEY).await.unwrap_err();
        assert!(
            matches!(err, DataPlaneError::Uapi(ClientError::Connect { .. })),
            "{err}"
        );
    }
}
