//! # flowshield-market
//!
//! The market sidecar: it finds and announces bandwidth offers on a libp2p
//! network and drives the data plane (`flowshield`) only through its UAPI
//! socket. It never touches packets. Signed message types (offer,
//! heartbeat, envelope, replay guard) live in `flowshield-proto`.
//!
//! Three roles, one folder each, over shared layers below them:
//!
//! ```text
//!  fullnode/                 provider/                  client/
//!  gossip → index, matching, heartbeats, sessions for   find, buy, tunnel, pay,
//!  reputation, HTTP API      sale, dashboard            fail over, settle
//!        │                        │                          │
//!        └────────────┬───────────┴─────────────┬────────────┘
//!   net/ (libp2p)   session/ (sans-IO)   wire/ (typed messages)
//!   dataplane (UAPI)   chain (key file, market contract)   identity (node key)
//! ```
//!
//! - [`fullnode`]: indexes providers from gossip (SQL in batches, live offers
//!   in memory), matches requests, takes verifier reports, admits by DeCA
//!   certificate, serves the HTTP API (`fullnode/api/`) and `/metrics`.
//! - [`provider`]: announces its offer (signed heartbeats, DHT presence,
//!   certificate), registers on chain, hosts order sessions
//!   ([`provider::host`]) and serves the operator's dashboard.
//! - [`client`]: finds a provider (fullnodes, then the DHT), opens an order,
//!   brings its own tunnel up, pays with vouchers, fails over, settles.
//! - [`session`]: the order session's sans-IO core — the provider's session
//!   table, pricing, the tunnel address pool.
//! - [`wire`]: every message and API body the roles exchange, typed.
//! - [`net`]: the libp2p swarm (Kademlia, gossipsub, identify,
//!   request-response over TCP and QUIC) behind a command channel and an
//!   event stream.
//! - [`dataplane`]: adds and removes WireGuard peers and reads their
//!   counters over UAPI; [`chain`]: the `[chain]` table, chain key files and
//!   the market contract; [`identity`]: the node's libp2p key file.
//!
//! Lower layers never import a role, and a module never imports one that
//! imports it back. The binary (`src/main.rs`, `src/cli/`) parses arguments
//! and wires roles together; the demo's local chain (`src/cli/devnet.rs`)
//! and the fullnode benchmark's load generator
//! (`src/bin/flowshield-market-bench/`) are parts of their binaries, not of
//! this library.

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
pub use flowshield_proto::unix_ms;

/// Binds a TCP listener and reads back its address (port 0 becomes the
/// port the kernel chose), for the HTTP servers of the roles.
pub(crate) async fn bind_tcp(
    addr: std::net::SocketAddr,
) -> std::io::Result<(tokio::net::TcpListener, std::net::SocketAddr)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    Ok((listener, bound))
}
