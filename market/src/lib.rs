//! # flowshield-market
//!
//! The market sidecar: it finds and announces bandwidth offers on a libp2p
//! network and drives the data plane (`flowshield`) only through its UAPI
//! socket. It never touches packets.
//!
//! Modules, each one concept:
//! - [`net`]: the libp2p swarm (Kademlia, gossipsub, identify,
//!   request-response over TCP and QUIC) behind a command channel and an
//!   event stream.
//! - [`index`]: the fullnode's provider index in SQL (SQLite or Postgres),
//!   written in batches; [`live`]: the in-memory live offers matching reads.
//! - [`matching`]: ranks offers for a request (sans-IO); [`reputation`]:
//!   scores from verifier [`reports`] (checked, stored, gossiped).
//! - [`certgate`]: DeCA admission (a provider's certificate must bind the
//!   keys its heartbeats name).
//! - [`pool`]: tunnel addresses a provider hands out (sans-IO).
//! - [`dataplane`]: adds and removes WireGuard peers over UAPI.
//! - [`fullnode`], [`provider`]: the roles; [`api`] and [`metrics`] serve
//!   the fullnode's HTTP interface; [`dashboard`] is the provider's web
//!   page (sessions, traffic, earnings, stake, reputation, certificate).
//! - [`identity`]: the node's libp2p key file; [`chain`]: the chain key
//!   file and market contract.
//! - [`session`]: the order session protocol between client and provider
//!   (messages, pricing, the provider's sans-IO session table and its
//!   driver); [`client`]: the client role (find, buy, tunnel, pay,
//!   fail over, disconnect).
//! - [`simulate`]: load generation for the fullnode benchmark.
//!
//! Signed message types live in `flowshield-proto`.

pub mod api;
mod api_reports;
pub mod certgate;
pub mod chain;
pub mod client;
pub mod dashboard;
pub mod dataplane;
pub mod devnet;
pub mod fullnode;
pub mod identity;
pub mod index;
mod ingest;
pub mod live;
pub mod matching;
pub mod metrics;
pub mod net;
pub mod offer_keys;
pub mod pool;
pub mod provider;
pub mod reports;
pub mod reputation;
pub mod session;
pub mod simulate;

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
