//! `flowshield daemon IFACE`: the data plane in the foreground.

use anyhow::Context;
use flowshield_tunnel::device::driver::{Daemon, DaemonApi};
use flowshield_tunnel::uapi::restricted::{self, Restricted};
use flowshield_tunnel::uapi::{server::Listener, socket_path, SocketAccess};
use std::io::Write;
use std::sync::Arc;
use tokio::signal::unix::{signal, SignalKind};

/// `uapi_group`: who besides root may use the UAPI socket (see
/// [`flowshield_tunnel::uapi::access`]); `restricted_group`: who may use the
/// restricted socket ([`flowshield_tunnel::uapi::restricted`]), served only
/// when given.
pub fn run(
    iface: &str,
    uapi_group: Option<&str>,
    restricted_group: Option<&str>,
) -> anyhow::Result<()> {
    super::check_iface_name(iface)?;
    let access = SocketAccess::from_group_spec(uapi_group)?;
    let restricted_access = restricted_group
        .map(|group| SocketAccess::from_group_spec(Some(group)))
        .transpose()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("flowshield")
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        // Bind the socket first: it refuses to start if a live daemon owns it.
        let listener = Listener::bind_with_access(&socket_path(iface), access)?;
        if let SocketAccess::Group(gid) = access {
            tracing::info!(iface, gid, "UAPI socket open to group (mode 0660)");
        }
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
        let daemon = Daemon::create(iface)?;
        let mut sigterm = signal(SignalKind::terminate())?;
        let mut sigint = signal(SignalKind::interrupt())?;
        tracing::info!(iface, "daemon ready");
        // Readiness line for `flowshield up` (which waits for it on a pipe).
        let mut stdout = std::io::stdout();
        let _ = writeln!(stdout, "ready").and_then(|()| stdout.flush());
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
            // The interface was deleted (`ip link del`, `flowshield down`): a normal exit.
            Err(err @ flowshield_tunnel::device::driver::DriverError::Tun { .. }) => {
                tracing::info!(error = %err, "interface gone: exiting");
                Ok(())
            }
            Err(err) => Err(err.into()),
        }
    })
}
