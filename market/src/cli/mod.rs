//! The subcommands of `flowshield-market`, one file each: arguments and
//! wiring of a role or tool; the roles themselves are in the library.

pub mod chain_status;
pub mod client;
pub mod deploy;
pub mod devchain;
pub mod devnet;
pub mod fullnode;
pub mod keys;
pub mod provider;
pub mod trust;

use anyhow::{Context, Result};
use libp2p::Multiaddr;

/// Resolves on SIGTERM or Ctrl-C.
pub async fn terminated() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

/// Multiaddrs from a configuration file's list named `what`.
pub fn parse_addrs(texts: &[String], what: &str) -> Result<Vec<Multiaddr>> {
    texts
        .iter()
        .map(|t| {
            t.parse()
                .with_context(|| format!("{what}: '{t}' is not a multiaddr"))
        })
        .collect()
}
