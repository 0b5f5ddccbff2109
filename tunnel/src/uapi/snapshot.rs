//! The `get=1` reply: a device snapshot, formatted by the daemon and parsed by
//! `flowshield show`. Also the `stats=1` counters extension.

use super::set::{parse_cidr, parse_endpoint};
use super::UapiError;
use crate::key::{PublicKey, SecretKey};
use ip_network::IpNetwork;
use serde::Serialize;
use std::fmt::Write as _;
use std::net::SocketAddr;

/// Everything `get=1` reports about a device.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct DeviceSnapshot {
    pub private_key: Option<SecretKey>,
    /// FlowShield extension (`own_public_key=`), given by the restricted
    /// socket in place of the private key ([`super::restricted`]).
    pub own_public_key: Option<PublicKey>,
    pub listen_port: u16,
    pub fwmark: u32,
    pub peers: Vec<PeerSnapshot>,
}

/// Everything `get=1` reports about one peer.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerSnapshot {
    pub public_key: PublicKey,
    pub preshared_key: Option<SecretKey>,
    pub endpoint: Option<SocketAddr>,
    /// Unix time of the last completed handshake; `(0, 0)` if none.
    pub last_handshake: (u64, u32),
    /// Bytes of authenticated datagrams accepted (delivered, or control);
    /// packets dropped by cryptokey routing are not counted.
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub persistent_keepalive: u16,
    pub allowed_ips: Vec<IpNetwork>,
}

/// Interface counters reported by the `stats=1` extension. Packets counted
/// here were dropped.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Counters {
    /// UDP datagrams that are not WireGuard messages or fail authentication.
    pub malformed_packets: u64,
    /// Well-formed messages for no known peer or session.
    pub unknown_peer_packets: u64,
    /// Decrypted packets whose source address the peer may not use.
    pub disallowed_source_packets: u64,
    /// Packets from the TUN device with no peer for their destination.
    pub no_route_packets: u64,
    /// Packets for a peer that has no known endpoint yet.
    pub no_endpoint_packets: u64,
    /// Handshake messages answered with a cookie because of load.
    pub cookie_replies_sent: u64,
}

impl Counters {
    const FIELDS: [&'static str; 6] = [
        "malformed_packets",
        "unknown_peer_packets",
        "disallowed_source_packets",
        "no_route_packets",
        "no_endpoint_packets",
        "cookie_replies_sent",
    ];

    fn values(&self) -> [u64; 6] {
        [
            self.malformed_packets,
            self.unknown_peer_packets,
            self.disallowed_source_packets,
            self.no_route_packets,
            self.no_endpoint_packets,
            self.cookie_replies_sent,
        ]
    }

    fn field_mut(&mut self, name: &str) -> Option<&mut u64> {
        Some(match name {
            "malformed_packets" => &mut self.malformed_packets,
            "unknown_peer_packets" => &mut self.unknown_peer_packets,
            "disallowed_source_packets" => &mut self.disallowed_source_packets,
            "no_route_packets" => &mut self.no_route_packets,
            "no_endpoint_packets" => &mut self.no_endpoint_packets,
            "cookie_replies_sent" => &mut self.cookie_replies_sent,
            _ => return None,
        })
    }

    /// The `stats=1` reply body (without the errno trailer).
    pub fn to_uapi(&self) -> String {
        let mut out = String::new();
        for (name, value) in Self::FIELDS.iter().zip(self.values()) {
            let _ = writeln!(out, "{name}={value}");
        }
        out
    }

    /// Parses a `stats=1` reply body; unknown keys are ignored so newer
    /// daemons can add counters.
    pub fn from_uapi(text: &str) -> Result<Self, UapiError> {
        let mut counters = Counters::default();
        for (i, line) in text.lines().enumerate() {
            let (key, value) = split_line(i + 1, line)?;
            if let Some(field) = counters.field_mut(key) {
                *field = value
                    .parse()
                    .map_err(|_| UapiError::invalid(i + 1, key, "not a number"))?;
            }
        }
        Ok(counters)
    }
}

fn split_line(line_no: usize, line: &str) -> Result<(&str, &str), UapiError> {
    line.split_once('=').ok_or_else(|| {
        UapiError::invalid(line_no, "", format!("line is not key=value: {line:.64}"))
    })
}

impl DeviceSnapshot {
    /// The `get=1` reply body (without the errno trailer).
    pub fn to_uapi(&self) -> String {
        let mut out = String::new();
        if let Some(key) = &self.private_key {
            let _ = writeln!(out, "private_key={}", key.to_hex());
        }
        if let Some(key) = &self.own_public_key {
            let _ = writeln!(out, "own_public_key={}", key.to_hex());
        }
        if self.listen_port != 0 {
            let _ = writeln!(out, "listen_port={}", self.listen_port);
        }
        if self.fwmark != 0 {
            let _ = writeln!(out, "fwmark={}", self.fwmark);
        }
        for peer in &self.peers {
            let _ = writeln!(out, "public_key={}", peer.public_key.to_hex());
            if let Some(psk) = &peer.preshared_key {
                let _ = writeln!(out, "preshared_key={}", psk.to_hex());
            }
            let _ = writeln!(out, "protocol_version=1");
            if let Some(endpoint) = peer.endpoint {
                let _ = writeln!(out, "endpoint={endpoint}");
            }
            let _ = writeln!(out, "last_handshake_time_sec={}", peer.last_handshake.0);
            let _ = writeln!(out, "last_handshake_time_nsec={}", peer.last_handshake.1);
            let _ = writeln!(out, "tx_bytes={}", peer.tx_bytes);
            let _ = writeln!(out, "rx_bytes={}", peer.rx_bytes);
            let _ = writeln!(
                out,
                "persistent_keepalive_interval={}",
                peer.persistent_keepalive
            );
            for ip in &peer.allowed_ips {
                let _ = writeln!(out, "allowed_ip={ip}");
            }
        }
        out
    }

    /// Parses a `get=1` reply body (without the errno trailer).
    pub fn from_uapi(text: &str) -> Result<Self, UapiError> {
        let mut snap = DeviceSnapshot::default();
        for (i, line) in text.lines().enumerate() {
            let line_no = i + 1;
            let (key, value) = split_line(line_no, line)?;
            let err = |msg: String| UapiError::invalid(line_no, key, msg);
            let num = |v: &str| -> Result<u64, UapiError> {
                v.parse().map_err(|_| err(format!("'{v}' is not a number")))
            };
            match (key, snap.peers.last_mut()) {
                ("private_key", None) => {
                    snap.private_key =
                        Some(SecretKey::from_hex(value).map_err(|e| err(e.to_string()))?)
                }
                ("own_public_key", None) => {
                    snap.own_public_key =
                        Some(PublicKey::from_hex(value).map_err(|e| err(e.to_string()))?)
                }
                ("listen_port", None) => {
                    snap.listen_port = value.parse().map_err(|_| err("bad port".into()))?
                }
                ("fwmark", None) => {
                    snap.fwmark = value.parse().map_err(|_| err("bad fwmark".into()))?
                }
                ("public_key", _) => snap.peers.push(PeerSnapshot {
                    public_key: PublicKey::from_hex(value).map_err(|e| err(e.to_string()))?,
                    preshared_key: None,
                    endpoint: None,
                    last_handshake: (0, 0),
                    rx_bytes: 0,
                    tx_bytes: 0,
                    persistent_keepalive: 0,
                    allowed_ips: Vec::new(),
                }),
                ("preshared_key", Some(p)) => {
                    let psk = SecretKey::from_hex(value).map_err(|e| err(e.to_string()))?;
                    p.preshared_key = (!psk.is_zero()).then_some(psk);
                }
                ("endpoint", Some(p)) => p.endpoint = Some(parse_endpoint(value).map_err(err)?),
                ("last_handshake_time_sec", Some(p)) => p.last_handshake.0 = num(value)?,
                ("last_handshake_time_nsec", Some(p)) => {
                    p.last_handshake.1 = num(value)?.min(999_999_999) as u32
                }
                ("rx_bytes", Some(p)) => p.rx_bytes = num(value)?,
                ("tx_bytes", Some(p)) => p.tx_bytes = num(value)?,
                ("persistent_keepalive_interval", Some(p)) => {
                    p.persistent_keepalive =
                        value.parse().map_err(|_| err("bad interval".into()))?
                }
                ("allowed_ip", Some(p)) => p.allowed_ips.push(parse_cidr(value).map_err(err)?),
                // protocol_version and keys from newer implementations.
                _ => {}
            }
        }
        Ok(snap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> DeviceSnapshot {
        DeviceSnapshot {
            private_key: Some(SecretKey::generate_private()),
            own_public_key: None,
            listen_port: 51820,
            fwmark: 7,
            peers: vec![PeerSnapshot {
                public_key: SecretKey::generate_private().public_key(),
                preshared_key: Some(SecretKey::generate_preshared()),
                endpoint: Some("[2001:db8::1]:4000".parse().unwrap()),
                last_handshake: (1_700_000_000, 5),
                rx_bytes: 10,
                tx_bytes: 20,
                persistent_keepalive: 25,
                allowed_ips: vec![
                    parse_cidr("10.0.0.2/32").unwrap(),
                    parse_cidr("::/0").unwrap(),
                ],
            }],
        }
    }

    #[test]
    fn snapshot_round_trips() {
        let snap = sample();
        let text = snap.to_uapi();
        assert!(text.contains("endpoint=[2001:db8::1]:4000\n"));
        assert!(text.contains("protocol_version=1\n"));
        assert_eq!(DeviceSnapshot::from_uapi(&text).unwrap(), snap);
    }

    #[test]
    fn counters_round_trip_and_ignore_unknown() {
        let counters = Counters {
            malformed_packets: 3,
            cookie_replies_sent: 9,
            ..Default::default()
        };
        let text = counters.to_uapi() + "future_counter=4\n";
        assert_eq!(Counters::from_uapi(&text).unwrap(), counters);
        assert!(Counters::from_uapi("malformed_packets=x").is_err());
    }
}
