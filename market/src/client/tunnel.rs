//! The client's own data plane: a wg-quick file (0600) brought up with
//! `flowshield up`, read through UAPI (counters, handshakes), taken down
//! with `flowshield down`.

use crate::dataplane::{DataPlane, PeerCounters};
use crate::wire::session::ConnectedInfo;
use flowshield_proto::WgPublicKey;
use flowshield_tunnel::key::SecretKey;
use std::net::{Ipv4Addr, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Why the tunnel could not be set up or read.
#[derive(Debug, thiserror::Error)]
pub enum TunnelError {
    #[error("{path}: {reason}")]
    File { path: PathBuf, reason: String },
    #[error("`{command}` failed: {reason}")]
    Command { command: String, reason: String },
    #[error("provider sent {field} '{value}', which is not valid")]
    BadInfo { field: &'static str, value: String },
    #[error("no handshake with the provider within {0:?}")]
    NoFirstPacket(Duration),
}

/// The wg-quick text for a session. Only typed values go in: what the
/// provider sent was checked field by field where its answer was decoded
/// ([`crate::wire::raw`]), so no text of its own reaches the file.
pub fn wg_quick_text(secret: &SecretKey, info: &ConnectedInfo) -> Result<String, TunnelError> {
    if info.allowed_ips.is_empty() {
        return Err(TunnelError::BadInfo {
            field: "allowed_ips",
            value: String::new(),
        });
    }
    let allowed_ips: Vec<String> = info.allowed_ips.iter().map(ToString::to_string).collect();
    Ok(format!(
        "[Interface]\nPrivateKey = {}\nAddress = {}\n\n[Peer]\nPublicKey = {}\nEndpoint = {}\nAllowedIPs = {}\nPersistentKeepalive = {}\n",
        secret.to_base64(),
        info.tunnel_address,
        info.provider_wg_public_key,
        info.endpoint,
        allowed_ips.join(", "),
        info.persistent_keepalive,
    ))
}

/// Writes `text` to `path`, mode 0600 from the start.
pub fn write_private(path: &Path, text: &str) -> Result<(), TunnelError> {
    flowshield_keyfile::write_private(path, text.as_bytes()).map_err(|e| TunnelError::File {
        path: path.to_path_buf(),
        reason: e.reason(),
    })
}

/// Runs `flowshield <verb> <file>`.
pub async fn flowshield(bin: &Path, verb: &str, file: &Path) -> Result<(), TunnelError> {
    let command = format!("{} {verb} {}", bin.display(), file.display());
    let output = tokio::process::Command::new(bin)
        .arg(verb)
        .arg(file)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .map_err(|e| TunnelError::Command {
            command: command.clone(),
            reason: e.to_string(),
        })?;
    if !output.status.success() {
        return Err(TunnelError::Command {
            command,
            reason: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        });
    }
    Ok(())
}

/// Reads the provider peer's counters (None if the interface or peer is gone).
pub async fn counters(iface: &str, peer: &WgPublicKey) -> Option<PeerCounters> {
    match DataPlane::new(iface).peer_counters(peer).await {
        Ok(counters) => counters,
        Err(e) => {
            tracing::debug!(error = %e, "cannot read the tunnel's counters");
            None
        }
    }
}

/// Sends a datagram into the tunnel (to the provider's tunnel address,
/// discard port) until the first handshake completes.
pub async fn wait_first_packet(
    iface: &str,
    peer: &WgPublicKey,
    provider_ip: Ipv4Addr,
    timeout: Duration,
) -> Result<(), TunnelError> {
    let deadline = Instant::now() + timeout;
    let socket = UdpSocket::bind("0.0.0.0:0").ok();
    let mut last_poke: Option<Instant> = None;
    loop {
        if last_poke.is_none_or(|t| t.elapsed() >= Duration::from_millis(500)) {
            if let Some(socket) = &socket {
                let _ = socket.send_to(b"flowshield-first-packet", (provider_ip, 9));
            }
            last_poke = Some(Instant::now());
        }
        if counters(iface, peer)
            .await
            .is_some_and(|c| c.last_handshake.0 != 0)
        {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(TunnelError::NoFirstPacket(timeout));
        }
        // Poll interval of a bounded wait (deadline above).
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::wire::raw::RawSessionResponse;
    use crate::wire::session::SessionResponse;
    use flowshield_chain::alloy::primitives::U256;

    fn info() -> ConnectedInfo {
        ConnectedInfo {
            order_id: U256::from(1),
            tunnel_address: "10.77.0.2/24".parse().unwrap(),
            provider_wg_public_key: WgPublicKey([7; 32]),
            endpoint: "10.250.0.11:51820".parse().unwrap(),
            allowed_ips: vec![
                "10.77.0.0/24".parse().unwrap(),
                "198.18.99.0/24".parse().unwrap(),
            ],
            persistent_keepalive: 25,
            provider_tunnel_ip: "10.77.0.1".parse().unwrap(),
        }
    }

    /// A provider's `Connected` answer with `field` set to `value`, read
    /// as the client reads it; evil values stop there.
    fn wg_quick_text_of_answer(
        secret: &SecretKey,
        field: &str,
        value: serde_json::Value,
    ) -> Result<String, Box<dyn std::error::Error>> {
        let mut answer = serde_json::to_value(SessionResponse::Connected(info()))?;
        answer[field] = value;
        match RawSessionResponse::from_json(&answer.to_string())?.decode()? {
            SessionResponse::Connected(info) => Ok(wg_quick_text(secret, &info)?),
            other => Err(format!("not a Connected answer: {other:?}").into()),
        }
    }

    #[test]
    fn writes_a_wg_quick_file_and_refuses_bad_provider_values() {
        let secret = SecretKey::generate_private();
        let text = wg_quick_text(&secret, &info()).unwrap();
        assert!(
            text.contains("AllowedIPs = 10.77.0.0/24, 198.18.99.0/24\n"),
            "{text}"
        );
        assert!(text.contains("Endpoint = 10.250.0.11:51820\n"));
        let evil = serde_json::json!(["0.0.0.0/0\nPostUp = rm -rf /"]);
        let err = wg_quick_text_of_answer(&secret, "allowed_ips", evil).unwrap_err();
        assert!(err.to_string().contains("allowed_ips"), "{err}");
        assert!(wg_quick_text_of_answer(&secret, "endpoint", "x".into()).is_err());
        let mut evil = info();
        evil.allowed_ips.clear();
        let err = wg_quick_text(&secret, &evil).unwrap_err();
        assert!(err.to_string().contains("allowed_ips"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s/fsc.conf");
        write_private(&path, &text).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
}
