//! `flowshieldd` as a drop-in for wireguard-go: driven by Debian's real
//! wg-quick (`WG_QUICK_USERSPACE_IMPLEMENTATION=flowshieldd`), detaching
//! only once ready, and the standard netns trick (the TUN link moved into
//! another namespace while the daemon and its UDP socket stay behind).

use flowshield_e2e::dropin::{flowshieldd, start_detached, wg_quick, DaemonGuard, Trick};
use flowshield_e2e::netns::Netns;
use flowshield_e2e::process::wait_for;
use flowshield_e2e::site::{two_sites, PeerSpec};
use flowshield_e2e::traffic::{ping, ping_first};
use flowshield_e2e::wg;
use std::time::Duration;

/// An address behind B that A's main table has no route for: only A's
/// default route through the tunnel reaches it.
const BEHIND_B: &str = "203.0.113.5";

/// wg-quick up on both sides, A with `AllowedIPs = 0.0.0.0/0`: wg-quick
/// starts flowshieldd, sets the fwmark and its policy-routing rules, and
/// traffic to an address only the default route covers crosses the tunnel
/// while the tunnel's own packets (marked) still leave by the underlay.
/// wg-quick down removes the interface, the rules, the daemon and its socket.
#[test]
fn wg_quick_up_and_down_with_a_default_route() -> anyhow::Result<()> {
    let (a, b) = two_sites()?;
    let mut guard = DaemonGuard::default();
    guard.track(&a.iface);
    guard.track(&b.iface);
    b.ns.ip(&["addr", "add", &format!("{BEHIND_B}/32"), "dev", "lo"])?;
    let conf_a = a.write_quick(&[PeerSpec::new(&b).allowed_ips(&["0.0.0.0/0"])], "")?;
    let conf_b = b.write_quick(&[PeerSpec::new(&a)], "")?;

    for (site, conf) in [(&a, &conf_a), (&b, &conf_b)] {
        let up = wg_quick(&site.ns, "up", conf)?;
        assert!(up.status.success(), "wg-quick up failed:\n{}", up.stderr);
        // The userspace path ran (no kernel module here), and returned ready.
        assert!(
            up.stderr.contains(&format!("flowshieldd {}", site.iface)),
            "{}",
            up.stderr
        );
    }
    let table = "51820";
    assert!(a
        .ns
        .ip(&["-4", "rule"])?
        .contains(&format!("lookup {table}")));
    assert_eq!(wg::wg(&["show", &a.iface, "fwmark"])?.trim(), "0xca6c");
    let route = a.ns.ip(&["route", "get", BEHIND_B])?;
    assert!(route.contains(&format!("dev {}", a.iface)), "{route}");

    ping_first(&a.ns, &b.tunnel, 3)?;
    let before = b.peer_state(&a)?.rx_bytes;
    ping(&a.ns, BEHIND_B, 3)?;
    assert!(
        b.peer_state(&a)?.rx_bytes > before,
        "the default-route ping did not cross the tunnel"
    );
    // The tunnel's own datagrams bypass the default route (fwmark): B sees
    // A at its underlay address.
    assert_eq!(
        b.peer_state(&a)?.endpoint.as_deref(),
        Some("198.18.0.1:51820")
    );

    for (site, conf) in [(&a, &conf_a), (&b, &conf_b)] {
        let down = wg_quick(&site.ns, "down", conf)?;
        assert!(
            down.status.success(),
            "wg-quick down failed:\n{}",
            down.stderr
        );
        DaemonGuard::wait_gone(&site.iface)?;
        assert!(site.ns.ip(&["link", "show", &site.iface]).is_err());
        assert!(!wg::socket_path(&site.iface).exists());
    }
    assert!(!a
        .ns
        .ip(&["-4", "rule"])?
        .contains(&format!("lookup {table}")));
    Ok(())
}

/// `flowshieldd IFACE` returns 0 only once the device answers (checked by
/// `start_detached`), and non-zero with the reason when it cannot start;
/// `-f` stays in the foreground until SIGTERM.
#[test]
fn detaches_when_ready_and_reports_why_not() -> anyhow::Result<()> {
    let ns = Netns::new()?;
    let mut guard = DaemonGuard::default();
    let iface = flowshield_e2e::unique_iface();
    start_detached(&ns, &iface, &mut guard)?;
    let pid = DaemonGuard::pid(&iface)?;

    let again = flowshieldd(&ns, &[&iface])?;
    assert!(!again.status.success());
    assert!(again.stderr.contains("already managed"), "{}", again.stderr);
    let bad = flowshieldd(&ns, &["no/slash"])?;
    assert!(!bad.status.success());
    assert!(
        bad.stderr.contains("not a valid interface name"),
        "{}",
        bad.stderr
    );
    assert_eq!(
        DaemonGuard::pid(&iface)?,
        pid,
        "the running daemon was disturbed"
    );

    ns.ip(&["link", "del", &iface])?;
    DaemonGuard::wait_gone(&iface)?;

    let fg = flowshield_e2e::unique_iface();
    guard.track(&fg);
    let mut child = ns
        .command(flowshield_e2e::dropin::flowshieldd_bin()?)
        .args(["-f", &fg])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    wait_for("flowshieldd -f to answer", Duration::from_secs(15), || {
        Ok(wg::uapi_request(&fg, "get=1\n\n").ok())
    })?;
    assert!(child.try_wait()?.is_none(), "-f must not detach");
    assert_eq!(DaemonGuard::pid(&fg)?, child.id() as i32);
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = wait_for("flowshieldd -f to exit", Duration::from_secs(10), || {
        Ok(child.try_wait()?)
    })?;
    assert!(status.success(), "{status}");
    Ok(())
}

/// The netns trick: both daemons and their UDP sockets live in ns0 and
/// talk over its loopback; their TUN links are moved into ns1 and ns2, which
/// reach each other only through the tunnel. Deleting a link in its new
/// namespace ends its daemon and removes its socket.
#[test]
fn link_moved_to_another_namespace_keeps_working() -> anyhow::Result<()> {
    let t = Trick::new()?;
    t.set_endpoints("127.0.0.1")?;
    ping_first(&t.ns1, "192.168.241.2", 3)?;
    ping(&t.ns2, "192.168.241.1", 3)?;
    // The UDP sockets stayed in ns0.
    let udp = t.ns0.run(&["ss", "-uln", "sport = :10000"])?;
    assert!(udp.contains(":10000"), "{udp}");
    let moved = t.ns1.run(&["ss", "-uln", "sport = :10000"])?;
    assert!(!moved.contains(":10000"), "{moved}");

    DaemonGuard::pid(&t.wg1)?;
    t.ns1.ip(&["link", "del", &t.wg1])?;
    DaemonGuard::wait_gone(&t.wg1)?;
    assert!(!wg::socket_path(&t.wg1).exists());
    // The other daemon is untouched.
    assert!(wg::uapi_request(&t.wg2, "get=1\n\n").is_ok());
    Ok(())
}
