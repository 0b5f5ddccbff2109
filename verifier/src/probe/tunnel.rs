//! The verifier's side of a probe tunnel: a `flowshield daemon` for one interface,
//! configured over UAPI with the verifier's key and the provider as its only peer,
//! allowed to reach only the provider's probe address. [`ProbeTunnel`] removes the
//! interface, stops the daemon and deletes its socket when dropped, whatever happened.

use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use flowshield_tunnel::key::{PublicKey, SecretKey};
use flowshield_tunnel::uapi::{self, client, PeerUpdate, SetRequest};

use super::netns::Place;
use crate::config::ProbeSettings;
use crate::error::ProbeError;
use crate::target::ProbeTarget;

/// Tunnel MTU: a 1500-byte underlay minus WireGuard's 80 bytes of overhead.
const TUNNEL_MTU: &str = "1420";
/// How long the daemon may take to answer on its UAPI socket.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// A running probe interface; torn down on drop.
pub struct ProbeTunnel {
    place: Place,
    iface: String,
    child: Option<Child>,
    log: PathBuf,
}

impl ProbeTunnel {
    /// Check the endpoint is routable from `place` without sending anything.
    pub fn preflight(place: &Place, endpoint: SocketAddr) -> Result<(), ProbeError> {
        let ip = endpoint.ip().to_string();
        place
            .ip(&["route", "get", &ip])
            .map(|_| ())
            .map_err(|e| ProbeError::EndpointUnreachable {
                endpoint,
                netns: place.describe(),
                reason: e.to_string(),
            })
    }

    /// Bring up the interface for `target` (see the module doc).
    pub fn up(
        settings: &ProbeSettings,
        place: &Place,
        key: &SecretKey,
        target: &ProbeTarget,
        peer_key: PublicKey,
    ) -> Result<Self, ProbeError> {
        let iface = settings.interface.clone();
        if place.ip(&["link", "show", "dev", &iface]).is_ok() {
            // Left behind by a killed earlier run: its daemon exits with the link.
            tracing::warn!(%iface, "removing a stale probe interface");
            place.ip(&["link", "del", "dev", &iface])?;
        }
        let log = std::env::temp_dir().join(format!("flowshield-verifier-{iface}.log"));
        let log_file = std::fs::File::create(&log).map_err(|source| ProbeError::Io {
            what: format!("creating {}", log.display()),
            source,
        })?;
        let log_err = log_file.try_clone().map_err(|source| ProbeError::Io {
            what: "cloning the daemon log handle".into(),
            source,
        })?;
        let mut cmd = place.command(&settings.flowshield_bin);
        cmd.args(["daemon", &iface])
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log_file)
            .stderr(log_err);
        let child = cmd.spawn().map_err(|e| ProbeError::Command {
            command: format!("{} daemon {iface}", settings.flowshield_bin.display()),
            message: e.to_string(),
        })?;
        let mut tunnel = ProbeTunnel {
            place: place.clone(),
            iface,
            child: Some(child),
            log,
        };
        tunnel.wait_ready()?;
        tunnel.configure(key, target, peer_key)?;
        Ok(tunnel)
    }

    fn wait_ready(&mut self) -> Result<(), ProbeError> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    return Err(ProbeError::Command {
                        command: format!("flowshield daemon {}", self.iface),
                        message: format!("exited early ({status}): {}", self.log_tail()),
                    });
                }
            }
            if client::get(&self.iface).is_ok() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(ProbeError::Timeout {
                    what: format!("the probe daemon for {} to answer", self.iface),
                    after: READY_TIMEOUT,
                });
            }
            // Socket poll, bounded by the deadline above.
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn configure(
        &self,
        key: &SecretKey,
        target: &ProbeTarget,
        peer_key: PublicKey,
    ) -> Result<(), ProbeError> {
        let host_prefix = if target.probe_address.is_ipv4() {
            32
        } else {
            128
        };
        let probe_net = format!("{}/{host_prefix}", target.probe_address);
        let mut peer = PeerUpdate::new(peer_key);
        peer.endpoint = Some(target.endpoint);
        peer.replace_allowed_ips = true;
        // Only the probe address goes into the tunnel: nothing else is routed to the
        // provider, and nothing the provider sends from elsewhere is accepted.
        peer.allowed_ips =
            vec![
                uapi::set::parse_cidr(&probe_net).map_err(|message| ProbeError::Command {
                    command: "allowed-ips".into(),
                    message,
                })?,
            ];
        let request = SetRequest {
            private_key: Some(key.clone()),
            replace_peers: true,
            peers: vec![peer],
            ..SetRequest::default()
        };
        client::call(&self.iface, &request.to_uapi())?;
        let cidr = target.tunnel_address.to_string();
        self.place.ip(&["addr", "add", &cidr, "dev", &self.iface])?;
        self.place
            .ip(&["link", "set", "dev", &self.iface, "mtu", TUNNEL_MTU, "up"])?;
        self.place
            .ip(&["route", "replace", &probe_net, "dev", &self.iface])?;
        Ok(())
    }

    /// The interface name.
    pub fn iface(&self) -> &str {
        &self.iface
    }

    /// Send datagrams to the discard port of `probe` through the tunnel until the
    /// handshake completes; returns the time from the first datagram to completion.
    pub fn handshake(
        &self,
        probe: std::net::IpAddr,
        timeout: Duration,
    ) -> Result<Duration, ProbeError> {
        let start = Instant::now();
        let deadline = start + timeout;
        let mut next_nudge = start;
        loop {
            let now = Instant::now();
            if now >= next_nudge {
                // The first packet for the peer makes the daemon initiate a handshake.
                let target = SocketAddr::new(probe, 9);
                self.place
                    .enter(move || {
                        let bind: SocketAddr = if target.is_ipv4() {
                            "0.0.0.0:0".parse().map_err(std::io::Error::other)?
                        } else {
                            "[::]:0".parse().map_err(std::io::Error::other)?
                        };
                        UdpSocket::bind(bind)?.send_to(b"flowshield-verifier", target)
                    })?
                    .map_err(|source| ProbeError::Io {
                        what: format!("sending the handshake trigger to {target}"),
                        source,
                    })?;
                next_nudge = now + Duration::from_secs(1);
            }
            let snapshot = client::get(&self.iface)?;
            if snapshot.peers.iter().any(|p| p.last_handshake != (0, 0)) {
                return Ok(start.elapsed());
            }
            super::check_stop()?;
            if Instant::now() >= deadline {
                return Err(ProbeError::Timeout {
                    what: "the WireGuard handshake".into(),
                    after: timeout,
                });
            }
            // UAPI poll every 5 ms, bounded by the deadline above.
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(10)..].join("\n")
    }
}

impl Drop for ProbeTunnel {
    fn drop(&mut self) {
        // Deleting the link makes the daemon exit; SIGTERM/SIGKILL make sure of it.
        let _ = self.place.ip(&["link", "del", "dev", &self.iface]);
        if let Some(mut child) = self.child.take() {
            let pid = child.id() as libc::pid_t;
            // SAFETY: kill(2) on our own child, not yet reaped.
            unsafe { libc::kill(pid, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(3);
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            if matches!(child.try_wait(), Ok(None)) {
                let _ = child.kill();
            }
            let _ = child.wait();
        }
        let _ = std::fs::remove_file(uapi::socket_path(&self.iface));
        let _ = std::fs::remove_file(&self.log);
        tracing::debug!(iface = %self.iface, "probe tunnel removed");
    }
}
