//! Garbage UDP datagrams sent to flowshield's listen port from the peer's
//! namespace (the peer's address, another port) are dropped and counted,
//! do not move the peer's endpoint, and the tunnel keeps working.

use flowshield_e2e::daemon::Implementation::Flowshield;
use flowshield_e2e::netns::VethPair;
use flowshield_e2e::process::{run_with_timeout, wait_for};
use flowshield_e2e::site::{two_running, PeerSpec, Site};
use flowshield_e2e::traffic::{ping, ping_first, pseudo_random, udp_send};
use flowshield_e2e::wg::{self, json_u64};
use std::time::Duration;

/// A WireGuard message header: type byte and three reserved zero bytes,
/// followed by pseudo-random bytes up to `len`.
fn message(kind: u8, len: usize, seed: u64) -> Vec<u8> {
    let mut m = pseudo_random(seed, len);
    m[..4].copy_from_slice(&[kind, 0, 0, 0]);
    m
}

/// Random bytes whose first byte (0x80..) is no WireGuard message type.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut m = pseudo_random(seed, len);
    m[0] |= 0x80;
    m
}

#[test]
fn garbage_is_counted_and_dropped() -> anyhow::Result<()> {
    let (mut a, b) = two_running(Flowshield, Flowshield)?;
    ping_first(&b.ns, &a.tunnel, 3)?;
    let endpoint_before = a.peer_state(&b)?.endpoint;
    assert_eq!(endpoint_before.as_deref(), Some("198.18.0.2:51821"));
    let before = wg::stats(&a.iface)?;
    let counter = |stats: &std::collections::BTreeMap<String, u64>, name: &str| {
        *stats
            .get(name)
            .unwrap_or_else(|| panic!("stats=1 has no {name}: {stats:?}"))
    };

    // Not WireGuard messages at all: must count as malformed.
    let mut malformed = Vec::new();
    for (i, len) in [1usize, 7, 31, 100, 148, 500].into_iter().enumerate() {
        malformed.push(noise(len, i as u64));
    }
    malformed.push(message(1, 60, 10)); // truncated handshake initiation (148)
    malformed.push(message(1, 147, 11)); // one byte short
    malformed.push(message(2, 40, 12)); // truncated handshake response (92)
    malformed.push(message(3, 20, 13)); // truncated cookie reply (64)
    malformed.push(message(4, 16, 14)); // data message shorter than its header
    malformed.push(message(0, 148, 15)); // type 0
    malformed.push(message(5, 148, 16)); // no such type
    malformed.push(message(200, 92, 17)); // no such type
    malformed.push(message(1, 1000, 18)); // oversized initiation
    malformed.push(message(2, 2000, 19)); // oversized response
    malformed.push(noise(9000, 20)); // jumbo, fragmented on the veth
    malformed.push(noise(65000, 21)); // near the UDP maximum
                                      // Well-formed shapes with bad contents: a correctly sized initiation
                                      // whose MACs fail, data for a session index nobody has. Counted as
                                      // malformed or as unknown-peer, depending on where they fail.
    let bad_contents = [
        message(1, 148, 30),
        message(4, 64, 31),
        message(4, 1452, 32),
    ];

    let mut all = malformed.clone();
    all.extend(bad_contents.iter().cloned());
    all.push(Vec::new()); // empty datagram: must not crash anything
    let dst = format!("{}:{}", a.underlay, a.port);
    udp_send(&b.ns, &dst, Some("198.18.0.2:40000"), &all)?;

    let (n_malformed, n_total) = (
        malformed.len() as u64,
        (malformed.len() + bad_contents.len()) as u64,
    );
    let mut last = before.clone();
    let settled = wait_for(
        "the drop counters to count the garbage",
        Duration::from_secs(5),
        || {
            last = wg::stats(&a.iface)?;
            let m = counter(&last, "malformed_packets") - counter(&before, "malformed_packets");
            let u =
                counter(&last, "unknown_peer_packets") - counter(&before, "unknown_peer_packets");
            Ok((m >= n_malformed && m + u >= n_total).then_some(()))
        },
    );
    assert!(
        settled.is_ok(),
        "sent {n_malformed} malformed + {} bad-content datagrams; counters went from {before:?} to {last:?}",
        bad_contents.len()
    );

    // `show --json` reports the same counters.
    let show = wg::show_json(&a.iface)?;
    let now = wg::stats(&a.iface)?;
    for name in ["malformed_packets", "unknown_peer_packets"] {
        assert_eq!(
            json_u64(&show["counters"], name)?,
            counter(&now, name),
            "show --json and stats=1 disagree on {name}: {show:#}"
        );
    }

    assert!(a.daemon_mut().is_running(), "daemon died from garbage");
    assert_eq!(
        a.peer_state(&b)?.endpoint,
        endpoint_before,
        "garbage moved the endpoint"
    );
    ping(&b.ns, &a.tunnel, 3)?;
    ping(&a.ns, &b.tunnel, 3)?;
    Ok(())
}

/// A genuine handshake initiation from a key A does not know (C, on a
/// second veth) is counted as unknown-peer, gets no answer, and does not
/// disturb A's real peer.
#[test]
fn unknown_peer_handshakes_are_counted() -> anyhow::Result<()> {
    let (mut a, b) = two_running(Flowshield, Flowshield)?;
    let mut c = Site::new("198.18.3.3", "10.77.3.3", 51823)?;
    VethPair::new(&a.ns, "198.18.3.1/24", &c.ns, "198.18.3.3/24")?;
    c.start(Flowshield)?;
    // C thinks A is its peer, at A's address on the C link.
    let a_for_c = PeerSpec::new(&a)
        .endpoint("198.18.3.1:51820")
        .allowed_ips(&["10.77.3.1/32"]);
    c.wg_set(&[a_for_c])?;
    c.link_up()?;
    ping_first(&b.ns, &a.tunnel, 3)?;
    let before = wg::stats(&a.iface)?;

    // C's pings trigger handshake initiations that A must refuse.
    let mut cmd = c.ns.command("ping");
    cmd.args(["-n", "-c", "2", "-W", "1", "10.77.3.1"]);
    let out = run_with_timeout(&mut cmd, Duration::from_secs(10))?;
    assert!(
        !out.status.success(),
        "an unknown key got through: {}",
        out.stdout
    );
    let mut last = before.clone();
    let counted = wait_for(
        "unknown_peer_packets to grow",
        Duration::from_secs(5),
        || {
            last = wg::stats(&a.iface)?;
            Ok((last["unknown_peer_packets"] > before["unknown_peer_packets"]).then_some(()))
        },
    );
    assert!(counted.is_ok(), "counters went from {before:?} to {last:?}");
    assert_eq!(c.peer_state(&a)?.latest_handshake, 0, "A answered C");
    assert!(a.daemon_mut().is_running());
    ping(&b.ns, &a.tunnel, 3)?;
    Ok(())
}
