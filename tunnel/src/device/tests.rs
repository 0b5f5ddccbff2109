//! Two in-memory devices talking through collected outputs: the whole
//! protocol path without sockets.

use super::*;
use crate::device::datapath::SCRATCH_LEN;
use crate::uapi::set::parse_cidr;
use crate::uapi::{PeerUpdate, Request};
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

#[derive(Default)]
struct Collected {
    network: Vec<(SocketAddr, Vec<u8>)>,
    /// The source address each `network` packet is to be sent from.
    sources: Vec<Option<IpAddr>>,
    tunnel: Vec<Vec<u8>>,
}

impl Outputs for Collected {
    fn to_network(&mut self, dst: SocketAddr, packet: &[u8]) {
        self.to_network_from(dst, None, packet);
    }
    fn to_network_from(&mut self, dst: SocketAddr, src: Option<IpAddr>, packet: &[u8]) {
        self.network.push((dst, packet.to_vec()));
        self.sources.push(src);
    }
    fn to_tunnel(&mut self, packet: &[u8]) {
        self.tunnel.push(packet.to_vec());
    }
}

struct Node {
    device: Device,
    key: SecretKey,
    addr: SocketAddr,
}

fn node(port: u16) -> Node {
    let key = SecretKey::generate_private();
    let device = Device::new();
    device.apply(&SetRequest {
        private_key: Some(key.clone()),
        listen_port: Some(port),
        ..Default::default()
    });
    Node {
        device,
        key,
        addr: format!("198.18.0.1:{port}").parse().unwrap(),
    }
}

fn add_peer(on: &Node, peer: &Node, allowed: &[&str], endpoint: bool) {
    let mut update = PeerUpdate::new(peer.key.public_key());
    update.allowed_ips = allowed.iter().map(|a| parse_cidr(a).unwrap()).collect();
    update.endpoint = endpoint.then_some(peer.addr);
    on.device.apply(&SetRequest {
        peers: vec![update],
        ..Default::default()
    });
}

/// A minimal IPv4 header (20 bytes) plus payload.
fn ipv4(src: [u8; 4], dst: [u8; 4], payload: &[u8]) -> Vec<u8> {
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

/// Delivers every network packet in `out` that is addressed to `to`.
fn deliver(out: Collected, from: &Node, to: &Node) -> Collected {
    let mut next = Collected::default();
    let mut scratch = vec![0u8; SCRATCH_LEN];
    for (dst, packet) in out.network {
        assert_eq!(dst, to.addr);
        to.device
            .handle_datagram(from.addr, &packet, &mut scratch, &mut next);
    }
    next
}

fn pair() -> (Node, Node) {
    let a = node(1001);
    let b = node(1002);
    add_peer(&a, &b, &["10.77.0.2/32"], true);
    add_peer(&b, &a, &["10.77.0.1/32"], false);
    (a, b)
}

fn send(from: &Node, packet: &[u8]) -> Collected {
    let mut out = Collected::default();
    let mut scratch = vec![0u8; SCRATCH_LEN];
    from.device
        .handle_tun_packet(packet, &mut scratch, &mut out);
    out
}

#[test]
fn handshake_then_data_both_ways() {
    let (a, b) = pair();
    let ping = ipv4([10, 77, 0, 1], [10, 77, 0, 2], b"hello");
    // A has no session: the packet is queued and a handshake initiation sent.
    let init = send(&a, &ping);
    assert_eq!(init.network.len(), 1);
    let resp = deliver(init, &a, &b);
    assert_eq!(resp.network.len(), 1, "B answers the handshake");
    // B learned A's endpoint from the authenticated initiation (roaming).
    assert_eq!(b.device.snapshot().peers[0].endpoint, Some(a.addr));
    let data = deliver(resp, &b, &a);
    // A confirms the session with a keepalive, then flushes the queued packet.
    assert_eq!(data.network.len(), 2);
    let at_b = deliver(data, &a, &b);
    assert_eq!(at_b.tunnel, vec![ping]);

    let pong = ipv4([10, 77, 0, 2], [10, 77, 0, 1], b"world");
    let at_a = deliver(send(&b, &pong), &b, &a);
    assert_eq!(at_a.tunnel, vec![pong]);

    let snap = a.device.snapshot();
    assert!(snap.peers[0].last_handshake.0 > 0);
    assert!(snap.peers[0].rx_bytes > 0 && snap.peers[0].tx_bytes > 0);
}

#[test]
fn source_outside_allowed_ips_is_dropped_and_counted() {
    let (a, b) = pair();
    let first = ipv4([10, 77, 0, 1], [10, 77, 0, 2], b"x");
    let data = deliver(deliver(send(&a, &first), &a, &b), &b, &a);
    assert_eq!(deliver(data, &a, &b).tunnel.len(), 1);
    let rx_before = b.device.snapshot().peers[0].rx_bytes;
    // A spoofs a source that B only allows for nobody.
    let spoofed = ipv4([10, 99, 0, 1], [10, 77, 0, 2], b"spoof");
    let at_b = deliver(send(&a, &spoofed), &a, &b);
    assert!(at_b.tunnel.is_empty());
    assert_eq!(b.device.counters.snapshot().disallowed_source_packets, 1);
    // Not counted as received: the market bills rx_bytes, and a peer must
    // not be paid for packets the other side threw away.
    assert_eq!(b.device.snapshot().peers[0].rx_bytes, rx_before);
}

/// Found by the `wg_datagram` fuzz target: an authenticated packet whose
/// inner IPv4 header claims a total length shorter than the header itself
/// was cut to that length (to nothing, for 0) and written to the TUN device
/// — and its bytes billed as received. Like the kernel's "dishonest packet
/// size" check, it is dropped and counted as malformed.
#[test]
fn inner_length_shorter_than_its_header_is_dropped_and_counted() {
    let (a, b) = pair();
    let first = ipv4([10, 77, 0, 1], [10, 77, 0, 2], b"x");
    let data = deliver(deliver(send(&a, &first), &a, &b), &b, &a);
    assert_eq!(deliver(data, &a, &b).tunnel.len(), 1);
    let rx_before = b.device.snapshot().peers[0].rx_bytes;
    for claimed in [0u16, 1, 19] {
        let mut dishonest = ipv4([10, 77, 0, 1], [10, 77, 0, 2], b"payload");
        dishonest[2..4].copy_from_slice(&claimed.to_be_bytes());
        let at_b = deliver(send(&a, &dishonest), &a, &b);
        assert!(at_b.tunnel.is_empty(), "total length {claimed}: delivered");
    }
    assert_eq!(b.device.counters.snapshot().malformed_packets, 3);
    assert_eq!(b.device.snapshot().peers[0].rx_bytes, rx_before);
    // An honest packet still goes through.
    let honest = ipv4([10, 77, 0, 1], [10, 77, 0, 2], b"payload");
    assert_eq!(deliver(send(&a, &honest), &a, &b).tunnel, vec![honest]);
}

#[test]
fn garbage_datagrams_are_counted() {
    let (a, b) = pair();
    let mut scratch = vec![0u8; SCRATCH_LEN];
    let mut out = Collected::default();
    let mut init = send(&a, &ipv4([10, 77, 0, 1], [10, 77, 0, 2], b"x")).network;
    let (_, mut handshake) = init.remove(0);
    handshake[60] ^= 0xff; // corrupt the encrypted static key: MAC fails
    let garbage: Vec<Vec<u8>> = vec![
        vec![],
        vec![1, 2, 3],
        vec![9, 0, 0, 0, 1, 2, 3, 4],
        vec![1; 147],
        vec![0xff; 2000],
        handshake,
    ];
    for g in &garbage {
        b.device.handle_datagram(a.addr, g, &mut scratch, &mut out);
    }
    assert!(out.network.is_empty() && out.tunnel.is_empty());
    assert_eq!(
        b.device.counters.snapshot().malformed_packets,
        garbage.len() as u64
    );
    // A data message for a session index nobody has.
    let mut data = vec![4, 0, 0, 0, 0xaa, 0xbb, 0xcc, 0];
    data.extend_from_slice(&[0u8; 40]);
    b.device
        .handle_datagram(a.addr, &data, &mut scratch, &mut out);
    assert_eq!(b.device.counters.snapshot().unknown_peer_packets, 1);
}

#[test]
fn routing_picks_longest_prefix_and_counts_misses() {
    let a = node(2001);
    let b = node(2002);
    let c = node(2003);
    add_peer(&a, &b, &["10.77.0.0/16"], true);
    add_peer(&a, &c, &["10.77.5.0/24"], true);
    let to_c = send(&a, &ipv4([10, 77, 0, 1], [10, 77, 5, 9], b""));
    assert_eq!(to_c.network[0].0, c.addr);
    let to_b = send(&a, &ipv4([10, 77, 0, 1], [10, 77, 6, 9], b""));
    assert_eq!(to_b.network[0].0, b.addr);
    assert!(send(&a, &ipv4([10, 77, 0, 1], [192, 0, 2, 1], b""))
        .network
        .is_empty());
    assert!(send(&a, &[0x60]).network.is_empty());
    assert_eq!(a.device.counters.snapshot().no_route_packets, 2);
}

#[test]
fn allowed_ip_moves_between_peers() {
    let a = node(3001);
    let b = node(3002);
    let c = node(3003);
    add_peer(&a, &b, &["10.77.0.0/24"], true);
    add_peer(&a, &c, &["10.77.0.0/24"], true);
    let snap = a.device.snapshot();
    assert!(snap.peers[0].allowed_ips.is_empty());
    assert_eq!(snap.peers[1].allowed_ips.len(), 1);
}

#[test]
fn set_transactions_follow_uapi_semantics() {
    let a = node(4001);
    let b = node(4002);
    let c = node(4003);
    add_peer(&a, &b, &["10.1.0.0/16"], true);
    let parse = |text: String| match Request::parse(&text).unwrap() {
        Request::Set(req) => req,
        other => panic!("{other:?}"),
    };
    // update_only on an unknown peer creates nothing.
    a.device.apply(&parse(format!(
        "set=1\npublic_key={}\nupdate_only=true\nallowed_ip=10.2.0.0/16",
        c.key.public_key().to_hex()
    )));
    assert_eq!(a.device.snapshot().peers.len(), 1);
    // replace_allowed_ips swaps the list; keepalive and psk are recorded.
    let psk = SecretKey::generate_preshared();
    a.device.apply(&parse(format!(
        "set=1\npublic_key={}\nreplace_allowed_ips=true\nallowed_ip=10.3.0.0/16\n\
         persistent_keepalive_interval=25\npreshared_key={}",
        b.key.public_key().to_hex(),
        psk.to_hex()
    )));
    let peer = &a.device.snapshot().peers[0];
    assert_eq!(peer.allowed_ips, vec![parse_cidr("10.3.0.0/16").unwrap()]);
    assert_eq!(peer.persistent_keepalive, 25);
    assert_eq!(peer.preshared_key.as_ref(), Some(&psk));
    // remove=true deletes it and its routes.
    a.device.apply(&parse(format!(
        "set=1\npublic_key={}\nremove=true",
        b.key.public_key().to_hex()
    )));
    assert!(a.device.snapshot().peers.is_empty());
    assert!(send(&a, &ipv4([10, 0, 0, 1], [10, 3, 0, 1], b""))
        .network
        .is_empty());
    // replace_peers clears everything; a zero private key removes the key.
    add_peer(&a, &b, &["10.1.0.0/16"], true);
    a.device.apply(&parse(format!(
        "set=1\nprivate_key={}\nreplace_peers=true",
        "0".repeat(64)
    )));
    let snap = a.device.snapshot();
    assert!(snap.peers.is_empty() && snap.private_key.is_none());
}

#[test]
fn persistent_keepalive_fires_from_tick() {
    let (a, b) = pair();
    let mut upd = PeerUpdate::new(b.key.public_key());
    upd.persistent_keepalive = Some(1);
    a.device.apply(&SetRequest {
        peers: vec![upd],
        ..Default::default()
    });
    let mut out = Collected::default();
    let mut scratch = vec![0u8; SCRATCH_LEN];
    a.device.tick(Instant::now(), &mut scratch, &mut out);
    // No session yet: the keepalive starts a handshake towards B.
    assert_eq!(out.network.len(), 1);
    assert_eq!(out.network[0].0, b.addr);
    assert_eq!(out.network[0].1[0], 1, "handshake initiation");
}

#[test]
fn handshake_flood_is_answered_with_cookies() {
    let b = node(5002);
    let mut scratch = vec![0u8; SCRATCH_LEN];
    let mut out = Collected::default();
    let flood = super::HANDSHAKE_RATE_LIMIT as usize + 60;
    for i in 0..flood {
        // Fresh initiators that know B; B does not know them, but the MAC
        // and load checks come before any peer lookup.
        let a = node(6000 + i as u16);
        add_peer(&a, &b, &["10.77.0.2/32"], true);
        let init = send(&a, &ipv4([10, 77, 0, 1], [10, 77, 0, 2], b"x"));
        let (_, packet) = &init.network[0];
        b.device
            .handle_datagram(a.addr, packet, &mut scratch, &mut out);
    }
    let counters = b.device.counters.snapshot();
    assert_eq!(counters.unknown_peer_packets, super::HANDSHAKE_RATE_LIMIT);
    assert_eq!(counters.cookie_replies_sent, 60);
    assert_eq!(out.network.len(), 60);
    assert!(
        out.network.iter().all(|(_, p)| p.len() == 64 && p[0] == 3),
        "cookie replies"
    );
}

/// Delivers `out` to `to` as if it arrived at `to`'s local address `local`.
fn deliver_at(out: Collected, from: SocketAddr, local: IpAddr, to: &Node) -> Collected {
    let mut next = Collected::default();
    let mut scratch = vec![0u8; SCRATCH_LEN];
    for (_, packet) in out.network {
        to.device
            .handle_datagram_at(from, Some(local), &packet, &mut scratch, &mut next);
    }
    next
}

#[test]
fn replies_leave_from_the_address_the_peer_wrote_to() {
    let (a, b) = pair();
    // B is multi-homed; A writes to B's second address.
    let second: IpAddr = "198.18.0.22".parse().unwrap();
    let ping = ipv4([10, 77, 0, 1], [10, 77, 0, 2], b"hello");
    let resp = deliver_at(send(&a, &ping), a.addr, second, &b);
    assert_eq!(resp.sources, vec![Some(second)], "handshake response");
    let data = deliver(resp, &b, &a);
    let _ = deliver_at(data, a.addr, second, &b);
    // Data and timer traffic keep the source address.
    let pong = ipv4([10, 77, 0, 2], [10, 77, 0, 1], b"world");
    let out = send(&b, &pong);
    assert_eq!(out.sources, vec![Some(second)]);
    let mut upd = PeerUpdate::new(a.key.public_key());
    upd.persistent_keepalive = Some(1);
    b.device.apply(&SetRequest {
        peers: vec![upd],
        ..Default::default()
    });
    let mut ticked = Collected::default();
    let mut scratch = vec![0u8; SCRATCH_LEN];
    let later = Instant::now() + std::time::Duration::from_secs(2);
    b.device.tick(later, &mut scratch, &mut ticked);
    assert!(!ticked.sources.is_empty());
    assert!(ticked.sources.iter().all(|s| *s == Some(second)));

    // A roams to a new address and reaches B's first address: B follows.
    let roamed: SocketAddr = "198.18.0.9:1001".parse().unwrap();
    let first: IpAddr = "198.18.0.2".parse().unwrap();
    let moved = deliver_at(send(&a, &ping), roamed, first, &b);
    assert_eq!(moved.tunnel.len(), 1);
    let out = send(&b, &pong);
    assert_eq!(out.network[0].0, roamed);
    assert_eq!(out.sources, vec![Some(first)]);

    // A source that failed to send is forgotten, for that endpoint only.
    b.device.clear_local_ip(a.addr, first);
    assert_eq!(send(&b, &pong).sources, vec![Some(first)]);
    b.device.clear_local_ip(roamed, first);
    assert_eq!(send(&b, &pong).sources, vec![None]);
}

#[test]
fn configured_endpoint_clears_the_sticky_source() {
    let (a, b) = pair();
    let second: IpAddr = "198.18.0.22".parse().unwrap();
    let ping = ipv4([10, 77, 0, 1], [10, 77, 0, 2], b"hello");
    let resp = deliver_at(send(&a, &ping), a.addr, second, &b);
    assert_eq!(resp.sources, vec![Some(second)]);
    // `wg set ... endpoint`: the kernel picks the source again.
    add_peer(&b, &a, &[], true);
    let pong = ipv4([10, 77, 0, 2], [10, 77, 0, 1], b"world");
    let _ = deliver(deliver(resp, &b, &a), &a, &b);
    assert_eq!(send(&b, &pong).sources, vec![None]);
    // A datagram with no reported local address also clears it.
    let _ = deliver_at(send(&a, &ping), a.addr, second, &b);
    assert_eq!(send(&b, &pong).sources, vec![Some(second)]);
    let _ = deliver(send(&a, &ping), &a, &b);
    assert_eq!(send(&b, &pong).sources, vec![None]);
}

/// The counter of a WireGuard data message (type 4, bytes 8..16).
fn data_counter(message: &[u8]) -> u64 {
    assert_eq!(message[0], 4, "a data message");
    let mut counter = [0u8; 8];
    counter.copy_from_slice(&message[8..16]);
    u64::from_le_bytes(counter)
}

/// Workers encrypt for the same peer at once (two TUN queues carrying two
/// flows to one peer): every packet must get its own nonce, each worker's
/// packets must leave in that worker's order (so one flow is never
/// reordered by the tunnel), and the receiver must take every one exactly
/// once, byte for byte, with no replay-window drop.
#[test]
fn concurrent_batches_for_one_peer_arrive_once_and_in_flow_order() {
    const WORKERS: usize = 4;
    const BATCHES: usize = 32;
    const BATCH: usize = 16;
    let (a, b) = pair();
    let first = ipv4([10, 77, 0, 1], [10, 77, 0, 2], b"x");
    let data = deliver(deliver(send(&a, &first), &a, &b), &b, &a);
    assert_eq!(deliver(data, &a, &b).tunnel.len(), 1);
    let tx_before = a.device.snapshot().peers[0].tx_bytes;
    let rx_before = b.device.snapshot().peers[0].rx_bytes;

    // Packet `seq` of worker `w`: its id, then a length that varies.
    let packet = |w: usize, seq: usize| {
        let mut payload = vec![w as u8, (seq >> 8) as u8, seq as u8];
        payload.extend((0..(seq * 7) % 1200).map(|i| (i ^ w) as u8));
        ipv4([10, 77, 0, 1], [10, 77, 0, 2], &payload)
    };
    let start = std::sync::Barrier::new(WORKERS);
    let sent: Vec<Collected> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..WORKERS)
            .map(|w| {
                let (device, start) = (&a.device, &start);
                scope.spawn(move || {
                    let mut out = Collected::default();
                    let mut scratch = vec![0u8; SCRATCH_LEN];
                    start.wait();
                    for batch in 0..BATCHES {
                        let packets: Vec<Vec<u8>> =
                            (0..BATCH).map(|i| packet(w, batch * BATCH + i)).collect();
                        device.handle_tun_packets(
                            packets.iter().map(Vec::as_slice),
                            &mut scratch,
                            &mut out,
                        );
                    }
                    out
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });

    // Each worker's messages carry increasing counters (its order on the
    // wire), and no counter is used twice.
    let mut wire: Vec<(u64, Vec<u8>)> = Vec::new();
    for out in &sent {
        assert_eq!(out.network.len(), BATCHES * BATCH);
        let counters: Vec<u64> = out.network.iter().map(|(_, m)| data_counter(m)).collect();
        assert!(counters.windows(2).all(|w| w[0] < w[1]), "worker order");
        wire.extend(
            out.network
                .iter()
                .map(|(_, m)| (data_counter(m), m.clone())),
        );
    }
    wire.sort_by_key(|(counter, _)| *counter);
    let total = WORKERS * BATCHES * BATCH;
    assert!(wire.windows(2).all(|w| w[0].0 != w[1].0), "a nonce reused");
    let wire_bytes: usize = wire.iter().map(|(_, m)| m.len()).sum();
    assert_eq!(
        a.device.snapshot().peers[0].tx_bytes - tx_before,
        wire_bytes as u64,
        "every message counted as sent once"
    );

    // The network delivers in send order, in receive batches of 16.
    let mut at_b = Collected::default();
    let mut scratch = vec![0u8; SCRATCH_LEN];
    for chunk in wire.chunks(16) {
        b.device.handle_datagrams_at(
            a.addr,
            None,
            chunk.iter().map(|(_, m)| m.as_slice()),
            &mut scratch,
            &mut at_b,
        );
    }
    assert_eq!(at_b.tunnel.len(), total, "every packet delivered");
    let counters = b.device.counters.snapshot();
    assert_eq!(counters.malformed_packets, 0);
    assert_eq!(counters.unknown_peer_packets, 0, "no replay drops");
    let mut next = [0usize; WORKERS];
    for got in &at_b.tunnel {
        let w = got[20] as usize;
        assert_eq!(got, &packet(w, next[w]), "worker {w} packet {}", next[w]);
        next[w] += 1;
    }
    assert_eq!(next, [BATCHES * BATCH; WORKERS], "each exactly once");
    assert_eq!(
        b.device.snapshot().peers[0].rx_bytes - rx_before,
        wire_bytes as u64
    );
}

/// A batch that alternates between peers takes each peer's lock per run
/// and still routes every packet to its own peer, in order.
#[test]
fn batch_with_several_peers_routes_each_packet() {
    let a = node(7001);
    let b = node(7002);
    let c = node(7003);
    add_peer(&a, &b, &["10.77.0.2/32"], true);
    add_peer(&a, &c, &["10.77.0.3/32"], true);
    add_peer(&b, &a, &["10.77.0.1/32"], false);
    // Start a session with b only; c gets handshake initiations.
    let first = ipv4([10, 77, 0, 1], [10, 77, 0, 2], b"x");
    let data = deliver(deliver(send(&a, &first), &a, &b), &b, &a);
    assert_eq!(deliver(data, &a, &b).tunnel.len(), 1);
    let to = |last: u8, n: u8| ipv4([10, 77, 0, 1], [10, 77, 0, last], &[n]);
    let batch = [to(2, 0), to(2, 1), to(3, 2), to(2, 3), to(9, 4), to(2, 5)];
    let mut out = Collected::default();
    let mut scratch = vec![0u8; SCRATCH_LEN];
    a.device
        .handle_tun_packets(batch.iter().map(Vec::as_slice), &mut scratch, &mut out);
    let dsts: Vec<SocketAddr> = out.network.iter().map(|(d, _)| *d).collect();
    // c has no session yet: its packet is queued behind one handshake
    // initiation; 10.77.0.9 has no route.
    assert_eq!(dsts, vec![b.addr, b.addr, c.addr, b.addr, b.addr]);
    assert_eq!(a.device.counters.snapshot().no_route_packets, 1);
    let at_b = deliver(
        Collected {
            network: out
                .network
                .into_iter()
                .filter(|(d, _)| *d == b.addr)
                .collect(),
            ..Default::default()
        },
        &a,
        &b,
    );
    assert_eq!(at_b.tunnel, vec![to(2, 0), to(2, 1), to(2, 3), to(2, 5)]);
}
