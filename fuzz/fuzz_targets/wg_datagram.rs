//! Incoming WireGuard datagrams through the sans-IO device: the device
//! under attack (`A`) receives raw bytes from its peer's address and from
//! strangers, real messages from its honest peer `B` (whose inner packets
//! the fuzzer writes, spoofed sources included), and those real messages
//! with bits flipped. Ops: `[op][len u16 le][payload]`...
//!
//! Invariants, per datagram `A` handles: no panic; at most one drop
//! counter moves; a peer's `rx_bytes` grows by 0 or the datagram's length;
//! every packet delivered to the TUN device comes from `B` and carries a
//! source address inside `B`'s AllowedIPs (cryptokey routing), and then no
//! drop counter moved; replies go only to the datagram's sender.
#![no_main]

use flowshield_fuzz::wg::{addr_a, addr_b, device_a, device_b, Collected};
use flowshield_tunnel::device::datapath::SCRATCH_LEN;
use flowshield_tunnel::device::Device;
use flowshield_tunnel::uapi::Counters;
use libfuzzer_sys::fuzz_target;
use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Instant;

const B_TUNNEL_V4: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const B_TUNNEL_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2);

fn dropped(c: &Counters) -> u64 {
    c.malformed_packets
        + c.unknown_peer_packets
        + c.disallowed_source_packets
        + c.no_route_packets
        + c.no_endpoint_packets
        + c.cookie_replies_sent
}

fn rx_total(device: &Device) -> u64 {
    device.snapshot().peers.iter().map(|p| p.rx_bytes).sum()
}

fn inner_source(packet: &[u8]) -> Option<IpAddr> {
    match packet.first()? >> 4 {
        4 => {
            let b: [u8; 4] = packet.get(12..16)?.try_into().ok()?;
            Some(IpAddr::from(b))
        }
        6 => {
            let b: [u8; 16] = packet.get(8..24)?.try_into().ok()?;
            Some(IpAddr::from(b))
        }
        _ => None,
    }
}

struct World {
    a: Device,
    b: Device,
    to_a: VecDeque<Vec<u8>>,
    scratch: Vec<u8>,
}

impl World {
    /// `A` handles one datagram; the invariants are checked here.
    fn a_receives(&mut self, src: SocketAddr, datagram: &[u8]) {
        let before = self.a.counters.snapshot();
        let rx_before = rx_total(&self.a);
        let mut out = Collected::default();
        self.a
            .handle_datagram(src, datagram, &mut self.scratch, &mut out);
        let after = self.a.counters.snapshot();
        let rx_delta = rx_total(&self.a) - rx_before;
        let counted = dropped(&after) - dropped(&before);
        assert!(counted <= 1, "one datagram moved {counted} drop counters");
        assert!(
            rx_delta == 0 || rx_delta == datagram.len() as u64,
            "rx_bytes grew by {rx_delta} for a {}-byte datagram",
            datagram.len()
        );
        for packet in &out.tunnel {
            assert_eq!(src, addr_b(), "only B has a session; delivered from {src}");
            let source = inner_source(packet);
            assert!(
                source == Some(IpAddr::V4(B_TUNNEL_V4)) || source == Some(IpAddr::V6(B_TUNNEL_V6)),
                "delivered a packet from {source:?}, outside B's AllowedIPs: {}",
                hex::encode(&packet[..packet.len().min(64)])
            );
        }
        if !out.tunnel.is_empty() {
            assert_eq!(counted, 0, "a delivered packet was also counted as dropped");
            assert_eq!(
                rx_delta,
                datagram.len() as u64,
                "delivered bytes not counted"
            );
        }
        for (dst, reply) in out.network {
            assert_eq!(dst, src, "a reply went to {dst}, not to the sender {src}");
            if dst == addr_b() {
                self.b_receives(&reply);
            }
        }
    }

    fn b_receives(&mut self, datagram: &[u8]) {
        let mut out = Collected::default();
        self.b
            .handle_datagram(addr_a(), datagram, &mut self.scratch, &mut out);
        self.queue_from_b(out);
    }

    fn queue_from_b(&mut self, out: Collected) {
        for (dst, packet) in out.network {
            if dst == addr_a() && self.to_a.len() < 64 {
                self.to_a.push_back(packet);
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut world = World {
        a: device_a(),
        b: device_b(),
        to_a: VecDeque::new(),
        scratch: vec![0; SCRATCH_LEN],
    };
    let stranger = SocketAddr::from(([203, 0, 113, 9], 4444));
    let mut rest = data;
    while let [op, l0, l1, tail @ ..] = rest {
        let len = usize::from(u16::from_le_bytes([*l0, *l1])).min(tail.len());
        let (payload, next) = tail.split_at(len);
        rest = next;
        match op % 7 {
            0 => world.a_receives(addr_b(), payload),
            1 => world.a_receives(stranger, payload),
            2 => {
                let mut out = Collected::default();
                world
                    .b
                    .handle_tun_packet(payload, &mut world.scratch, &mut out);
                world.queue_from_b(out);
            }
            3 => {
                for _ in 0..8 {
                    let Some(packet) = world.to_a.pop_front() else {
                        break;
                    };
                    world.a_receives(addr_b(), &packet);
                }
            }
            4 => {
                if let Some(mut packet) = world.to_a.pop_front() {
                    for (i, flip) in payload.iter().enumerate() {
                        if let Some(byte) = packet.get_mut(i) {
                            *byte ^= flip;
                        }
                    }
                    world.a_receives(addr_b(), &packet);
                }
            }
            5 => {
                let mut out = Collected::default();
                world
                    .a
                    .handle_tun_packet(payload, &mut world.scratch, &mut out);
                for (dst, packet) in out.network {
                    assert_eq!(
                        dst,
                        addr_b(),
                        "A sent to {dst}, which is no peer's endpoint"
                    );
                    world.b_receives(&packet);
                }
            }
            _ => {
                let now = Instant::now();
                let mut out = Collected::default();
                world.a.tick(now, &mut world.scratch, &mut out);
                for (_, packet) in out.network {
                    world.b_receives(&packet);
                }
                let mut out = Collected::default();
                world.b.tick(now, &mut world.scratch, &mut out);
                world.queue_from_b(out);
            }
        }
    }
});
