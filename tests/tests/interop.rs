//! flowshield ↔ wireguard-go, both configured by the real `wg` (`wg set` on
//! one side, `wg setconf` on the other), addresses by `ip`. Each test starts
//! fresh daemons and lets a different side send the first packet, so each
//! implementation is once the handshake initiator and once the responder;
//! the responder has no endpoint configured and must learn it.

use flowshield_e2e::daemon::Implementation::{self, Flowshield, WireguardGo};
use flowshield_e2e::site::{two_sites, two_sites_wg_keys, PeerSpec};
use flowshield_e2e::traffic::{ping, ping_first, tcp_echo};
use flowshield_e2e::wg;

/// A (`initiator`) knows B's endpoint, B (`responder`) does not. A pings B
/// first; then B pings A back over the endpoint it learned.
fn initiator_then_responder(
    initiator: Implementation,
    responder: Implementation,
) -> anyhow::Result<()> {
    let (mut a, mut b) = if initiator == WireguardGo && responder == WireguardGo {
        two_sites_wg_keys()?
    } else {
        two_sites()?
    };
    a.start(initiator)?;
    b.start(responder)?;
    a.wg_set(&[PeerSpec::new(&b)])?;
    b.wg_setconf(&[PeerSpec::new(&a).without_endpoint()])?;
    a.link_up()?;
    b.link_up()?;

    assert_eq!(
        b.peer_state(&a)?.endpoint,
        None,
        "responder starts without endpoint"
    );
    ping_first(&a.ns, &b.tunnel, 3)?;

    for (site, peer) in [(&a, &b), (&b, &a)] {
        let text = wg::wg(&["show", &site.iface, "latest-handshakes"])?;
        let line = text
            .lines()
            .find(|l| l.starts_with(&peer.keys.public))
            .unwrap_or_else(|| {
                panic!(
                    "no peer line in `wg show {} latest-handshakes`: {text}",
                    site.iface
                )
            });
        let secs: u64 = line.split_whitespace().nth(1).unwrap_or("0").parse()?;
        assert!(
            secs > 0,
            "{}: no handshake with {}: {text}",
            site.iface,
            peer.iface
        );
    }
    let learned = b.peer_state(&a)?.endpoint;
    assert_eq!(
        learned.as_deref(),
        Some("198.18.0.1:51820"),
        "responder learned A's endpoint"
    );

    ping(&b.ns, &a.tunnel, 3)?;
    ping(&a.ns, &b.tunnel, 3)?;
    let echoed = tcp_echo(&b.ns, &a.ns, &b.tunnel, 7001, 4 << 20)?;
    assert_eq!(echoed, 4 << 20);
    for site in [&mut a, &mut b] {
        assert!(site.daemon_mut().is_running(), "{} died", site.iface);
    }
    Ok(())
}

#[test]
fn flowshield_initiates_to_wireguard_go() -> anyhow::Result<()> {
    initiator_then_responder(Flowshield, WireguardGo)
}

#[test]
fn wireguard_go_initiates_to_flowshield() -> anyhow::Result<()> {
    initiator_then_responder(WireguardGo, Flowshield)
}

/// The same exchange between two wireguard-go daemons: if this fails, the
/// harness or the machine is broken, not flowshield.
#[test]
fn harness_self_check_wireguard_go_pair() -> anyhow::Result<()> {
    initiator_then_responder(WireguardGo, WireguardGo)
}
