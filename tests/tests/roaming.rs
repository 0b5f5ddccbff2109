//! Endpoint roaming and persistent keepalive between two flowshield daemons
//! configured with `wg set`.

use flowshield_e2e::daemon::Implementation::Flowshield;
use flowshield_e2e::process::wait_for;
use flowshield_e2e::site::{two_sites, PeerSpec};
use flowshield_e2e::traffic::{ping, ping_first};
use std::time::Duration;

/// B moves from 198.18.0.2 to 198.18.0.3 (the old address is deleted) and
/// sends through the tunnel: A must follow it to the new endpoint, and A's
/// own traffic must then reach B there.
#[test]
fn endpoint_follows_a_roaming_peer() -> anyhow::Result<()> {
    let (mut a, mut b) = two_sites()?;
    a.start(Flowshield)?;
    b.start(Flowshield)?;
    a.wg_set(&[PeerSpec::new(&b)])?;
    b.wg_set(&[PeerSpec::new(&a)])?;
    a.link_up()?;
    b.link_up()?;
    ping_first(&b.ns, &a.tunnel, 3)?;
    assert_eq!(
        a.peer_state(&b)?.endpoint.as_deref(),
        Some("198.18.0.2:51821")
    );

    let veth =
        b.ns.ip(&["-o", "-4", "addr", "show", "to", "198.18.0.2"])?
            .split_whitespace()
            .nth(1)
            .map(str::to_string)
            .expect("B's veth");
    b.ns.run(&[
        "sysctl",
        "-q",
        "-w",
        &format!("net.ipv4.conf.{veth}.promote_secondaries=1"),
    ])?;
    b.ns.ip(&["addr", "add", "198.18.0.3/24", "dev", &veth])?;
    b.ns.ip(&["addr", "del", "198.18.0.2/24", "dev", &veth])?;
    b.underlay = "198.18.0.3".into();

    // B's first packets from the new address are its pings.
    ping_first(&b.ns, &a.tunnel, 3)?;
    let endpoint = a.peer_state(&b)?.endpoint;
    assert_eq!(
        endpoint.as_deref(),
        Some("198.18.0.3:51821"),
        "A did not follow B"
    );
    ping(&a.ns, &b.tunnel, 3)?;
    assert!(b.daemon_mut().is_running() && a.daemon_mut().is_running());
    Ok(())
}

/// With persistent keepalive 1 s on A, B keeps receiving from A while no
/// traffic flows: B's rx_bytes for A grows in at least two steps within a
/// few seconds (a passive keepalive would be a single step after 10 s).
#[test]
fn persistent_keepalive_flows_without_traffic() -> anyhow::Result<()> {
    let (mut a, mut b) = two_sites()?;
    a.start(Flowshield)?;
    b.start(Flowshield)?;
    a.wg_set(&[PeerSpec::new(&b).keepalive(1)])?;
    b.wg_set(&[PeerSpec::new(&a)])?;
    a.link_up()?;
    b.link_up()?;
    ping_first(&a.ns, &b.tunnel, 3)?;
    assert_eq!(a.peer_state(&b)?.persistent_keepalive, "1");

    let mut rx = b.peer_state(&a)?.rx_bytes;
    let mut steps = 0;
    let start = std::time::Instant::now();
    wait_for("two keepalives from A at B", Duration::from_secs(6), || {
        let now = b.peer_state(&a)?.rx_bytes;
        if now > rx {
            steps += 1;
            rx = now;
        }
        Ok((steps >= 2).then_some(()))
    })?;
    // Two 1 s keepalives cannot arrive much faster than a second apart.
    assert!(
        start.elapsed() >= Duration::from_millis(500),
        "rx grew too fast to be keepalives"
    );
    let show = flowshield_e2e::wg::show_json(&a.iface)?;
    let peer = flowshield_e2e::wg::json_peer(&show, &b.keys.public)?;
    assert_eq!(peer["persistent_keepalive"], 1, "{peer:#}");
    Ok(())
}
