//! # flowshield-market
//!
//! The market sidecar: it finds and announces bandwidth offers on a libp2p
//! network and drives the data plane (`flowshield`) only through its UAPI
//! socket. It never touches packets.
//!
//! Signed message types live in `flowshield-proto`.

pub mod chain;
pub mod client;
pub mod dataplane;
pub mod fullnode;
pub mod identity;
pub mod net;
pub mod provider;
pub mod session;
pub mod wire;

/// Milliseconds since the Unix epoch, the clock every signed message uses.
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Binds a TCP listener and reads back its address (port 0 becomes the
/// port the kernel chose), for the HTTP servers of the roles.
pub(crate) async fn bind_tcp(
    addr: std::net::SocketAddr,
) -> std::io::Result<(tokio::net::TcpListener, std::net::SocketAddr)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    Ok((listener, bound))
}
