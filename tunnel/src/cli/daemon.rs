//! `flowshield daemon IFACE`: the data plane in the foreground, for
//! `flowshield up` (which waits for its readiness line) and service managers.

use flowshield_tunnel::service;
use flowshield_tunnel::uapi::SocketAccess;
use std::io::Write;

/// `uapi_group`: who besides root may use the UAPI socket (see
/// [`flowshield_tunnel::uapi::access`]); `restricted_group`: who may use the
/// restricted socket ([`flowshield_tunnel::uapi::restricted`]), served only
/// when given; `threads`: data-plane workers.
pub fn run(
    iface: &str,
    uapi_group: Option<&str>,
    restricted_group: Option<&str>,
    threads: usize,
) -> anyhow::Result<()> {
    super::check_iface_name(iface)?;
    let access = SocketAccess::from_group_spec(uapi_group)?;
    let restricted_access = restricted_group
        .map(|group| SocketAccess::from_group_spec(Some(group)))
        .transpose()?;
    service::run(iface, access, restricted_access, threads, || {
        // Readiness line for `flowshield up` (which waits for it on a pipe).
        let mut stdout = std::io::stdout();
        let _ = writeln!(stdout, "ready").and_then(|()| stdout.flush());
    })?;
    Ok(())
}
