//! The probe responder: the provider side of the throughput measurement.
//!
//! Protocol (TCP, on the provider's probe address): the verifier sends the number of
//! bytes it wants as 8 bytes big-endian; the responder sends that many bytes (at most
//! [`MAX_TRANSFER_BYTES`]) and closes. The verifier measures what arrives before its
//! time cap, so the download direction — what a client of the provider experiences —
//! is measured at the receiver, where socket buffers cannot inflate the number.
//!
//! Providers run it as `flowshield-verifier responder --listen ADDR:PORT` (in
//! production the market's provider role will start it; the tests start it in the
//! provider's namespace).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::config::MAX_TRANSFER_BYTES;

/// Longest a responder spends on one connection.
const SERVE_TIMEOUT: Duration = Duration::from_secs(60);
const CHUNK: usize = 64 * 1024;

/// Serve probe transfers on `listener` forever.
pub async fn serve(listener: TcpListener) -> std::io::Result<()> {
    loop {
        let (stream, peer) = listener.accept().await?;
        tokio::spawn(async move {
            match tokio::time::timeout(SERVE_TIMEOUT, serve_one(stream)).await {
                Ok(Ok(n)) => tracing::info!(%peer, bytes = n, "probe transfer served"),
                Ok(Err(e)) => tracing::info!(%peer, error = %e, "probe transfer ended"),
                Err(_) => tracing::info!(%peer, "probe transfer timed out"),
            }
        });
    }
}

async fn serve_one(mut stream: tokio::net::TcpStream) -> std::io::Result<u64> {
    let mut header = [0u8; 8];
    stream.read_exact(&mut header).await?;
    let wanted = u64::from_be_bytes(header).min(MAX_TRANSFER_BYTES);
    let chunk = vec![0x5a_u8; CHUNK];
    let mut sent = 0u64;
    while sent < wanted {
        let n = (wanted - sent).min(CHUNK as u64) as usize;
        stream.write_all(&chunk[..n]).await?;
        sent += n as u64;
    }
    stream.shutdown().await?;
    Ok(sent)
}

/// What one transfer achieved.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Transfer {
    /// Bytes received.
    pub bytes: u64,
    /// From sending the request to the last byte (or the cap).
    pub elapsed: Duration,
    /// Whether the cap stopped it before all bytes arrived.
    pub capped: bool,
}

/// Fetch `wanted` bytes from the responder at `addr`, stopping at `cap`. Blocking; run
/// it where the probe's network is ([`super::netns::Place::enter`]).
pub fn fetch(addr: SocketAddr, wanted: u64, cap: Duration) -> std::io::Result<Transfer> {
    let start = Instant::now();
    let deadline = start + cap;
    let mut stream = TcpStream::connect_timeout(&addr, cap)?;
    stream.set_write_timeout(Some(cap))?;
    stream.write_all(&wanted.to_be_bytes())?;
    let mut buf = vec![0u8; CHUNK];
    let mut bytes = 0u64;
    while bytes < wanted {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        stream.set_read_timeout(Some(left))?;
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => bytes += n as u64,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                break
            }
            Err(e) => return Err(e),
        }
    }
    Ok(Transfer {
        bytes,
        elapsed: start.elapsed().min(cap),
        capped: bytes < wanted,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn fetch_gets_what_it_asks_for_and_the_server_caps_requests() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = tokio::spawn(serve(listener));
        let got = tokio::task::spawn_blocking(move || {
            let small = fetch(addr, 300_000, Duration::from_secs(10));
            let huge = fetch(addr, u64::MAX, Duration::from_secs(20));
            (small, huge)
        })
        .await
        .expect("join");
        let small = got.0.expect("small transfer");
        assert_eq!(small.bytes, 300_000);
        assert!(!small.capped);
        // The responder never sends more than the cap, whatever is asked.
        let huge = got.1.expect("huge transfer");
        assert_eq!(huge.bytes, MAX_TRANSFER_BYTES);
        assert!(huge.capped);
        server.abort();
    }

    #[test]
    fn fetch_to_a_closed_port_fails() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("port");
        assert!(fetch(port, 10, Duration::from_secs(2)).is_err());
    }
}
