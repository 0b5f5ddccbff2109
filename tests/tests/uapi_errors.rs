//! Malformed UAPI input, sent straight to the daemon's socket (the socket
//! file is on the shared filesystem, so the test process connects directly).
//! Every bad request gets a non-zero `errno=`; afterwards the daemon still
//! runs, `wg show` still works and the configuration is exactly what it was:
//! a failed `set` transaction changes nothing, even when its earlier lines
//! were valid.

use flowshield_e2e::daemon::Implementation::Flowshield;
use flowshield_e2e::site::{PeerSpec, Site};
use flowshield_e2e::wg::{self, reply_errno, uapi_request, KeyPair};
use std::io::Write;

/// A flowshield daemon configured with one peer (no underlay: nothing is
/// ever sent), and the peer's key pair.
fn configured_daemon() -> anyhow::Result<(Site, Site)> {
    let mut a = Site::new("198.18.0.1", "10.77.0.1", 51820)?;
    let b = Site::new("198.18.0.2", "10.77.0.2", 51821)?;
    a.start(Flowshield)?;
    a.wg_set(&[PeerSpec::new(&b).allowed_ips(&["10.77.0.2/32", "10.77.1.0/24"])])?;
    Ok((a, b))
}

/// Sends each request, checks the rejection and that nothing changed.
fn expect_rejected(a: &mut Site, cases: &[(&str, String)]) -> anyhow::Result<()> {
    let baseline = a.dump()?;
    assert_eq!(baseline.peers.len(), 1, "setup: {baseline:#?}");
    let mut failures = Vec::new();
    for (name, request) in cases {
        let reply = uapi_request(&a.iface, request)?;
        match reply_errno(&reply) {
            Some(0) => failures.push(format!("{name}: accepted (reply {reply:?})")),
            None => failures.push(format!("{name}: reply without errno: {reply:?}")),
            Some(_) => {}
        }
        if !a.daemon_mut().is_running() {
            panic!(
                "daemon died after case '{name}'; log:\n{}",
                a.daemon_mut().log()
            );
        }
        wg::wg(&["show", &a.iface])?;
        let now = a.dump()?;
        if now != baseline {
            failures.push(format!(
                "{name}: configuration changed\nbefore: {baseline:#?}\nafter: {now:#?}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Still configurable: a valid change through `wg` applies.
    wg::wg(&["set", &a.iface, "listen-port", "51999"])?;
    assert_eq!(
        a.dump()?.listen_port,
        51999,
        "valid set after the bad ones did not apply"
    );
    Ok(())
}

#[test]
fn malformed_set_lines_are_rejected() -> anyhow::Result<()> {
    let (mut a, b) = configured_daemon()?;
    let peer = b.keys.public_hex();
    let set = |body: &str| format!("set=1\n{body}\n\n");
    let cases = [
        ("unknown key", set("frobnicate=1")),
        (
            "bad hex private key",
            set(&format!("private_key={}", "zz".repeat(32))),
        ),
        ("short private key", set("private_key=abcd")),
        ("port out of range", set("listen_port=70000")),
        ("port not a number", set("listen_port=abc")),
        ("fwmark not a number", set("fwmark=-1")),
        ("bad bool", set("replace_peers=maybe")),
        (
            "bad public key",
            set(&format!("public_key={}", "g".repeat(64))),
        ),
        (
            "prefix too long",
            set(&format!("public_key={peer}\nallowed_ip=10.77.0.0/33")),
        ),
        (
            "bad address in CIDR",
            set(&format!("public_key={peer}\nallowed_ip=10.77.0.300/32")),
        ),
        (
            "CIDR without prefix",
            set(&format!("public_key={peer}\nallowed_ip=nonsense")),
        ),
        (
            "bad endpoint",
            set(&format!("public_key={peer}\nendpoint=nonsense")),
        ),
        (
            "endpoint without port",
            set(&format!("public_key={peer}\nendpoint=198.18.0.9")),
        ),
        (
            "keepalive out of range",
            set(&format!(
                "public_key={peer}\npersistent_keepalive_interval=70000"
            )),
        ),
        (
            "protocol version 2",
            set(&format!("public_key={peer}\nprotocol_version=2")),
        ),
        ("peer key before public_key", set("endpoint=198.18.0.9:1")),
        (
            "allowed_ip before public_key",
            set("allowed_ip=10.77.0.0/24"),
        ),
        (
            "interface key after public_key",
            set(&format!("public_key={peer}\nlisten_port=1234")),
        ),
        ("line without '='", set("junk")),
        (
            "huge value",
            set(&format!("private_key={}", "a".repeat(100_000))),
        ),
        ("unknown command", "frobnicate=1\n\n".to_string()),
    ];
    expect_rejected(&mut a, &cases)
}

#[test]
fn failed_transactions_are_atomic() -> anyhow::Result<()> {
    let (mut a, b) = configured_daemon()?;
    let peer = b.keys.public_hex();
    let other = KeyPair::generate()?;
    let cases = [
        (
            "interface changes then an unknown key",
            format!(
                "set=1\nlisten_port=51999\nprivate_key={}\nfwmark=7\nreplace_peers=true\npublic_key={}\nallowed_ip=10.77.5.0/24\nbogus=1\n\n",
                other.private_hex(),
                other.public_hex()
            ),
        ),
        (
            "peer removed then a bad CIDR",
            format!(
                "set=1\npublic_key={peer}\nremove=true\npublic_key={}\nallowed_ip=10.77.0.0/40\n\n",
                other.public_hex()
            ),
        ),
        (
            "allowed IPs replaced, endpoint set, then a bad keepalive",
            format!(
                "set=1\npublic_key={peer}\nreplace_allowed_ips=true\nallowed_ip=10.77.9.0/24\nendpoint=198.18.0.77:5\npersistent_keepalive_interval=abc\n\n"
            ),
        ),
        (
            "new peer then a bad endpoint",
            format!(
                "set=1\npublic_key={}\nallowed_ip=10.77.8.0/24\nendpoint=198.18.0.1:\n\n",
                other.public_hex()
            ),
        ),
    ];
    expect_rejected(&mut a, &cases)?;
    Ok(())
}

/// A request cut off before its terminating empty line (client closed the
/// connection) is not applied, and the daemon keeps serving.
#[test]
fn incomplete_request_is_not_applied() -> anyhow::Result<()> {
    let (mut a, _b) = configured_daemon()?;
    let baseline = a.dump()?;
    {
        let mut stream = std::os::unix::net::UnixStream::connect(wg::socket_path(&a.iface))?;
        stream.write_all(b"set=1\nlisten_port=51999\nreplace_peers=true\n")?;
        stream.shutdown(std::net::Shutdown::Write)?;
        stream.set_read_timeout(Some(std::time::Duration::from_secs(5)))?;
        let mut reply = String::new();
        let _ = std::io::Read::read_to_string(&mut stream, &mut reply);
        assert_ne!(
            reply_errno(&reply),
            Some(0),
            "incomplete request acknowledged: {reply:?}"
        );
    }
    assert!(a.daemon_mut().is_running(), "daemon died");
    assert_eq!(
        a.dump()?,
        baseline,
        "incomplete request changed the configuration"
    );
    // Many clients that connect and vanish do not wedge the server.
    for _ in 0..50 {
        drop(std::os::unix::net::UnixStream::connect(wg::socket_path(
            &a.iface,
        ))?);
    }
    let reply = uapi_request(&a.iface, "get=1\n\n")?;
    assert_eq!(reply_errno(&reply), Some(0), "get=1 failed: {reply:?}");
    assert!(reply.contains("listen_port=51820"), "{reply:?}");
    Ok(())
}
