//! The tokio driver: moves packets between the TUN device, the UDP sockets
//! and the sans-IO [`Device`], in batches.
//!
//! - TUN → UDP: tun-rs with virtio offload hands us a TCP/UDP GSO
//!   super-packet already split into MTU-sized packets; we encrypt them all
//!   and send runs to the same peer as one UDP GSO `sendmsg` (quinn-udp).
//! - UDP → TUN: quinn-udp receives with `recvmmsg` and UDP GRO; decrypted
//!   packets are coalesced by tun-rs's GRO table into few TUN writes.
//! - A timer task runs handshake/keepalive timers four times a second.
//!
//! Both directions run on every worker (see [`Daemon`]): one thread with
//! one TUN queue and one UDP socket per address family each, so reads and
//! writes never serialize on one descriptor, and the sans-IO device is
//! entered once per batch, not once per packet.

use super::batch::{Both, NetBatch, NetOnly, TunBatch};
use super::datapath::SCRATCH_LEN;
use super::sockets::{Sockets, UdpEndpoint};
use super::workers::Workers;
use super::Device;
use crate::uapi::{Counters, DeviceSnapshot, SetRequest, UapiError};
use parking_lot::{Mutex, RwLock};
use quinn_udp::RecvMeta;
use std::io::{self, IoSliceMut};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::Interest;
use tokio::task::JoinHandle;
use tun_rs::{AsyncDevice, DeviceBuilder, SyncDevice, IDEAL_BATCH_SIZE, VIRTIO_NET_HDR_LEN};

/// Default tunnel MTU, as wg-quick uses on a 1500-byte underlay.
pub const DEFAULT_MTU: u16 = 1420;
/// Receive buffers per `recvmmsg`; each holds one GRO train of datagrams.
const UDP_BATCH: usize = 16;
/// How often peer timers run.
const TICK: Duration = Duration::from_millis(250);

/// Why the daemon could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    #[error("cannot start data-plane worker threads: {0}")]
    Workers(io::Error),
    #[error("cannot create TUN device {iface}: {source}")]
    CreateTun { iface: String, source: io::Error },
    #[error("cannot bind UDP port {port}: {source}")]
    Bind { port: u16, source: io::Error },
    #[error("TUN device {iface} failed: {source}")]
    Tun { iface: String, source: io::Error },
}

fn tun_is_gone(err: &io::Error) -> bool {
    matches!(
        err.raw_os_error(),
        Some(libc::EBADFD | libc::ENODEV | libc::ENXIO | libc::EBADF)
    )
}

/// Most workers a daemon runs; a larger `--threads` is refused.
pub const MAX_THREADS: usize = 64;
/// Most workers the default picks (one per core up to this).
const DEFAULT_THREADS_CAP: usize = 16;

/// Workers when none are asked for: one per available core, at most 16.
pub fn default_threads() -> usize {
    std::thread::available_parallelism()
        .map_or(1, usize::from)
        .clamp(1, DEFAULT_THREADS_CAP)
}

/// `count` buffers of `len` zero bytes, each allocated zeroed (`vec!` of a
/// `Vec` would copy the first into every other, touching all the memory):
/// with many workers, pages a batch never fills stay unused.
fn zeroed_buffers(count: usize, len: usize) -> Vec<Vec<u8>> {
    (0..count).map(|_| vec![0u8; len]).collect()
}

/// Opens the TUN device with one queue per worker (multi-queue from two
/// on), each with virtio offload (tun-rs sets it on every cloned queue),
/// queue `i` driven by worker `i`.
fn open_tun(iface: &str, workers: &Workers) -> io::Result<Vec<Arc<AsyncDevice>>> {
    let first = DeviceBuilder::new()
        .name(iface)
        .mtu(DEFAULT_MTU)
        .offload(true)
        .multi_queue(workers.len() > 1)
        .build_sync()?;
    let mut queues: Vec<SyncDevice> = Vec::with_capacity(workers.len());
    for _ in 1..workers.len() {
        queues.push(first.try_clone()?);
    }
    queues.insert(0, first);
    queues
        .into_iter()
        .enumerate()
        .map(|(i, queue)| {
            let _runtime = workers.handle(i).enter();
            AsyncDevice::new(queue).map(Arc::new)
        })
        .collect()
}

/// A running interface: TUN queues, sockets, device state and tasks.
///
/// It runs `threads` workers, each a thread of its own ([`Workers`]).
/// Worker `i` reads TUN queue `i`, encrypts and sends through UDP socket
/// `i` of the destination's family; it receives on UDP socket `i` of each
/// family, decrypts and writes to TUN queue `i`. The kernel picks the UDP
/// socket (in the `SO_REUSEPORT` group) by the peer's address and the TUN
/// queue of a flow by the queue its packets were last written to, so one
/// peer's datagrams are decrypted in order by one worker and the replies
/// to them are encrypted by the same one. A peer's crypto is serialized by
/// its tunnel lock (boringtun's `Tunn` needs `&mut`): one peer never uses
/// more than one core. UAPI, timers and signals run on the caller's
/// runtime.
pub struct Daemon {
    pub iface: String,
    pub device: Arc<Device>,
    tuns: Vec<Arc<AsyncDevice>>,
    sockets: RwLock<Arc<Sockets>>,
    recv_tasks: Mutex<Vec<JoinHandle<()>>>,
    set_lock: tokio::sync::Mutex<()>,
    // Last: the queues and sockets above are dropped before their workers.
    workers: Workers,
}

impl Daemon {
    /// Starts `threads` workers, creates the TUN device `iface` with one
    /// queue per worker and binds a random UDP port, one socket per worker
    /// and address family. Must run inside a tokio runtime (the one the
    /// timers run on).
    pub fn create(iface: &str, threads: usize) -> Result<Arc<Self>, DriverError> {
        let threads = threads.clamp(1, MAX_THREADS);
        let workers = Workers::start("flowshield", threads).map_err(DriverError::Workers)?;
        let tuns = open_tun(iface, &workers).map_err(|source| DriverError::CreateTun {
            iface: iface.to_string(),
            source,
        })?;
        let daemon = Arc::new(Self {
            iface: iface.to_string(),
            device: Arc::new(Device::new()),
            tuns,
            sockets: RwLock::new(Arc::new(Sockets::unbound())),
            recv_tasks: Mutex::new(Vec::new()),
            set_lock: tokio::sync::Mutex::new(()),
            workers,
        });
        let sockets = Sockets::bind(0, 0, &daemon.workers.handles())
            .map_err(|source| DriverError::Bind { port: 0, source })?;
        daemon.device.apply(&SetRequest {
            listen_port: Some(sockets.port),
            ..Default::default()
        });
        daemon.install(sockets);
        Ok(daemon)
    }

    /// How many workers (TUN queues, sockets per family) this daemon runs.
    pub fn workers(&self) -> usize {
        self.tuns.len()
    }

    /// Makes `sockets` current and replaces the receive tasks: one per
    /// socket, on the socket's worker, the old ones aborted.
    fn install(self: &Arc<Self>, sockets: Sockets) {
        let sockets = Arc::new(sockets);
        *self.sockets.write() = sockets.clone();
        let mut tasks = self.recv_tasks.lock();
        for task in tasks.drain(..) {
            task.abort();
        }
        for (worker, ep) in sockets.endpoints() {
            let udp_loop = self.clone().udp_loop(ep.clone(), worker);
            tasks.push(self.workers.handle(worker).spawn(udp_loop));
        }
        tracing::info!(
            iface = %self.iface,
            port = sockets.port,
            workers = self.workers(),
            "listening"
        );
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
        let mut readers = tokio::task::JoinSet::new();
        for worker in 0..self.workers() {
            readers.spawn_on(self.clone().tun_loop(worker), self.workers.handle(worker));
        }
        // The first reader to stop ends the daemon: the link is gone (all
        // queues fail together) or a reader panicked.
        let result = tokio::select! {
            Some(done) = readers.join_next() => match done {
                Ok(result) => result,
                Err(err) if err.is_panic() => std::panic::resume_unwind(err.into_panic()),
                Err(_) => Ok(()),
            },
            () = shutdown => Ok(()),
        };
        readers.abort_all();
        timers.abort();
        for task in self.recv_tasks.lock().drain(..) {
            task.abort();
        }
        result
    }

    async fn tun_loop(self: Arc<Self>, worker: usize) -> Result<(), DriverError> {
        let tun = self.tuns[worker].clone();
        let mut original = vec![0u8; VIRTIO_NET_HDR_LEN + 65_535];
        let mut bufs = zeroed_buffers(IDEAL_BATCH_SIZE, 65_535);
        let mut sizes = vec![0usize; IDEAL_BATCH_SIZE];
        let mut scratch = vec![0u8; SCRATCH_LEN];
        let mut out = NetOnly::default();
        loop {
            let n = match tun
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
            let packets = bufs.iter().zip(&sizes).take(n);
            self.device.handle_tun_packets(
                packets.map(|(buf, size)| &buf[..*size]),
                &mut scratch,
                &mut out,
            );
            out.0
                .flush(&self.current_sockets(), worker, &self.device)
                .await;
        }
    }

    async fn udp_loop(self: Arc<Self>, ep: Arc<UdpEndpoint>, worker: usize) {
        let tun = self.tuns[worker % self.tuns.len()].clone();
        // Each buffer holds one GRO train of datagrams.
        let mut storage = zeroed_buffers(UDP_BATCH, 65_536);
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
                // One GRO train: every datagram from the same source.
                let stride = meta.stride.max(1);
                self.device.handle_datagrams_at(
                    meta.addr,
                    meta.dst_ip,
                    buf[..meta.len].chunks(stride),
                    &mut scratch,
                    &mut out,
                );
            }
            out.tun.flush(&tun).await;
            out.net
                .flush(&self.current_sockets(), worker, &self.device)
                .await;
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
            out.0.flush(&self.current_sockets(), 0, &self.device).await;
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
                let sockets = Sockets::bind(port, fwmark, &self.workers.handles())
                    .map_err(|e| io_error("listen_port", e))?;
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
