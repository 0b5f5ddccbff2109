//! Output batches of the driver: encrypted packets waiting for a UDP socket
//! (sent as GSO runs) and decrypted packets waiting for a TUN queue
//! (coalesced by tun-rs's GRO table), plus the [`Outputs`] the sans-IO
//! device writes into.

use super::datapath::Outputs;
use super::sockets::{send, Sockets};
use super::Device;
use quinn_udp::Transmit;
use std::io;
use std::net::{IpAddr, SocketAddr};
use tun_rs::{AsyncDevice, GROTable, VIRTIO_NET_HDR_LEN};

/// Largest UDP payload one GSO send may carry.
const MAX_GSO_BYTES: usize = 65_000;

/// One encrypted packet in a [`NetBatch`]: where it goes, the source
/// address to send it from (if sticky), and its place in the batch's buffer.
#[derive(Clone, Copy)]
struct NetItem {
    dst: SocketAddr,
    src: Option<IpAddr>,
    start: usize,
    len: usize,
}

/// Encrypted packets waiting to go out, kept contiguous so runs to one
/// destination become a single GSO send.
#[derive(Default)]
pub(super) struct NetBatch {
    data: Vec<u8>,
    items: Vec<NetItem>,
}

impl NetBatch {
    pub(super) fn push(&mut self, dst: SocketAddr, src: Option<IpAddr>, packet: &[u8]) {
        self.items.push(NetItem {
            dst,
            src,
            start: self.data.len(),
            len: packet.len(),
        });
        self.data.extend_from_slice(packet);
    }

    /// Sends everything; a sticky source address the kernel refused (it
    /// left the host, or has no route) is dropped from the peers that used
    /// it and the packets go out from the kernel's choice.
    pub(super) async fn flush(&mut self, sockets: &Sockets, worker: usize, device: &Device) {
        let mut i = 0;
        while i < self.items.len() {
            let NetItem {
                dst,
                src,
                start,
                len,
            } = self.items[i];
            let Some(ep) = sockets.for_destination(&dst, worker) else {
                i += 1;
                continue;
            };
            // Extend the run: same destination, same size (the last may be
            // shorter), within the GSO segment and byte limits.
            let max_segments = ep.state.max_gso_segments();
            let mut end = start + len;
            let mut j = i + 1;
            while j < self.items.len()
                && j - i < max_segments
                && self.items[j].dst == dst
                && self.items[j].src == src
                && self.items[j - 1].len == len
                && self.items[j].len <= len
                && end + self.items[j].len <= start + MAX_GSO_BYTES
            {
                end += self.items[j].len;
                j += 1;
            }
            let mut transmit = Transmit {
                destination: dst,
                ecn: None,
                contents: &self.data[start..end],
                segment_size: (j - i > 1).then_some(len),
                src_ip: src,
            };
            if let Err(err) = send(ep, &transmit).await {
                match src {
                    // The sticky source is unusable: the address left this
                    // host (EINVAL) or no longer has a route to the peer
                    // (ENETUNREACH). Sticky, but not too sticky: forget it
                    // and let the kernel choose, as wireguard-go does.
                    Some(local) if source_unusable(&err) => {
                        tracing::debug!(%err, %dst, %local, "cannot send from the sticky source; clearing it");
                        device.clear_local_ip(dst, local);
                        transmit.src_ip = None;
                        if let Err(err) = send(ep, &transmit).await {
                            tracing::debug!(%err, %dst, "UDP send failed");
                        }
                    }
                    _ => tracing::debug!(%err, %dst, "UDP send failed"),
                }
            }
            i = j;
        }
        self.items.clear();
        self.data.clear();
    }
}

/// Errors that mean the source address itself is the problem (gone from
/// the host, or unroutable from it), not a full buffer or a down link.
fn source_unusable(err: &io::Error) -> bool {
    matches!(
        err.raw_os_error(),
        Some(libc::EINVAL | libc::ENETUNREACH | libc::EHOSTUNREACH | libc::EADDRNOTAVAIL)
    )
}

/// Decrypted packets waiting for the TUN device, each with virtio-header
/// headroom so tun-rs can coalesce them (GRO).
pub(super) struct TunBatch {
    bufs: Vec<Vec<u8>>,
    count: usize,
    gro: GROTable,
}

impl TunBatch {
    pub(super) fn new() -> Self {
        Self {
            bufs: Vec::new(),
            count: 0,
            gro: GROTable::default(),
        }
    }

    pub(super) fn push(&mut self, packet: &[u8]) {
        if self.count == self.bufs.len() {
            self.bufs
                .push(Vec::with_capacity(VIRTIO_NET_HDR_LEN + 2048));
        }
        let buf = &mut self.bufs[self.count];
        buf.clear();
        buf.resize(VIRTIO_NET_HDR_LEN, 0);
        buf.extend_from_slice(packet);
        self.count += 1;
    }

    pub(super) async fn flush(&mut self, tun: &AsyncDevice) {
        if self.count == 0 {
            return;
        }
        let bufs = &mut self.bufs[..self.count];
        if let Err(err) = tun
            .send_multiple(&mut self.gro, bufs, VIRTIO_NET_HDR_LEN)
            .await
        {
            tracing::debug!(%err, "TUN write failed");
        }
        self.count = 0;
    }
}

#[derive(Default)]
pub(super) struct NetOnly(pub(super) NetBatch);

impl Outputs for NetOnly {
    fn to_network(&mut self, dst: SocketAddr, packet: &[u8]) {
        self.0.push(dst, None, packet);
    }
    fn to_network_from(&mut self, dst: SocketAddr, src: Option<IpAddr>, packet: &[u8]) {
        self.0.push(dst, src, packet);
    }
    fn to_tunnel(&mut self, _packet: &[u8]) {}
}

pub(super) struct Both {
    pub(super) net: NetBatch,
    pub(super) tun: TunBatch,
}

impl Outputs for Both {
    fn to_network(&mut self, dst: SocketAddr, packet: &[u8]) {
        self.net.push(dst, None, packet);
    }
    fn to_network_from(&mut self, dst: SocketAddr, src: Option<IpAddr>, packet: &[u8]) {
        self.net.push(dst, src, packet);
    }
    fn to_tunnel(&mut self, packet: &[u8]) {
        self.tun.push(packet);
    }
}
