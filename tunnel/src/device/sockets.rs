//! The UDP sockets of the listen port: per address family, one socket per
//! worker, all bound to the same port with `SO_REUSEPORT` so the kernel
//! spreads peers over them (it hashes the 4-tuple, so one peer's datagrams
//! always reach the same socket, in order). One worker keeps today's single
//! socket per family, without `SO_REUSEPORT`.
//!
//! Only processes of the same user can join a `SO_REUSEPORT` group; the
//! daemon runs as root. So that an explicit `listen-port` another socket
//! already holds fails with `EADDRINUSE` as before, instead of silently
//! sharing that socket's traffic, the port is first probed with a plain
//! bind.

use quinn_udp::{Transmit, UdpSocketState};
use socket2::{Domain, Protocol, Socket, Type};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio::runtime::Handle;

/// One bound UDP socket with its quinn-udp state (GSO/GRO capabilities).
pub struct UdpEndpoint {
    pub(super) socket: UdpSocket,
    pub(super) state: UdpSocketState,
}

/// The UDP sockets of the current listen port: per address family, one per
/// worker.
pub struct Sockets {
    pub port: u16,
    v4: Vec<Arc<UdpEndpoint>>,
    v6: Vec<Arc<UdpEndpoint>>,
}

fn socket(addr: SocketAddr, fwmark: u32, reuse_port: bool) -> io::Result<Socket> {
    let sock = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        sock.set_only_v6(true)?;
    }
    if fwmark != 0 {
        sock.set_mark(fwmark)?;
    }
    if reuse_port {
        sock.set_reuse_port(true)?;
    }
    sock.set_nonblocking(true)?;
    // Large buffers absorb bursts from GSO; failure only costs throughput.
    let _ = sock.set_recv_buffer_size(7 << 20);
    let _ = sock.set_send_buffer_size(7 << 20);
    sock.bind(&addr.into())?;
    Ok(sock)
}

/// Wraps `sock` for async use, registered with (driven by) `runtime`.
fn endpoint(sock: Socket, runtime: &Handle) -> io::Result<UdpEndpoint> {
    let std: std::net::UdpSocket = sock.into();
    let state = UdpSocketState::new((&std).into())?;
    let _entered = runtime.enter();
    Ok(UdpEndpoint {
        socket: UdpSocket::from_std(std)?,
        state,
    })
}

fn local_port(sock: &Socket) -> io::Result<u16> {
    sock.local_addr()?
        .as_socket()
        .map(|a| a.port())
        .ok_or_else(|| io::Error::other("bound UDP socket has no IP address"))
}

/// Binds one socket per runtime on `ip`:`port` (0 picks a free port),
/// socket `i` driven by `runtimes[i]`; returns them and the port.
fn bind_family(
    ip: IpAddr,
    port: u16,
    fwmark: u32,
    runtimes: &[Handle],
) -> io::Result<(Vec<Arc<UdpEndpoint>>, u16)> {
    if let [runtime] = runtimes {
        let sock = socket((ip, port).into(), fwmark, false)?;
        let port = local_port(&sock)?;
        return Ok((vec![Arc::new(endpoint(sock, runtime)?)], port));
    }
    // A plain bind conflicts with every socket on the port, SO_REUSEPORT or
    // not: the port is free (or a free one is picked) at this moment.
    let port = local_port(&socket((ip, port).into(), 0, false)?)?;
    let endpoints = runtimes
        .iter()
        .map(|runtime| endpoint(socket((ip, port).into(), fwmark, true)?, runtime).map(Arc::new))
        .collect::<io::Result<Vec<_>>>()?;
    Ok((endpoints, port))
}

impl Sockets {
    /// Binds `port` (0 picks one) on IPv4 and, where available, IPv6, one
    /// socket per runtime in each family: socket `i` is driven by
    /// `runtimes[i]` (worker `i`). No runtimes binds nothing.
    pub fn bind(port: u16, fwmark: u32, runtimes: &[Handle]) -> io::Result<Self> {
        if runtimes.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "no worker to drive the UDP sockets",
            ));
        }
        let (v4, port) = bind_family(Ipv4Addr::UNSPECIFIED.into(), port, fwmark, runtimes)?;
        let v6 = match bind_family(Ipv6Addr::UNSPECIFIED.into(), port, fwmark, runtimes) {
            Ok((v6, _)) => v6,
            Err(err) => {
                tracing::warn!(%err, port, "IPv6 UDP socket unavailable; IPv4 only");
                Vec::new()
            }
        };
        Ok(Self { port, v4, v6 })
    }

    pub(super) fn unbound() -> Self {
        Self {
            port: 0,
            v4: Vec::new(),
            v6: Vec::new(),
        }
    }

    /// Every socket with the worker that serves it.
    pub(super) fn endpoints(&self) -> impl Iterator<Item = (usize, &Arc<UdpEndpoint>)> {
        self.v4.iter().enumerate().chain(self.v6.iter().enumerate())
    }

    /// The socket worker `worker` sends to `dst` from.
    pub(super) fn for_destination(
        &self,
        dst: &SocketAddr,
        worker: usize,
    ) -> Option<&Arc<UdpEndpoint>> {
        let family = match dst {
            SocketAddr::V4(_) => &self.v4,
            SocketAddr::V6(_) => &self.v6,
        };
        family.get(worker % family.len().max(1))
    }

    pub(super) fn set_mark(&self, fwmark: u32) -> io::Result<()> {
        for (_, ep) in self.endpoints() {
            socket2::SockRef::from(&ep.socket).set_mark(fwmark)?;
        }
        Ok(())
    }
}

/// Sends one (possibly GSO) transmit, waiting while the socket buffer is
/// full.
pub(super) async fn send(ep: &UdpEndpoint, transmit: &Transmit<'_>) -> io::Result<()> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn workers_share_one_port_and_a_taken_port_is_refused() {
        let sockets = Sockets::bind(0, 0, &vec![Handle::current(); 3]).unwrap();
        assert_ne!(sockets.port, 0);
        assert_eq!(sockets.v4.len(), 3);
        for (_, ep) in sockets.endpoints() {
            assert_eq!(ep.socket.local_addr().unwrap().port(), sockets.port);
        }
        // Worker i sends from socket i (modulo the count).
        let dst: SocketAddr = "192.0.2.1:9".parse().unwrap();
        let first = sockets.for_destination(&dst, 0).unwrap();
        let fourth = sockets.for_destination(&dst, 3).unwrap();
        assert!(Arc::ptr_eq(first, fourth));
        assert!(!Arc::ptr_eq(
            first,
            sockets.for_destination(&dst, 1).unwrap()
        ));
        // The port is in use: a second device, one socket or several, must
        // not join it (as without SO_REUSEPORT).
        for count in [1, 2] {
            let err = Sockets::bind(sockets.port, 0, &vec![Handle::current(); count]).err();
            assert_eq!(
                err.map(|e| e.kind()),
                Some(io::ErrorKind::AddrInUse),
                "{count} sockets"
            );
        }
    }

    #[tokio::test]
    async fn one_worker_binds_one_plain_socket_per_family() {
        let sockets = Sockets::bind(0, 0, &[Handle::current()]).unwrap();
        assert_eq!(sockets.v4.len(), 1);
        let reuse = socket2::SockRef::from(&sockets.v4[0].socket)
            .reuse_port()
            .unwrap();
        assert!(!reuse, "a single socket does not open the port to others");
    }
}
