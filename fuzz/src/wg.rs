//! Two in-memory WireGuard devices with fixed keys: `A` is the device
//! under attack; `B` is its honest peer (tunnel address 10.0.0.2, endpoint
//! 198.18.0.2:51820); `C` is a second configured peer of `A` (10.0.0.3)
//! that never talks, so a packet from `B` claiming 10.0.0.3 must be dropped.

use flowshield_tunnel::device::{Device, Outputs};
use flowshield_tunnel::key::SecretKey;
use flowshield_tunnel::uapi::set::parse_cidr;
use flowshield_tunnel::uapi::{PeerUpdate, SetRequest};
use std::net::SocketAddr;

pub const KEY_A: [u8; 32] = [0x11; 32];
pub const KEY_B: [u8; 32] = [0x22; 32];
pub const KEY_C: [u8; 32] = [0x33; 32];

pub fn addr_a() -> SocketAddr {
    SocketAddr::from(([198, 18, 0, 1], 51820))
}

pub fn addr_b() -> SocketAddr {
    SocketAddr::from(([198, 18, 0, 2], 51820))
}

fn secret(bytes: [u8; 32]) -> SecretKey {
    SecretKey(bytes)
}

fn peer(key: [u8; 32], allowed: &[&str], endpoint: Option<SocketAddr>) -> PeerUpdate {
    let mut update = PeerUpdate::new(secret(key).public_key());
    update.allowed_ips = allowed
        .iter()
        .map(|a| parse_cidr(a).expect("fixture CIDR"))
        .collect();
    update.endpoint = endpoint;
    update
}

/// The device under attack: peers B (10.0.0.2/32, no endpoint until B
/// writes) and C (10.0.0.3/32).
pub fn device_a() -> Device {
    let device = Device::new();
    device.apply(&SetRequest {
        private_key: Some(secret(KEY_A)),
        listen_port: Some(addr_a().port()),
        peers: vec![
            peer(KEY_B, &["10.0.0.2/32", "fd00::2/128"], None),
            peer(KEY_C, &["10.0.0.3/32"], None),
        ],
        ..Default::default()
    });
    device
}

/// A's honest peer: routes everything to A.
pub fn device_b() -> Device {
    let device = Device::new();
    device.apply(&SetRequest {
        private_key: Some(secret(KEY_B)),
        listen_port: Some(addr_b().port()),
        peers: vec![peer(KEY_A, &["0.0.0.0/0", "::/0"], Some(addr_a()))],
        ..Default::default()
    });
    device
}

/// Outputs collected in memory.
#[derive(Default)]
pub struct Collected {
    pub network: Vec<(SocketAddr, Vec<u8>)>,
    pub tunnel: Vec<Vec<u8>>,
}

impl Outputs for Collected {
    fn to_network(&mut self, dst: SocketAddr, packet: &[u8]) {
        self.network.push((dst, packet.to_vec()));
    }
    fn to_tunnel(&mut self, packet: &[u8]) {
        self.tunnel.push(packet.to_vec());
    }
}

/// A minimal IPv4 packet (20-byte header, UDP protocol number) around
/// `payload`.
pub fn ipv4(src: [u8; 4], dst: [u8; 4], payload: &[u8]) -> Vec<u8> {
    let total = 20 + payload.len();
    let mut p = vec![
        0x45,
        0,
        (total >> 8) as u8,
        total as u8,
        0,
        0,
        0,
        0,
        64,
        17,
        0,
        0,
    ];
    p.extend_from_slice(&src);
    p.extend_from_slice(&dst);
    p.extend_from_slice(payload);
    p
}

/// `req` as the device applies it: a removed peer's other keys are ignored
/// (and `SetRequest::to_uapi` leaves them out), so round trips compare this.
pub fn as_applied(
    req: &flowshield_tunnel::uapi::SetRequest,
) -> flowshield_tunnel::uapi::SetRequest {
    let mut req = req.clone();
    for peer in req.peers.iter_mut().filter(|p| p.remove) {
        *peer = PeerUpdate {
            remove: true,
            ..PeerUpdate::new(peer.public_key)
        };
    }
    req
}
