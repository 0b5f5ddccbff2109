//! Sticky source address: a multi-homed daemon answers from the local
//! address its peer wrote to (IP_PKTINFO / IPV6_PKTINFO), over IPv4 and
//! IPv6, so the peer's view of its endpoint stays the address it chose.
//! Without it the kernel picks the source, the peer "roams" to that other
//! address, and a NAT or firewall in front of the multi-homed host would
//! drop the replies.

use flowshield_e2e::daemon::Implementation::Flowshield;
use flowshield_e2e::netns::{Netns, VethPair};
use flowshield_e2e::site::{PeerSpec, Site};
use flowshield_e2e::traffic::ping_first;

/// Turns IPv6 on in `ns` (the harness turns it off) for `dev` and adds
/// `cidrs` without duplicate address detection, so they are usable at once.
fn add_addresses(ns: &Netns, dev: &str, cidrs: &[&str]) -> anyhow::Result<()> {
    for sysctl in [
        "net.ipv6.conf.all.disable_ipv6=0".to_string(),
        format!("net.ipv6.conf.{dev}.disable_ipv6=0"),
    ] {
        ns.run(&["sysctl", "-q", "-w", &sysctl])?;
    }
    for cidr in cidrs {
        if cidr.contains(':') {
            ns.ip(&["addr", "add", cidr, "dev", dev, "nodad"])?;
        } else {
            ns.ip(&["addr", "add", cidr, "dev", dev])?;
        }
    }
    Ok(())
}

/// A has two IPv4 and two IPv6 addresses on one link; B sets A's endpoint to
/// each in turn and pings through the tunnel: A's replies must come from
/// that very address, so B's endpoint for A does not move.
#[test]
fn replies_come_from_the_address_the_peer_wrote_to() -> anyhow::Result<()> {
    let mut a = Site::new("198.18.0.1", "10.77.0.1", 51820)?;
    let mut b = Site::new("198.18.0.2", "10.77.0.2", 51821)?;
    let veth = VethPair::new(&a.ns, "198.18.0.1/24", &b.ns, "198.18.0.2/24")?;
    add_addresses(
        &a.ns,
        &veth.a_dev,
        &["198.18.0.11/24", "fd00:aa::1/96", "fd00:aa::11/96"],
    )?;
    add_addresses(&b.ns, &veth.b_dev, &["fd00:aa::2/96"])?;
    a.start(Flowshield)?;
    b.start(Flowshield)?;
    a.wg_set(&[PeerSpec::new(&b).without_endpoint()])?;
    b.wg_set(&[PeerSpec::new(&a)])?;
    a.link_up()?;
    b.link_up()?;

    // Each address first with the other one of its family used before, so
    // neither order of the kernel's own preference can pass by chance.
    for endpoint in [
        "198.18.0.11:51820",
        "198.18.0.1:51820",
        "198.18.0.11:51820",
        "[fd00:aa::11]:51820",
        "[fd00:aa::1]:51820",
        "[fd00:aa::11]:51820",
    ] {
        flowshield_e2e::wg::wg(&[
            "set",
            &b.iface,
            "peer",
            &a.keys.public,
            "endpoint",
            endpoint,
        ])?;
        ping_first(&b.ns, &a.tunnel, 3)?;
        assert_eq!(
            b.peer_state(&a)?.endpoint.as_deref(),
            Some(endpoint),
            "A answered from another address than B wrote to ({endpoint})"
        );
    }
    assert!(a.daemon_mut().is_running() && b.daemon_mut().is_running());
    Ok(())
}

/// Sticky, but not too sticky: when the address A answered from is removed,
/// A falls back to one it still has and the tunnel keeps working (IPv4 and
/// IPv6).
#[test]
fn a_removed_source_address_is_given_up() -> anyhow::Result<()> {
    let mut a = Site::new("198.18.0.1", "10.77.0.1", 51820)?;
    let mut b = Site::new("198.18.0.2", "10.77.0.2", 51821)?;
    let veth = VethPair::new(&a.ns, "198.18.0.1/24", &b.ns, "198.18.0.2/24")?;
    a.ns.run(&[
        "sysctl",
        "-q",
        "-w",
        &format!("net.ipv4.conf.{}.promote_secondaries=1", veth.a_dev),
    ])?;
    add_addresses(&a.ns, &veth.a_dev, &["fd00:aa::1/96"])?;
    add_addresses(&b.ns, &veth.b_dev, &["fd00:aa::2/96"])?;
    a.start(Flowshield)?;
    b.start(Flowshield)?;
    // A initiates here, so its sticky source comes from B's replies.
    a.wg_set(&[PeerSpec::new(&b)])?;
    b.wg_set(&[PeerSpec::new(&a).without_endpoint()])?;
    a.link_up()?;
    b.link_up()?;
    ping_first(&a.ns, &b.tunnel, 3)?;
    a.ns.ip(&["addr", "add", "198.18.0.10/24", "dev", &veth.a_dev])?;
    a.ns.ip(&["addr", "del", "198.18.0.1/24", "dev", &veth.a_dev])?;
    ping_first(&a.ns, &b.tunnel, 3)?;
    assert_eq!(
        b.peer_state(&a)?.endpoint.as_deref(),
        Some("198.18.0.10:51820")
    );

    flowshield_e2e::wg::wg(&[
        "set",
        &a.iface,
        "peer",
        &b.keys.public,
        "endpoint",
        "[fd00:aa::2]:51821",
    ])?;
    ping_first(&a.ns, &b.tunnel, 3)?;
    a.ns.ip(&["addr", "add", "fd00:aa::10/96", "dev", &veth.a_dev, "nodad"])?;
    a.ns.ip(&["addr", "del", "fd00:aa::1/96", "dev", &veth.a_dev])?;
    ping_first(&a.ns, &b.tunnel, 3)?;
    assert_eq!(
        b.peer_state(&a)?.endpoint.as_deref(),
        Some("[fd00:aa::10]:51820")
    );
    Ok(())
}
