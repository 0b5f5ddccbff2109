//! Live reconfiguration through `wg set` while a tunnel carries traffic:
//! removing and re-adding a peer, moving the listen port, full-size packets.

use flowshield_e2e::daemon::Implementation::Flowshield;
use flowshield_e2e::process::run_with_timeout;
use flowshield_e2e::site::{two_running, PeerSpec};
use flowshield_e2e::traffic::{ping, ping_first};
use flowshield_e2e::wg;
use std::time::Duration;

#[test]
fn removed_peer_gets_no_traffic_and_can_come_back() -> anyhow::Result<()> {
    let (mut a, b) = two_running(Flowshield, Flowshield)?;
    ping_first(&a.ns, &b.tunnel, 3)?;

    wg::wg(&["set", &a.iface, "peer", &b.keys.public, "remove"])?;
    assert!(a.dump()?.peers.is_empty(), "peer still listed after remove");
    let rx_before = b.peer_state(&a)?.rx_bytes;
    let mut cmd = a.ns.command("ping");
    cmd.args(["-n", "-c", "2", "-W", "1", &b.tunnel]);
    let out = run_with_timeout(&mut cmd, Duration::from_secs(10))?;
    assert!(
        !out.status.success(),
        "ping went through a removed peer: {}",
        out.stdout
    );
    assert_eq!(
        b.peer_state(&a)?.rx_bytes,
        rx_before,
        "B received from A after removal"
    );

    a.wg_set(&[PeerSpec::new(&b)])?;
    ping_first(&a.ns, &b.tunnel, 3)?;
    ping(&b.ns, &a.tunnel, 3)?;
    assert!(a.daemon_mut().is_running());
    Ok(())
}

/// A moves its listen port: A's next packets come from the new port and B
/// follows (roaming), so traffic both ways continues.
#[test]
fn listen_port_change_rebinds() -> anyhow::Result<()> {
    let (a, b) = two_running(Flowshield, Flowshield)?;
    ping_first(&a.ns, &b.tunnel, 3)?;

    wg::wg(&["set", &a.iface, "listen-port", "51830"])?;
    assert_eq!(a.dump()?.listen_port, 51830);
    let sockets = a.ns.run(&["ss", "-uln"])?;
    assert!(
        sockets.contains(":51830"),
        "nothing listens on 51830: {sockets}"
    );
    assert!(
        !sockets.contains(":51820 "),
        "old port still bound: {sockets}"
    );

    ping_first(&a.ns, &b.tunnel, 3)?;
    assert_eq!(
        b.peer_state(&a)?.endpoint.as_deref(),
        Some("198.18.0.1:51830"),
        "B did not see A's new port"
    );
    ping(&b.ns, &a.tunnel, 3)?;
    Ok(())
}

/// Packets of exactly the tunnel MTU (1420) pass with DF set, both ways;
/// one byte more is refused locally, not silently lost.
#[test]
fn full_mtu_packets_pass() -> anyhow::Result<()> {
    let (a, b) = two_running(Flowshield, Flowshield)?;
    ping_first(&a.ns, &b.tunnel, 3)?;
    // 1420 - 20 (IPv4) - 8 (ICMP) = 1392 bytes of payload.
    for (from, to) in [(&a, &b), (&b, &a)] {
        let mut cmd = from.ns.command("ping");
        cmd.args([
            "-n", "-c", "3", "-W", "2", "-i", "0.2", "-M", "do", "-s", "1392", &to.tunnel,
        ]);
        let out = run_with_timeout(&mut cmd, Duration::from_secs(20))?;
        assert!(
            out.status.success() && out.stdout.contains("3 received"),
            "full-size ping {} -> {} failed:\n{}{}",
            from.tunnel,
            to.tunnel,
            out.stdout,
            out.stderr
        );
    }
    let mut cmd = a.ns.command("ping");
    cmd.args([
        "-n", "-c", "1", "-W", "2", "-M", "do", "-s", "1393", &b.tunnel,
    ]);
    let out = run_with_timeout(&mut cmd, Duration::from_secs(20))?;
    assert!(
        !out.status.success(),
        "a packet above the MTU went out with DF"
    );
    Ok(())
}
