//! `flowshield daemon IFACE` starts, refuses a second instance, and exits
//! cleanly — removing its UAPI socket — on SIGTERM, SIGINT, or when its
//! interface is deleted.

use flowshield_e2e::daemon::{Daemon, Implementation::Flowshield, STOP_TIMEOUT};
use flowshield_e2e::netns::Netns;
use flowshield_e2e::process::run_with_timeout;
use flowshield_e2e::wg;
use std::time::Duration;

fn stops_on(signal: i32) -> anyhow::Result<()> {
    let ns = Netns::new()?;
    let iface = flowshield_e2e::unique_iface();
    let mut daemon = Daemon::spawn(&ns, Flowshield, &iface)?;
    ns.ip(&["link", "show", &iface])?;
    daemon.signal(signal);
    let status = daemon.wait_exit(STOP_TIMEOUT)?;
    assert!(
        status.success(),
        "daemon exited with {status} on signal {signal}"
    );
    assert!(
        !wg::socket_path(&iface).exists(),
        "socket left behind after signal {signal}"
    );
    assert!(
        ns.ip(&["link", "show", &iface]).is_err(),
        "TUN device left behind"
    );
    Ok(())
}

#[test]
fn sigterm_stops_the_daemon() -> anyhow::Result<()> {
    stops_on(libc::SIGTERM)
}

#[test]
fn sigint_stops_the_daemon() -> anyhow::Result<()> {
    stops_on(libc::SIGINT)
}

#[test]
fn deleting_the_interface_stops_the_daemon() -> anyhow::Result<()> {
    let ns = Netns::new()?;
    let iface = flowshield_e2e::unique_iface();
    let mut daemon = Daemon::spawn(&ns, Flowshield, &iface)?;
    ns.ip(&["link", "del", &iface])?;
    let status = daemon.wait_exit(STOP_TIMEOUT)?;
    assert!(
        status.success(),
        "daemon exited with {status} after link deletion"
    );
    assert!(!wg::socket_path(&iface).exists(), "socket left behind");
    Ok(())
}

#[test]
fn second_daemon_for_the_same_interface_is_refused() -> anyhow::Result<()> {
    let ns = Netns::new()?;
    let iface = flowshield_e2e::unique_iface();
    let mut first = Daemon::spawn(&ns, Flowshield, &iface)?;
    let mut cmd = ns.command(flowshield_e2e::flowshield_bin()?);
    cmd.args(["daemon", &iface]);
    let out = run_with_timeout(&mut cmd, Duration::from_secs(15))?;
    assert!(!out.status.success(), "a second daemon started for {iface}");
    assert!(first.is_running(), "the first daemon died");
    let reply = wg::uapi_request(&iface, "get=1\n\n")?;
    assert_eq!(
        wg::reply_errno(&reply),
        Some(0),
        "first daemon's socket broken: {reply:?}"
    );
    Ok(())
}

/// With `FLOWSHIELD_UAPI_GROUP` the socket is 0660 and group-owned: a
/// process in that group drives it, others are refused, root still can.
#[test]
fn uapi_group_opens_the_socket_to_that_group_only() -> anyhow::Result<()> {
    use std::os::unix::fs::MetadataExt;
    use std::os::unix::process::CommandExt;
    const NOBODY: u32 = 65534;
    const NOGROUP: u32 = 65534;
    const OTHER_GROUP: u32 = 1; // "daemon"
    let ns = Netns::new()?;
    let iface = flowshield_e2e::unique_iface();
    let _daemon = Daemon::spawn_with_env(
        &ns,
        Flowshield,
        &iface,
        &[("FLOWSHIELD_UAPI_GROUP", "nogroup")],
    )?;
    let meta = std::fs::metadata(wg::socket_path(&iface))?;
    assert_eq!(meta.mode() & 0o777, 0o660, "socket mode");
    assert_eq!((meta.uid(), meta.gid()), (0, NOGROUP), "socket owner");

    let wg_show_as = |gid: u32| {
        let mut cmd = std::process::Command::new("wg");
        cmd.args(["show", &iface]).uid(NOBODY).gid(gid);
        run_with_timeout(&mut cmd, Duration::from_secs(10))
    };
    let member = wg_show_as(NOGROUP)?;
    assert!(
        member.status.success(),
        "a member of the socket's group was refused: {}",
        member.stderr
    );
    assert!(member.stdout.contains(&format!("interface: {iface}")));
    let outsider = wg_show_as(OTHER_GROUP)?;
    assert!(
        !outsider.status.success(),
        "a process outside the socket's group could use it"
    );
    let reply = wg::uapi_request(&iface, "get=1\n\n")?;
    assert_eq!(wg::reply_errno(&reply), Some(0), "root refused: {reply:?}");
    Ok(())
}
