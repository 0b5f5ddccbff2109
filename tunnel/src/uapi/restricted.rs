//! The restricted UAPI socket: what an unprivileged sidecar (the market
//! provider) may do to the interface, and nothing more. It may add peers,
//! change and remove the peers it added itself, and read the interface's
//! state and counters. It may not read the private key or any preshared
//! key (`get=1` gives the interface's public key instead, as
//! `own_public_key=`), set the private key, listen port or fwmark, replace
//! all peers, or touch a peer someone else (root, through the full socket)
//! configured. A refused `set` changes nothing and is answered
//! `errno=1` (EPERM).
//!
//! The checks ([`restrict_snapshot`], [`check_set`]) are plain functions;
//! [`Restricted`] wraps the device's [`Handler`] with them.

use super::server::Handler;
use super::{Counters, DeviceSnapshot, SetRequest, UapiError};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};

/// Where an interface's restricted socket lives (a directory of its own, so
/// `wg show` and the interface list do not take it for an interface).
pub fn socket_path(iface: &str) -> std::path::PathBuf {
    std::path::Path::new(super::SOCKET_DIR)
        .join("restricted")
        .join(format!("{iface}.sock"))
}

/// `snapshot` as the restricted socket shows it: no secrets.
pub fn restrict_snapshot(mut snapshot: DeviceSnapshot) -> DeviceSnapshot {
    if let Some(private) = snapshot.private_key.take() {
        if !private.is_zero() {
            snapshot.own_public_key = Some(private.public_key());
        }
    }
    for peer in &mut snapshot.peers {
        peer.preshared_key = None;
    }
    snapshot
}

fn refuse(key: &str, message: &str) -> UapiError {
    UapiError {
        errno: libc::EPERM,
        ..UapiError::invalid(0, key, message.to_string())
    }
}

/// Whether the restricted socket may apply `req`, given the peers the
/// interface has (`existing`) and those this socket added (`owned`).
pub fn check_set(
    req: &SetRequest,
    existing: &HashSet<[u8; 32]>,
    owned: &HashSet<[u8; 32]>,
) -> Result<(), UapiError> {
    if req.private_key.is_some() {
        return Err(refuse("private_key", "not through the restricted socket"));
    }
    if req.listen_port.is_some() {
        return Err(refuse("listen_port", "not through the restricted socket"));
    }
    if req.fwmark.is_some() {
        return Err(refuse("fwmark", "not through the restricted socket"));
    }
    if req.replace_peers {
        return Err(refuse("replace_peers", "not through the restricted socket"));
    }
    for peer in &req.peers {
        let key = peer.public_key.0;
        if existing.contains(&key) && !owned.contains(&key) {
            return Err(refuse(
                "public_key",
                "a peer this socket did not add is not its to change",
            ));
        }
    }
    Ok(())
}

/// A [`Handler`] limited as the module says.
pub struct Restricted<H> {
    inner: Arc<H>,
    /// Public keys of the peers added through this socket.
    owned: Mutex<HashSet<[u8; 32]>>,
}

impl<H> Restricted<H> {
    pub fn new(inner: Arc<H>) -> Self {
        Self {
            inner,
            owned: Mutex::new(HashSet::new()),
        }
    }

    fn owned(&self) -> HashSet<[u8; 32]> {
        self.owned.lock().map(|o| o.clone()).unwrap_or_default()
    }
}

impl<H: Handler> Handler for Restricted<H> {
    fn get(&self) -> DeviceSnapshot {
        restrict_snapshot(self.inner.get())
    }

    fn stats(&self) -> Counters {
        self.inner.stats()
    }

    async fn set(&self, req: SetRequest) -> Result<(), UapiError> {
        let existing: HashSet<[u8; 32]> = self
            .inner
            .get()
            .peers
            .iter()
            .map(|p| p.public_key.0)
            .collect();
        check_set(&req, &existing, &self.owned())?;
        let changed: Vec<([u8; 32], bool)> = req
            .peers
            .iter()
            .map(|p| (p.public_key.0, p.remove))
            .collect();
        self.inner.set(req).await?;
        if let Ok(mut owned) = self.owned.lock() {
            for (key, removed) in changed {
                if removed {
                    owned.remove(&key);
                } else {
                    owned.insert(key);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::{PublicKey, SecretKey};
    use crate::uapi::{PeerSnapshot, PeerUpdate};

    fn set(text: &str) -> SetRequest {
        match crate::uapi::Request::parse(text).expect("request") {
            crate::uapi::Request::Set(req) => req,
            _ => panic!("not a set"),
        }
    }

    #[test]
    fn get_hides_the_private_key_and_preshared_keys() {
        let private = SecretKey::from_hex(&"11".repeat(32)).unwrap();
        let public = private.public_key();
        let snapshot = DeviceSnapshot {
            private_key: Some(private),
            listen_port: 51820,
            peers: vec![PeerSnapshot {
                public_key: PublicKey([7; 32]),
                preshared_key: Some(SecretKey::from_hex(&"22".repeat(32)).unwrap()),
                endpoint: None,
                last_handshake: (0, 0),
                rx_bytes: 5,
                tx_bytes: 6,
                persistent_keepalive: 0,
                allowed_ips: vec![],
            }],
            ..DeviceSnapshot::default()
        };
        let shown = restrict_snapshot(snapshot);
        assert!(shown.private_key.is_none());
        assert_eq!(shown.own_public_key, Some(public));
        assert!(shown.peers[0].preshared_key.is_none());
        assert_eq!(shown.peers[0].rx_bytes, 5, "counters stay readable");
        let text = shown.to_uapi();
        assert!(
            !text.contains("private_key") && !text.contains("preshared_key"),
            "{text}"
        );
        assert!(
            text.contains(&format!("own_public_key={}", public.to_hex())),
            "{text}"
        );
        // And it parses back (what the sidecar reads).
        let parsed = DeviceSnapshot::from_uapi(&text).unwrap();
        assert_eq!(parsed.own_public_key, Some(public));
    }

    #[test]
    fn interface_keys_and_replace_peers_are_refused() {
        let none = HashSet::new();
        for (text, key) in [
            (
                format!("set=1\nprivate_key={}", "11".repeat(32)),
                "private_key",
            ),
            ("set=1\nlisten_port=4000".to_string(), "listen_port"),
            ("set=1\nfwmark=7".to_string(), "fwmark"),
            ("set=1\nreplace_peers=true".to_string(), "replace_peers"),
        ] {
            let err = check_set(&set(&text), &none, &none).unwrap_err();
            assert_eq!(err.errno, libc::EPERM, "{text}");
            assert!(err.to_string().contains(key), "{err}");
        }
    }

    #[test]
    fn only_its_own_peers_may_change() {
        let mut req = SetRequest::default();
        req.peers.push(PeerUpdate::new(PublicKey([7; 32])));
        let none = HashSet::new();
        let existing: HashSet<[u8; 32]> = [[7; 32]].into();
        // New peer: fine. Someone else's: refused. Its own: fine.
        assert!(check_set(&req, &none, &none).is_ok());
        assert_eq!(
            check_set(&req, &existing, &none).unwrap_err().errno,
            libc::EPERM
        );
        assert!(check_set(&req, &existing, &existing).is_ok());
    }
}
