//! `flowshield up` / `flowshield down` with wg-quick files, flowshield on
//! both ends: traffic, `show --json`, hooks, routes, teardown, config errors,
//! and routing by AllowedIPs between three namespaces.

use flowshield_e2e::daemon::STOP_TIMEOUT;
use flowshield_e2e::netns::VethPair;
use flowshield_e2e::process::{run_with_timeout, wait_for};
use flowshield_e2e::site::{two_sites, PeerSpec, Site};
use flowshield_e2e::traffic::{ping, ping_first, tcp_echo};
use flowshield_e2e::wg::{self, json_peer, json_u64};
use std::path::Path;

fn hooks(dir: &Path) -> String {
    let dir = dir.display();
    format!("PostUp = touch {dir}/%i.post-up\nPostDown = touch {dir}/%i.post-down\n")
}

#[test]
fn up_ping_tcp_show_down() -> anyhow::Result<()> {
    let (mut a, mut b) = two_sites()?;
    a.write_quick(&[PeerSpec::new(&b)], &hooks(a.dir.path()))?;
    b.write_quick(&[PeerSpec::new(&a)], "")?;
    a.quick_up()?;
    b.quick_up()?;

    // `up` configured the link: address, MTU, up, a route for the peer's
    // AllowedIPs (the address is a /32, so nothing else reaches B), hook.
    let link = a.ns.ip(&["link", "show", &a.iface])?;
    assert!(link.contains("mtu 1420"), "MTU not set: {link}");
    assert!(
        link.contains(",UP") || link.contains("<UP"),
        "link not up: {link}"
    );
    let addrs = a.ns.ip(&["-4", "addr", "show", "dev", &a.iface])?;
    assert!(addrs.contains("10.77.0.1/32"), "address missing: {addrs}");
    let route = a.ns.ip(&["route", "get", &b.tunnel])?;
    assert!(
        route.contains(&format!("dev {}", a.iface)),
        "no route to B via the tunnel: {route}"
    );
    let post_up = a.dir.path().join(format!("{}.post-up", a.iface));
    assert!(post_up.exists(), "PostUp hook (with %i) did not run");
    let dump = a.dump()?;
    assert_eq!(dump.listen_port, 51820);
    assert_eq!(dump.public_key, a.keys.public);

    ping_first(&a.ns, &b.tunnel, 3)?;
    ping(&b.ns, &a.tunnel, 3)?;
    ping(&a.ns, &b.tunnel, 3)?;
    let len = 1 << 20;
    assert_eq!(tcp_echo(&b.ns, &a.ns, &b.tunnel, 7001, len)?, len);

    let show = wg::show_json(&a.iface)?;
    assert_eq!(show["interface"], a.iface.as_str(), "{show:#}");
    assert_eq!(show["public_key"], a.keys.public.as_str(), "{show:#}");
    assert_eq!(json_u64(&show, "listen_port")?, 51820);
    assert!(
        show["counters"]["malformed_packets"].is_u64(),
        "no counters: {show:#}"
    );
    let peer = json_peer(&show, &b.keys.public)?;
    assert!(
        json_u64(peer, "latest_handshake")? > 0,
        "no handshake: {peer:#}"
    );
    // The echo alone moved 1 MiB each way.
    assert!(
        json_u64(peer, "tx_bytes")? > len as u64,
        "tx_bytes too small: {peer:#}"
    );
    assert!(
        json_u64(peer, "rx_bytes")? > len as u64,
        "rx_bytes too small: {peer:#}"
    );
    assert_eq!(peer["endpoint"], "198.18.0.2:51821", "{peer:#}");
    assert_eq!(
        peer["allowed_ips"],
        serde_json::json!(["10.77.0.2/32"]),
        "{peer:#}"
    );

    // `down FILE`: hooks, link deleted, daemon gone, socket removed.
    let quick = a.quick.as_mut().expect("A is up");
    let pid = quick.daemon_pid().expect("A's daemon runs");
    let out = quick.down()?;
    assert!(
        out.status.success(),
        "flowshield down failed: {}",
        out.stderr
    );
    assert!(
        a.ns.ip(&["link", "show", &a.iface]).is_err(),
        "link still exists after down"
    );
    wait_for("A's daemon to exit", STOP_TIMEOUT, || {
        Ok((!Path::new(&format!("/proc/{pid}")).exists()).then_some(()))
    })?;
    assert!(
        !wg::socket_path(&a.iface).exists(),
        "socket left after down"
    );
    let post_down = a.dir.path().join(format!("{}.post-down", a.iface));
    assert!(post_down.exists(), "PostDown hook did not run");

    // B by interface name this time.
    let b_iface = b.iface.clone();
    let out = b.quick.as_mut().expect("B is up").down_with(&b_iface)?;
    assert!(
        out.status.success(),
        "flowshield down IFACE failed: {}",
        out.stderr
    );
    assert!(
        b.ns.ip(&["link", "show", &b.iface]).is_err(),
        "B's link still exists"
    );
    Ok(())
}

/// A config error exits non-zero, names file, line and key, and leaves no
/// interface or daemon behind.
#[test]
fn up_rejects_bad_config() -> anyhow::Result<()> {
    let (a, b) = two_sites()?;
    let path = a.quick_path();
    // Line 4 is the bad one.
    let text = format!(
        "[Interface]\nPrivateKey = {}\nAddress = 10.77.0.1/32\nListenPort = notaport\n\n[Peer]\nPublicKey = {}\nAllowedIPs = 10.77.0.2/32\n",
        a.keys.private, b.keys.public
    );
    std::fs::write(&path, text)?;
    let mut cmd = a.ns.command(flowshield_e2e::flowshield_bin()?);
    cmd.arg("up").arg(&path);
    let out = run_with_timeout(&mut cmd, std::time::Duration::from_secs(30))?;
    if out.status.success() || wg::socket_path(&a.iface).exists() {
        // Take it down so nothing outlives the test, then fail below.
        let _ = a.ns.run(&[
            &flowshield_e2e::flowshield_bin()?.to_string_lossy(),
            "down",
            &a.iface,
        ]);
    }
    assert!(!out.status.success(), "up accepted ListenPort = notaport");
    let msg = out.stderr;
    assert!(
        msg.contains(&path.display().to_string()),
        "message does not name the file: {msg}"
    );
    assert!(
        msg.contains("ListenPort"),
        "message does not name the key: {msg}"
    );
    assert!(
        msg.contains(":4") || msg.contains("line 4"),
        "message does not name line 4: {msg}"
    );
    assert!(
        a.ns.ip(&["link", "show", &a.iface]).is_err(),
        "interface created anyway"
    );
    assert!(!wg::socket_path(&a.iface).exists(), "daemon started anyway");
    Ok(())
}

/// A has two peers: B with AllowedIPs 10.77.0.0/24 and C with 10.77.0.3/32.
/// Longest prefix wins: 10.77.0.2 goes to B, 10.77.0.3 to C, although B's
/// /24 covers it too. Underlay: A–B 198.18.1.0/24, A–C 198.18.2.0/24.
#[test]
fn routes_by_allowed_ips_between_three_namespaces() -> anyhow::Result<()> {
    let mut a = Site::new("198.18.1.1", "10.77.0.1", 51820)?;
    let mut b = Site::new("198.18.1.2", "10.77.0.2", 51821)?;
    let mut c = Site::new("198.18.2.3", "10.77.0.3", 51822)?;
    VethPair::new(&a.ns, "198.18.1.1/24", &b.ns, "198.18.1.2/24")?;
    VethPair::new(&a.ns, "198.18.2.1/24", &c.ns, "198.18.2.3/24")?;

    a.write_quick(
        &[
            PeerSpec::new(&b).allowed_ips(&["10.77.0.0/24"]),
            PeerSpec::new(&c).allowed_ips(&["10.77.0.3/32"]),
        ],
        "",
    )?;
    // B and C know A only by key and learn its endpoint from its handshake.
    b.write_quick(&[PeerSpec::new(&a).without_endpoint()], "")?;
    c.write_quick(&[PeerSpec::new(&a).without_endpoint()], "")?;
    for site in [&mut a, &mut b, &mut c] {
        site.quick_up()?;
    }
    // Bytes `site` received from `peer`, per `wg show dump`.
    let rx_from =
        |site: &Site, peer: &Site| -> anyhow::Result<u64> { Ok(site.peer_state(peer)?.rx_bytes) };

    ping_first(&a.ns, &c.tunnel, 3)?;
    assert_eq!(rx_from(&b, &a)?, 0, "B received something meant for C");
    assert!(
        b.peer_state(&a)?.latest_handshake == 0,
        "A shook hands with B for C's address"
    );
    let c_before = rx_from(&c, &a)?;
    assert!(c_before > 0, "C received nothing");

    ping_first(&a.ns, &b.tunnel, 3)?;
    ping(&b.ns, &a.tunnel, 3)?;
    ping(&c.ns, &a.tunnel, 3)?;
    let c_after = rx_from(&c, &a)?;
    // Pings to B must not reach C: C may see keepalives (32 bytes) at most.
    let b_base = rx_from(&b, &a)?;
    ping(&a.ns, &b.tunnel, 5)?;
    assert!(
        rx_from(&b, &a)? >= b_base + 5 * 84,
        "B did not get the 5 pings"
    );
    assert!(
        rx_from(&c, &a)? < c_after + 84,
        "C received traffic for B's address ({} -> {} bytes)",
        c_after,
        rx_from(&c, &a)?
    );

    let show = wg::show_json(&a.iface)?;
    let peer_b = json_peer(&show, &b.keys.public)?;
    let peer_c = json_peer(&show, &c.keys.public)?;
    assert_eq!(peer_b["allowed_ips"], serde_json::json!(["10.77.0.0/24"]));
    assert_eq!(peer_c["allowed_ips"], serde_json::json!(["10.77.0.3/32"]));
    assert!(json_u64(peer_b, "latest_handshake")? > 0 && json_u64(peer_c, "latest_handshake")? > 0);
    Ok(())
}

/// `flowshield -v --log-format json up` hands its log flags to the daemon:
/// its log file holds one JSON object per line, debug events included, and
/// never the private key; without flags the daemon logs human lines at info.
#[test]
fn up_passes_log_flags_to_the_daemon() -> anyhow::Result<()> {
    use flowshield_e2e::daemon::{quick_log_path, QuickUp};
    let (mut a, mut b) = two_sites()?;
    a.write_quick(&[PeerSpec::new(&b)], "")?;
    b.write_quick(&[PeerSpec::new(&a)], "")?;
    let _ = std::fs::remove_file(quick_log_path(&a.iface));
    let _ = std::fs::remove_file(quick_log_path(&b.iface));
    a.quick = Some(QuickUp::up_with_flags(
        &a.ns,
        &a.quick_path(),
        &["-v", "--log-format", "json"],
    )?);
    b.quick_up()?;
    ping_first(&a.ns, &b.tunnel, 3)?;

    let json_log = std::fs::read_to_string(quick_log_path(&a.iface))?;
    let events: Vec<serde_json::Value> = json_log
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).map_err(|e| anyhow::anyhow!("not JSON ({e}): {l}")))
        .collect::<anyhow::Result<_>>()?;
    let find = |level: &str, message: &str| {
        events
            .iter()
            .find(|e| e["level"] == level && e["fields"]["message"] == message)
    };
    let ready = find("INFO", "daemon ready").ok_or_else(|| anyhow::anyhow!("{json_log}"))?;
    assert_eq!(ready["fields"]["iface"], a.iface.as_str(), "{ready}");
    let set = find("DEBUG", "UAPI set").ok_or_else(|| anyhow::anyhow!("{json_log}"))?;
    assert_eq!(set["fields"]["private_key"], true, "{set}");
    assert!(!json_log.contains(&a.keys.private), "private key logged");

    let human_log = std::fs::read_to_string(quick_log_path(&b.iface))?;
    assert!(human_log.contains("daemon ready"), "{human_log}");
    assert!(
        !human_log.contains("DEBUG"),
        "debug at default level: {human_log}"
    );
    assert!(
        human_log.lines().all(|l| !l.trim_start().starts_with('{')),
        "{human_log}"
    );
    assert!(!human_log.contains(&b.keys.private), "private key logged");
    Ok(())
}
