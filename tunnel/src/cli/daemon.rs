//! `flowshield daemon IFACE`: the data plane in the foreground, for
//! `flowshield up` (which waits for its readiness line) and service managers.

use flowshield_tunnel::service;
use flowshield_tunnel::uapi::SocketAccess;
use std::io::Write;

/// `uapi_group`: who besides root may use the UAPI socket (see
/// [`flowshield_tunnel::uapi::access`]).
pub fn run(iface: &str, uapi_group: Option<&str>) -> anyhow::Result<()> {
    super::check_iface_name(iface)?;
    let access = SocketAccess::from_group_spec(uapi_group)?;
    service::run(iface, access, || {
        // Readiness line for `flowshield up` (which waits for it on a pipe).
        let mut stdout = std::io::stdout();
        let _ = writeln!(stdout, "ready").and_then(|()| stdout.flush());
    })?;
    Ok(())
}
