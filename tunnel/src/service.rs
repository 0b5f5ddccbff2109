//! One interface as a running process: bind the UAPI socket, create the TUN
//! device and UDP sockets, report readiness, then serve until SIGTERM/SIGINT
//! or until the interface is deleted. Shared by `flowshield daemon` and the
//! wireguard-go-compatible `flowshieldd`; how the process is started
//! (foreground, detached) is the binaries' business.
//!
//! The daemon, its UDP sockets and the UAPI socket stay in the network
//! namespace they started in; the TUN link may be moved elsewhere (`ip link
//! set IFACE netns NS`) and keeps carrying packets, since only the file
//! descriptor matters. Deleting the link, wherever it is, ends the daemon.

use crate::device::driver::{default_threads, Daemon, DaemonApi, DriverError, MAX_THREADS};
use crate::uapi::access::{group_blocked_by_dir, GroupError};
use crate::uapi::restricted::{self, Restricted};
use crate::uapi::server::{BindError, Listener};
use crate::uapi::{socket_path, SocketAccess};
use std::io;
use std::sync::Arc;
use tokio::signal::unix::{signal, SignalKind};

/// Why the daemon could not start or stopped abnormally.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("'{0}' is not a valid interface name (1-15 characters, no '/', ':' or spaces)")]
    InterfaceName(String),
    #[error(transparent)]
    Group(#[from] GroupError),
    #[error("cannot start the async runtime: {0}")]
    Runtime(io::Error),
    #[error("cannot install signal handlers: {0}")]
    Signals(io::Error),
    #[error(transparent)]
    Bind(#[from] BindError),
    #[error(transparent)]
    Driver(#[from] DriverError),
}

/// `--threads N` / `FLOWSHIELD_THREADS`, shared by `flowshield daemon` and
/// `flowshieldd`.
#[derive(Debug, Clone, clap::Args)]
pub struct ThreadArgs {
    /// Data-plane workers: threads, each with a TUN queue and a UDP socket
    /// per address family (default: one per core, at most 16; 1 = a single
    /// queue and socket).
    #[arg(
        long,
        env = "FLOWSHIELD_THREADS",
        value_name = "N",
        value_parser = clap::value_parser!(u16).range(1..=MAX_THREADS as i64)
    )]
    pub threads: Option<u16>,
}

impl ThreadArgs {
    /// The workers asked for, or [`default_threads`].
    pub fn threads(&self) -> usize {
        self.threads.map_or_else(default_threads, usize::from)
    }
}

/// Interface names as the kernel allows them: 1–15 bytes, no '/', ':' or
/// whitespace, not "." or "..".
pub fn valid_iface_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 15
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'/' && b != b':')
}

/// Runs the daemon for `iface` in this process until it is told to stop or
/// the interface disappears (both a normal exit). `ready` is called once
/// the TUN device, the UDP sockets and the UAPI socket all exist.
/// `restricted_access`, when given, also serves the restricted UAPI socket
/// ([`crate::uapi::restricted`]) with that access. `threads` data-plane
/// workers run (see [`Daemon`]), each on a thread of its own; UAPI,
/// timers and signals share one more.
pub fn run(
    iface: &str,
    access: SocketAccess,
    restricted_access: Option<SocketAccess>,
    threads: usize,
    ready: impl FnOnce(),
) -> Result<(), ServiceError> {
    if !valid_iface_name(iface) {
        return Err(ServiceError::InterfaceName(iface.to_string()));
    }
    let threads = threads.clamp(1, MAX_THREADS);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(ServiceError::Runtime)?;
    runtime.block_on(serve(iface, access, restricted_access, threads, ready))
}

fn report_access(path: &std::path::Path, access: SocketAccess) {
    let SocketAccess::Group(gid) = access else {
        return;
    };
    let blocked = path.parent().and_then(|dir| group_blocked_by_dir(dir, gid));
    match blocked {
        Some(why) => tracing::warn!(
            gid,
            "UAPI socket is mode 0660 but the group cannot use it: {why}"
        ),
        None => tracing::info!(gid, "UAPI socket open to group (mode 0660)"),
    }
}

async fn serve(
    iface: &str,
    access: SocketAccess,
    restricted_access: Option<SocketAccess>,
    threads: usize,
    ready: impl FnOnce(),
) -> Result<(), ServiceError> {
    // Bind the socket first: it refuses to start if a live daemon owns it.
    let path = socket_path(iface);
    let listener = Listener::bind_with_access(&path, access)?;
    report_access(&path, access);
    let restricted = match restricted_access {
        Some(access) => {
            let listener = Listener::bind_with_access(&restricted::socket_path(iface), access)?;
            tracing::info!(
                iface,
                mode = format!("{:o}", access.mode()),
                "restricted UAPI socket"
            );
            Some(listener)
        }
        None => None,
    };
    let daemon = Daemon::create(iface, threads)?;
    let mut sigterm = signal(SignalKind::terminate()).map_err(ServiceError::Signals)?;
    let mut sigint = signal(SignalKind::interrupt()).map_err(ServiceError::Signals)?;
    tracing::info!(iface, "daemon ready");
    ready();
    let shutdown = async move {
        tokio::select! {
            _ = sigterm.recv() => tracing::info!("SIGTERM: shutting down"),
            _ = sigint.recv() => tracing::info!("SIGINT: shutting down"),
        }
    };
    let api = Arc::new(DaemonApi(daemon.clone()));
    let limited = Arc::new(Restricted::new(api.clone()));
    let serve_restricted = async {
        match &restricted {
            Some(listener) => listener.serve(limited).await,
            None => std::future::pending().await,
        }
    };
    let result = tokio::select! {
        r = daemon.run(shutdown) => r,
        () = listener.serve(api) => Ok(()),
        () = serve_restricted => Ok(()),
    };
    match result {
        Ok(()) => Ok(()),
        // The interface was deleted (`ip link del`, `flowshield down`,
        // `wg-quick down`): a normal exit.
        Err(err @ DriverError::Tun { .. }) => {
            tracing::info!(error = %err, "interface gone: exiting");
            Ok(())
        }
        Err(err) => Err(err.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interface_names_follow_the_kernel_rules() {
        for good in ["wg0", "a", "fe1234i56", "x".repeat(15).as_str()] {
            assert!(valid_iface_name(good), "{good}");
        }
        for bad in ["", ".", "..", "a/b", "a:b", "a b", &"x".repeat(16)] {
            assert!(!valid_iface_name(bad), "{bad}");
        }
        assert!(matches!(
            run("a/b", SocketAccess::OwnerOnly, None, 1, || {}),
            Err(ServiceError::InterfaceName(name)) if name == "a/b"
        ));
    }
}
