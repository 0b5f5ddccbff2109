//! Packet processing without IO: a UDP datagram, a TUN packet or a timer tick
//! goes in; packets for the network and the TUN device come out through
//! [`Outputs`]. Malformed or unauthorised input is dropped and counted, never
//! a panic.

use super::{AtomicCounters, Device, Peer};
use crate::key::PublicKey;
use boringtun::noise::errors::WireGuardError;
use boringtun::noise::handshake::parse_handshake_anon;
use boringtun::noise::{Packet, Tunn, TunnResult};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

/// Smallest scratch buffer the data path functions accept: the largest UDP
/// payload plus headroom for WireGuard's overhead.
pub const SCRATCH_LEN: usize = 65_536 + 64;

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
        let st = self.state.read();
        let (Some(limiter), Some(private), Some(public)) =
            (&st.rate_limiter, &st.private_key, &st.public_key)
        else {
            AtomicCounters::bump(&self.counters.unknown_peer_packets);
            return;
        };
        // MAC and load check before any expensive work.
        let packet = match limiter.verify_packet(Some(src.ip()), datagram, scratch) {
            Ok(packet) => packet,
            Err(TunnResult::WriteToNetwork(cookie)) => {
                AtomicCounters::bump(&self.counters.cookie_replies_sent);
                out.to_network_from(src, local, cookie);
                return;
            }
            Err(TunnResult::Err(err)) => return count_error(&self.counters, &err),
            Err(_) => return,
        };
        let peer = match &packet {
            Packet::HandshakeInit(init) => {
                match parse_handshake_anon(&private.to_x25519(), &public.to_x25519(), init) {
                    Ok(half) => st.peers.get(&PublicKey(half.peer_static_public)),
                    Err(err) => return count_error(&self.counters, &err),
                }
            }
            Packet::HandshakeResponse(p) => st.by_index.get(&(p.receiver_idx >> 8)),
            Packet::PacketCookieReply(p) => st.by_index.get(&(p.receiver_idx >> 8)),
            Packet::PacketData(p) => st.by_index.get(&(p.receiver_idx >> 8)),
        };
        let Some(peer) = peer else {
            AtomicCounters::bump(&self.counters.unknown_peer_packets);
            return;
        };
        let mut guard = peer.tunn.lock();
        let Some(tunn) = guard.as_mut() else {
            AtomicCounters::bump(&self.counters.unknown_peer_packets);
            return;
        };
        match tunn.decapsulate(Some(src.ip()), datagram, scratch) {
            TunnResult::Done => peer.note_received(datagram.len(), src, local),
            TunnResult::Err(err) => count_error(&self.counters, &err),
            TunnResult::WriteToNetwork(reply) => {
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
                peer.note_endpoint(src, local);
                if self.deliver(&st.routes, peer, IpAddr::V4(source), packet, out) {
                    peer.note_received(datagram.len(), src, local);
                }
            }
            TunnResult::WriteToTunnelV6(packet, source) => {
                peer.note_endpoint(src, local);
                if self.deliver(&st.routes, peer, IpAddr::V6(source), packet, out) {
                    peer.note_received(datagram.len(), src, local);
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
        let Some(dst) = Tunn::dst_address(packet) else {
            AtomicCounters::bump(&self.counters.no_route_packets);
            return;
        };
        let st = self.state.read();
        let Some((_, peer)) = st.routes.longest_match(dst) else {
            AtomicCounters::bump(&self.counters.no_route_packets);
            return;
        };
        let Some((endpoint, local)) = peer.route() else {
            AtomicCounters::bump(&self.counters.no_endpoint_packets);
            return;
        };
        let mut guard = peer.tunn.lock();
        let Some(tunn) = guard.as_mut() else {
            AtomicCounters::bump(&self.counters.no_route_packets);
            return;
        };
        match tunn.encapsulate(packet, scratch) {
            TunnResult::WriteToNetwork(msg) => {
                out.to_network_from(endpoint, local, msg);
                peer.note_sent(msg.len());
            }
            TunnResult::Err(err) => {
                tracing::debug!(peer = %peer.public_key, ?err, "encapsulate failed")
            }
            _ => {}
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
