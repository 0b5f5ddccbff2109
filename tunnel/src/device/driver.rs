//! The tokio driver: moves packets between the TUN device, the UDP sockets
//! and the sans-IO [`Device`], in batches.
//!
//! - TUN → UDP: tun-rs with virtio offload hands us a TCP/UDP GSO
//!   super-packet already split into MTU-sized packets; we encrypt them all
//!   and send runs to the same peer as one UDP GSO `sendmsg` (quinn-udp).
//! - UDP → TUN: quinn-udp receives with `recvmmsg` and UDP GRO; decrypted
//!   packets are coalesced by tun-rs's GRO table into few TUN writes.
//! - A timer task runs handshake/keepalive timers four times a second.

use super::datapath::{Outputs, SCRATCH_LEN};
use super::Device;
use crate::uapi::{Counters, DeviceSnapshot, SetRequest, UapiError};
use parking_lot::{Mutex, RwLock};
use quinn_udp::{RecvMeta, Transmit, UdpSocketState};
use std::io::{self, IoSliceMut};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;
use tun_rs::{AsyncDevice, DeviceBuilder, GROTable, IDEAL_BATCH_SIZE, VIRTIO_NET_HDR_LEN};

/// Default tunnel MTU, as wg-quick uses on a 1500-byte underlay.
pub const DEFAULT_MTU: u16 = 1420;
/// Receive buffers per `recvmmsg`; each holds one GRO train of datagrams.
const UDP_BATCH: usize = 16;
/// Largest UDP payload one GSO send may carry.
const MAX_GSO_BYTES: usize = 65_000;
/// How often peer timers run.
const TICK: Duration = Duration::from_millis(250);

/// Why the daemon could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    #[error("cannot create TUN device {iface}: {source}")]
    CreateTun { iface: String, source: io::Error },
    #[error("cannot bind UDP port {port}: {source}")]
    Bind { port: u16, source: io::Error },
    #[error("TUN device {iface} failed: {source}")]
    Tun { iface: String, source: io::Error },
}

/// One bound UDP socket with its quinn-udp state (GSO/GRO capabilities).
pub struct UdpEndpoint {
    socket: UdpSocket,
    state: UdpSocketState,
}

/// The UDP sockets of the current listen port, one per address family.
pub struct Sockets {
    pub port: u16,
    v4: Option<Arc<UdpEndpoint>>,
    v6: Option<Arc<UdpEndpoint>>,
}

fn bind_one(addr: SocketAddr, fwmark: u32) -> io::Result<UdpEndpoint> {
    use socket2::{Domain, Protocol, Socket, Type};
    let sock = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        sock.set_only_v6(true)?;
    }
    if fwmark != 0 {
        sock.set_mark(fwmark)?;
    }
    sock.set_nonblocking(true)?;
    // Large buffers absorb bursts from GSO; failure only costs throughput.
    let _ = sock.set_recv_buffer_size(7 << 20);
    let _ = sock.set_send_buffer_size(7 << 20);
    sock.bind(&addr.into())?;
    let std: std::net::UdpSocket = sock.into();
    let state = UdpSocketState::new((&std).into())?;
    Ok(UdpEndpoint {
        socket: UdpSocket::from_std(std)?,
        state,
    })
}

impl Sockets {
    /// Binds `port` (0 picks one) on IPv4 and, where available, IPv6.
    pub fn bind(port: u16, fwmark: u32) -> io::Result<Self> {
        let v4 = bind_one((Ipv4Addr::UNSPECIFIED, port).into(), fwmark)?;
        let port = v4.socket.local_addr()?.port();
        let v6 = match bind_one((Ipv6Addr::UNSPECIFIED, port).into(), fwmark) {
            Ok(v6) => Some(Arc::new(v6)),
            Err(err) => {
                tracing::warn!(%err, port, "IPv6 UDP socket unavailable; IPv4 only");
                None
            }
        };
        Ok(Self {
            port,
            v4: Some(Arc::new(v4)),
            v6,
        })
    }

    fn unbound() -> Self {
        Self {
            port: 0,
            v4: None,
            v6: None,
        }
    }

    fn endpoints(&self) -> impl Iterator<Item = &Arc<UdpEndpoint>> {
        self.v4.iter().chain(self.v6.iter())
    }

    fn for_destination(&self, dst: &SocketAddr) -> Option<&Arc<UdpEndpoint>> {
        match dst {
            SocketAddr::V4(_) => self.v4.as_ref(),
            SocketAddr::V6(_) => self.v6.as_ref(),
        }
    }

    fn set_mark(&self, fwmark: u32) -> io::Result<()> {
        for ep in self.endpoints() {
            socket2::SockRef::from(&ep.socket).set_mark(fwmark)?;
        }
        Ok(())
    }
}

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
struct NetBatch {
    data: Vec<u8>,
    items: Vec<NetItem>,
}

impl NetBatch {
    fn push(&mut self, dst: SocketAddr, src: Option<IpAddr>, packet: &[u8]) {
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
    async fn flush(&mut self, sockets: &Sockets, device: &Device) {
        let mut i = 0;
        while i < self.items.len() {
            let NetItem {
                dst,
                src,
                start,
                len,
            } = self.items[i];
            let Some(ep) = sockets.for_destination(&dst) else {
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

async fn send(ep: &UdpEndpoint, transmit: &Transmit<'_>) -> io::Result<()> {
    loop {
        ep.socket.writable().await?;
        match ep.socket.try_io(Interest::WRITABLE, || {
            ep.state.try_send((&ep.socket).into(), transmit)
        }) {
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => continue,
            result => return result,
        }
    }
}

/// Decrypted packets waiting for the TUN device, each with virtio-header
/// headroom so tun-rs can coalesce them (GRO).
struct TunBatch {
    bufs: Vec<Vec<u8>>,
    count: usize,
    gro: GROTable,
}

impl TunBatch {
    fn new() -> Self {
        Self {
            bufs: Vec::new(),
            count: 0,
            gro: GROTable::default(),
        }
    }

    fn push(&mut self, packet: &[u8]) {
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

    async fn flush(&mut self, tun: &AsyncDevice) {
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
struct NetOnly(NetBatch);

impl Outputs for NetOnly {
    fn to_network(&mut self, dst: SocketAddr, packet: &[u8]) {
        self.0.push(dst, None, packet);
    }
    fn to_network_from(&mut self, dst: SocketAddr, src: Option<IpAddr>, packet: &[u8]) {
        self.0.push(dst, src, packet);
    }
    fn to_tunnel(&mut self, _packet: &[u8]) {}
}

struct Both {
    net: NetBatch,
    tun: TunBatch,
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

fn tun_is_gone(err: &io::Error) -> bool {
    matches!(
        err.raw_os_error(),
        Some(libc::EBADFD | libc::ENODEV | libc::ENXIO | libc::EBADF)
    )
}

/// A running interface: TUN device, sockets, device state and tasks.
pub struct Daemon {
    pub iface: String,
    pub device: Arc<Device>,
    tun: Arc<AsyncDevice>,
    sockets: RwLock<Arc<Sockets>>,
    recv_tasks: Mutex<Vec<JoinHandle<()>>>,
    set_lock: tokio::sync::Mutex<()>,
}

impl Daemon {
    /// Creates the TUN device `iface` and binds a random UDP port. Must run
    /// inside a tokio runtime.
    pub fn create(iface: &str) -> Result<Arc<Self>, DriverError> {
        let tun = DeviceBuilder::new()
            .name(iface)
            .mtu(DEFAULT_MTU)
            .offload(true)
            .build_async()
            .map_err(|source| DriverError::CreateTun {
                iface: iface.to_string(),
                source,
            })?;
        let daemon = Arc::new(Self {
            iface: iface.to_string(),
            device: Arc::new(Device::new()),
            tun: Arc::new(tun),
            sockets: RwLock::new(Arc::new(Sockets::unbound())),
            recv_tasks: Mutex::new(Vec::new()),
            set_lock: tokio::sync::Mutex::new(()),
        });
        let sockets =
            Sockets::bind(0, 0).map_err(|source| DriverError::Bind { port: 0, source })?;
        daemon.device.apply(&SetRequest {
            listen_port: Some(sockets.port),
            ..Default::default()
        });
        daemon.install(sockets);
        Ok(daemon)
    }

    fn install(self: &Arc<Self>, sockets: Sockets) {
        let sockets = Arc::new(sockets);
        *self.sockets.write() = sockets.clone();
        let mut tasks = self.recv_tasks.lock();
        for task in tasks.drain(..) {
            task.abort();
        }
        for ep in sockets.endpoints() {
            tasks.push(tokio::spawn(self.clone().udp_loop(ep.clone())));
        }
        tracing::info!(iface = %self.iface, port = sockets.port, "listening");
    }

    fn current_sockets(&self) -> Arc<Sockets> {
        self.sockets.read().clone()
    }

    /// Runs until the TUN device disappears or `shutdown` resolves.
    pub async fn run(
        self: Arc<Self>,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<(), DriverError> {
        let timers = tokio::spawn(self.clone().timer_loop());
        let result = tokio::select! {
            r = self.clone().tun_loop() => r,
            () = shutdown => Ok(()),
        };
        timers.abort();
        for task in self.recv_tasks.lock().drain(..) {
            task.abort();
        }
        result
    }

    async fn tun_loop(self: Arc<Self>) -> Result<(), DriverError> {
        let mut original = vec![0u8; VIRTIO_NET_HDR_LEN + 65_535];
        let mut bufs = vec![vec![0u8; 65_535]; IDEAL_BATCH_SIZE];
        let mut sizes = vec![0usize; IDEAL_BATCH_SIZE];
        let mut scratch = vec![0u8; SCRATCH_LEN];
        let mut out = NetOnly::default();
        loop {
            let n = match self
                .tun
                .recv_multiple(&mut original, &mut bufs, &mut sizes, 0)
                .await
            {
                Ok(n) => n,
                Err(err) if tun_is_gone(&err) => {
                    return Err(DriverError::Tun {
                        iface: self.iface.clone(),
                        source: err,
                    })
                }
                Err(err) => {
                    tracing::debug!(%err, "dropping unreadable TUN packet");
                    continue;
                }
            };
            for (buf, size) in bufs.iter().zip(&sizes).take(n) {
                self.device
                    .handle_tun_packet(&buf[..*size], &mut scratch, &mut out);
            }
            out.0.flush(&self.current_sockets(), &self.device).await;
        }
    }

    async fn udp_loop(self: Arc<Self>, ep: Arc<UdpEndpoint>) {
        // Each buffer holds one GRO train of datagrams.
        let mut storage = vec![vec![0u8; 65_536]; UDP_BATCH];
        let mut metas = vec![RecvMeta::default(); UDP_BATCH];
        let mut scratch = vec![0u8; SCRATCH_LEN];
        let mut out = Both {
            net: NetBatch::default(),
            tun: TunBatch::new(),
        };
        loop {
            if ep.socket.readable().await.is_err() {
                return;
            }
            let received = ep.socket.try_io(Interest::READABLE, || {
                let mut iovs: Vec<IoSliceMut> =
                    storage.iter_mut().map(|b| IoSliceMut::new(b)).collect();
                ep.state.recv((&ep.socket).into(), &mut iovs, &mut metas)
            });
            let n = match received {
                Ok(n) => n,
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => continue,
                Err(err) => {
                    tracing::debug!(%err, "UDP receive failed");
                    continue;
                }
            };
            for (meta, buf) in metas.iter().zip(&storage).take(n) {
                let stride = meta.stride.max(1);
                for datagram in buf[..meta.len].chunks(stride) {
                    self.device.handle_datagram_at(
                        meta.addr,
                        meta.dst_ip,
                        datagram,
                        &mut scratch,
                        &mut out,
                    );
                }
            }
            out.tun.flush(&self.tun).await;
            out.net.flush(&self.current_sockets(), &self.device).await;
        }
    }

    async fn timer_loop(self: Arc<Self>) {
        let mut scratch = vec![0u8; SCRATCH_LEN];
        let mut out = NetOnly::default();
        let mut interval = tokio::time::interval(TICK);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            self.device.tick(Instant::now(), &mut scratch, &mut out);
            out.0.flush(&self.current_sockets(), &self.device).await;
        }
    }

    /// Applies a UAPI `set` transaction: binds a new port or sets the mark
    /// first (the only steps that can fail), then changes the device.
    pub async fn set(self: &Arc<Self>, mut req: SetRequest) -> Result<(), UapiError> {
        let _serialized = self.set_lock.lock().await;
        let fwmark = req.fwmark.unwrap_or_else(|| self.device.fwmark());
        let io_error = |key: &str, err: io::Error| UapiError {
            line: 0,
            key: key.to_string(),
            message: err.to_string(),
            errno: err.raw_os_error().unwrap_or(libc::EIO),
        };
        match req.listen_port {
            Some(port) if port == 0 || port != self.device.listen_port() => {
                let sockets =
                    Sockets::bind(port, fwmark).map_err(|e| io_error("listen_port", e))?;
                req.listen_port = Some(sockets.port);
                self.install(sockets);
            }
            _ if fwmark != self.device.fwmark() => {
                self.current_sockets()
                    .set_mark(fwmark)
                    .map_err(|e| io_error("fwmark", e))?;
            }
            _ => {}
        }
        self.device.apply(&req);
        Ok(())
    }

    pub fn snapshot(&self) -> DeviceSnapshot {
        self.device.snapshot()
    }

    pub fn counters(&self) -> Counters {
        self.device.counters.snapshot()
    }
}

/// The UAPI server's view of a running daemon.
pub struct DaemonApi(pub Arc<Daemon>);

impl crate::uapi::server::Handler for DaemonApi {
    fn get(&self) -> DeviceSnapshot {
        self.0.snapshot()
    }
    fn stats(&self) -> Counters {
        self.0.counters()
    }
    fn set(
        &self,
        req: SetRequest,
    ) -> impl std::future::Future<Output = Result<(), UapiError>> + Send {
        let daemon = self.0.clone();
        async move { daemon.set(req).await }
    }
}
