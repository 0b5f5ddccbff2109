//! Packet processing without IO: a UDP datagram, a TUN packet or a timer tick
//! goes in; packets for the network and the TUN device come out through
//! [`Outputs`]. Malformed or unauthorised input is dropped and counted, never
//! a panic.

use super::{AtomicCounters, Device, Peer};
use crate::key::PublicKey;
use boringtun::noise::errors::WireGuardError;
use boringtun::noise::handshake::parse_handshake_anon;
use boringtun::noise::{Packet, Tunn, TunnResult};
use parking_lot::MutexGuard;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

/// Smallest scratch buffer the data path functions accept: the largest UDP
/// payload plus headroom for WireGuard's overhead.
pub const SCRATCH_LEN: usize = 65_536 + 64;

/// boringtun cuts a decrypted packet to the total length its IP header
/// claims; one that claims less than the header itself is dropped as
/// malformed (the kernel's "dishonest packet size"), not written to the TUN
/// device nor billed.
const IPV4_HEADER_LEN: usize = 20;
const IPV6_HEADER_LEN: usize = 40;

/// Where processed packets go. The driver batches them into syscalls; tests
/// collect them.
pub trait Outputs {
    /// An encrypted WireGuard message to send to `dst`.
    fn to_network(&mut self, dst: SocketAddr, packet: &[u8]);
    /// As [`Outputs::to_network`], sent from the local address `src` when
    /// one is given (the sticky source address; see [`Peer::local_ip`]).
    /// Outputs that cannot choose a source ignore it.
    fn to_network_from(&mut self, dst: SocketAddr, src: Option<IpAddr>, packet: &[u8]) {
        let _ = src;
        self.to_network(dst, packet);
    }
    /// A decrypted IP packet to write to the TUN device.
    fn to_tunnel(&mut self, packet: &[u8]);
}

/// A run of consecutive TUN packets to one peer: its tunnel lock, its
/// endpoint as read at the start, and the bytes sent, counted when the run
/// ends.
struct TxRun<'a> {
    peer: &'a Arc<Peer>,
    endpoint: SocketAddr,
    local: Option<IpAddr>,
    tunn: MutexGuard<'a, Option<Tunn>>,
    sent: usize,
}

impl<'a> TxRun<'a> {
    fn start(peer: &'a Arc<Peer>, (endpoint, local): (SocketAddr, Option<IpAddr>)) -> Self {
        Self {
            peer,
            endpoint,
            local,
            tunn: peer.tunn.lock(),
            sent: 0,
        }
    }
}

impl Drop for TxRun<'_> {
    fn drop(&mut self) {
        if self.sent > 0 {
            self.peer.note_sent(self.sent);
        }
    }
}

/// A run of consecutive datagrams from one peer (all from `src` to our
/// `local`): its tunnel lock, the bytes accepted and whether any was
/// authenticated, applied to the peer (counters, roaming) when the run
/// ends, still under the tunnel lock as the per-packet path did.
struct RxRun<'a> {
    peer: &'a Arc<Peer>,
    src: SocketAddr,
    local: Option<IpAddr>,
    tunn: MutexGuard<'a, Option<Tunn>>,
    received: usize,
    authenticated: bool,
}

impl<'a> RxRun<'a> {
    fn start(peer: &'a Arc<Peer>, src: SocketAddr, local: Option<IpAddr>) -> Self {
        Self {
            peer,
            src,
            local,
            tunn: peer.tunn.lock(),
            received: 0,
            authenticated: false,
        }
    }

    /// An authenticated datagram of `bytes` that counts as received.
    fn accepted(&mut self, bytes: usize) {
        self.received += bytes;
        self.authenticated = true;
    }
}

impl Drop for RxRun<'_> {
    fn drop(&mut self) {
        if self.received > 0 {
            self.peer
                .rx_bytes
                .fetch_add(self.received as u64, Ordering::Relaxed);
        }
        if self.authenticated {
            self.peer.note_endpoint(self.src, self.local);
        }
    }
}

fn count_error(counters: &AtomicCounters, err: &WireGuardError) {
    use WireGuardError::*;
    let counter = match err {
        WrongIndex | NoCurrentSession | UnexpectedPacket | WrongKey => {
            &counters.unknown_peer_packets
        }
        _ => &counters.malformed_packets,
    };
    AtomicCounters::bump(counter);
}

impl Device {
    /// Processes one datagram received from `src` when the local address
    /// it was sent to is unknown.
    pub fn handle_datagram(
        &self,
        src: SocketAddr,
        datagram: &[u8],
        scratch: &mut [u8],
        out: &mut impl Outputs,
    ) {
        self.handle_datagram_at(src, None, datagram, scratch, out);
    }

    /// Processes one datagram received from `src` and sent to our address
    /// `local` (IP_PKTINFO / IPV6_PKTINFO): replies to this peer will leave
    /// from `local`.
    pub fn handle_datagram_at(
        &self,
        src: SocketAddr,
        local: Option<IpAddr>,
        datagram: &[u8],
        scratch: &mut [u8],
        out: &mut impl Outputs,
    ) {
        self.handle_datagrams_at(src, local, [datagram], scratch, out);
    }

    /// Processes a batch of datagrams that all came from `src` to our
    /// address `local` (one GRO train), in order. The device lock is read
    /// once for the batch and a peer's tunnel lock once per run of
    /// consecutive datagrams for that peer, so workers decrypting for other
    /// peers never wait on a lock per packet.
    pub fn handle_datagrams_at<'d>(
        &self,
        src: SocketAddr,
        local: Option<IpAddr>,
        datagrams: impl IntoIterator<Item = &'d [u8]>,
        scratch: &mut [u8],
        out: &mut impl Outputs,
    ) {
        let st = self.state.read();
        let (Some(limiter), Some(private), Some(public)) =
            (&st.rate_limiter, &st.private_key, &st.public_key)
        else {
            for _ in datagrams {
                AtomicCounters::bump(&self.counters.unknown_peer_packets);
            }
            return;
        };
        let mut run: Option<RxRun<'_>> = None;
        for datagram in datagrams {
            // MAC and load check before any expensive work.
            let packet = match limiter.verify_packet(Some(src.ip()), datagram, scratch) {
                Ok(packet) => packet,
                Err(TunnResult::WriteToNetwork(cookie)) => {
                    AtomicCounters::bump(&self.counters.cookie_replies_sent);
                    out.to_network_from(src, local, cookie);
                    continue;
                }
                Err(TunnResult::Err(err)) => {
                    count_error(&self.counters, &err);
                    continue;
                }
                Err(_) => continue,
            };
            let peer = match &packet {
                Packet::HandshakeInit(init) => {
                    match parse_handshake_anon(&private.to_x25519(), &public.to_x25519(), init) {
                        Ok(half) => st.peers.get(&PublicKey(half.peer_static_public)),
                        Err(err) => {
                            count_error(&self.counters, &err);
                            continue;
                        }
                    }
                }
                Packet::HandshakeResponse(p) => st.by_index.get(&(p.receiver_idx >> 8)),
                Packet::PacketCookieReply(p) => st.by_index.get(&(p.receiver_idx >> 8)),
                Packet::PacketData(p) => st.by_index.get(&(p.receiver_idx >> 8)),
            };
            let Some(peer) = peer else {
                AtomicCounters::bump(&self.counters.unknown_peer_packets);
                continue;
            };
            let run = match &mut run {
                Some(current) if Arc::ptr_eq(current.peer, peer) => current,
                slot => {
                    // Finish the previous run (its counters, its lock)
                    // before taking this peer's lock: one tunnel lock at a
                    // time.
                    *slot = None;
                    slot.insert(RxRun::start(peer, src, local))
                }
            };
            self.decapsulate_one(&st.routes, run, datagram, scratch, out);
        }
    }

    /// One datagram for the peer of `run`, under its tunnel lock.
    fn decapsulate_one(
        &self,
        routes: &ip_network_table::IpNetworkTable<Arc<Peer>>,
        run: &mut RxRun<'_>,
        datagram: &[u8],
        scratch: &mut [u8],
        out: &mut impl Outputs,
    ) {
        let (peer, src, local) = (run.peer, run.src, run.local);
        let Some(tunn) = run.tunn.as_mut() else {
            AtomicCounters::bump(&self.counters.unknown_peer_packets);
            return;
        };
        match tunn.decapsulate(Some(src.ip()), datagram, scratch) {
            TunnResult::Done => run.accepted(datagram.len()),
            TunnResult::Err(err) => count_error(&self.counters, &err),
            TunnResult::WriteToNetwork(reply) => {
                // A handshake message: rare, so counted at once.
                peer.note_received(datagram.len(), src, local);
                out.to_network_from(src, local, reply);
                peer.note_sent(reply.len());
                // Packets queued while the handshake was in flight.
                while let TunnResult::WriteToNetwork(queued) = tunn.decapsulate(None, &[], scratch)
                {
                    out.to_network_from(src, local, queued);
                    peer.note_sent(queued.len());
                }
            }
            // Authenticated, so the peer may roam; but its bytes count (and
            // are billed by the market) only if cryptokey routing lets the
            // packet in: a dropped one is counted as disallowed instead.
            TunnResult::WriteToTunnelV4(packet, source) => {
                run.authenticated = true;
                if packet.len() < IPV4_HEADER_LEN {
                    return AtomicCounters::bump(&self.counters.malformed_packets);
                }
                if self.deliver(routes, peer, IpAddr::V4(source), packet, out) {
                    run.accepted(datagram.len());
                }
            }
            TunnResult::WriteToTunnelV6(packet, source) => {
                run.authenticated = true;
                if packet.len() < IPV6_HEADER_LEN {
                    return AtomicCounters::bump(&self.counters.malformed_packets);
                }
                if self.deliver(routes, peer, IpAddr::V6(source), packet, out) {
                    run.accepted(datagram.len());
                }
            }
        }
    }

    /// Cryptokey routing on receive: a peer may only send from addresses in
    /// its own AllowedIPs. Returns whether the packet was delivered.
    fn deliver(
        &self,
        routes: &ip_network_table::IpNetworkTable<Arc<Peer>>,
        peer: &Arc<Peer>,
        source: IpAddr,
        packet: &[u8],
        out: &mut impl Outputs,
    ) -> bool {
        match routes.longest_match(source) {
            Some((_, owner)) if Arc::ptr_eq(owner, peer) => {
                out.to_tunnel(packet);
                true
            }
            _ => {
                AtomicCounters::bump(&self.counters.disallowed_source_packets);
                false
            }
        }
    }

    /// Processes one IP packet read from the TUN device.
    pub fn handle_tun_packet(&self, packet: &[u8], scratch: &mut [u8], out: &mut impl Outputs) {
        self.handle_tun_packets([packet], scratch, out);
    }

    /// Processes a batch of IP packets read from the TUN device, in order.
    /// The device lock is read once for the batch; a peer's endpoint is
    /// read and its tunnel lock taken once per run of consecutive packets
    /// to that peer (a GSO super-packet split by the driver is one run).
    pub fn handle_tun_packets<'p>(
        &self,
        packets: impl IntoIterator<Item = &'p [u8]>,
        scratch: &mut [u8],
        out: &mut impl Outputs,
    ) {
        let st = self.state.read();
        let mut run: Option<TxRun<'_>> = None;
        for packet in packets {
            let Some(dst) = Tunn::dst_address(packet) else {
                AtomicCounters::bump(&self.counters.no_route_packets);
                continue;
            };
            let Some((_, peer)) = st.routes.longest_match(dst) else {
                AtomicCounters::bump(&self.counters.no_route_packets);
                continue;
            };
            let run = match &mut run {
                Some(current) if Arc::ptr_eq(current.peer, peer) => current,
                slot => {
                    // One tunnel lock at a time, and (lock order) the
                    // endpoint is read before the tunnel lock is taken.
                    *slot = None;
                    let Some(route) = peer.route() else {
                        AtomicCounters::bump(&self.counters.no_endpoint_packets);
                        continue;
                    };
                    slot.insert(TxRun::start(peer, route))
                }
            };
            let Some(tunn) = run.tunn.as_mut() else {
                AtomicCounters::bump(&self.counters.no_route_packets);
                continue;
            };
            match tunn.encapsulate(packet, scratch) {
                TunnResult::WriteToNetwork(msg) => {
                    out.to_network_from(run.endpoint, run.local, msg);
                    run.sent += msg.len();
                }
                TunnResult::Err(err) => {
                    tracing::debug!(peer = %run.peer.public_key, ?err, "encapsulate failed")
                }
                _ => {}
            }
        }
    }

    /// Forgets the sticky source `local` of every peer at `endpoint`: the
    /// driver could not send from it (the address left this host), so the
    /// kernel picks the source until the peer reaches us again.
    pub fn clear_local_ip(&self, endpoint: SocketAddr, local: IpAddr) {
        let st = self.state.read();
        for peer in st.peers.values() {
            peer.clear_local_ip(endpoint, local);
        }
    }

    /// Runs every peer's timers (handshake retries, keepalives, expiry) and
    /// persistent keepalives. Call a few times a second.
    pub fn tick(&self, now: Instant, scratch: &mut [u8], out: &mut impl Outputs) {
        let st = self.state.read();
        if let Some(limiter) = &st.rate_limiter {
            limiter.reset_count();
        }
        for peer in st.peers.values() {
            let route = peer.route();
            let keepalive_due = peer.keepalive_due(now);
            let mut guard = peer.tunn.lock();
            let Some(tunn) = guard.as_mut() else { continue };
            let Some((endpoint, local)) = route else {
                continue;
            };
            match tunn.update_timers(scratch) {
                TunnResult::WriteToNetwork(msg) => {
                    out.to_network_from(endpoint, local, msg);
                    peer.note_sent(msg.len());
                }
                TunnResult::Err(WireGuardError::ConnectionExpired) => {
                    tracing::debug!(peer = %peer.public_key, "session expired");
                }
                _ => {}
            }
            if keepalive_due {
                if let TunnResult::WriteToNetwork(msg) = tunn.encapsulate(&[], scratch) {
                    out.to_network_from(endpoint, local, msg);
                    peer.note_sent(msg.len());
                }
            }
        }
    }
}
