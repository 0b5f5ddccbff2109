//! `DataPlane` against a real `flowshield daemon` (needs root and
//! /dev/net/tun). The binary is taken from `FLOWSHIELD_BIN`, else from the
//! target directory these tests were built in (`cargo build -p
//! flowshield-tunnel` puts it there); without it, or without root, the test
//! says so and passes without checking anything.

use flowshield_market::dataplane::DataPlane;
use flowshield_proto::WgPublicKey;
use flowshield_tunnel::uapi::client;
use std::io::{BufRead, BufReader};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

fn flowshield_bin() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("FLOWSHIELD_BIN") {
        return Some(PathBuf::from(path));
    }
    // .../target/debug/deps/dataplane-HASH -> .../target/debug/flowshield
    let exe = std::env::current_exe().ok()?;
    let candidate = exe.parent()?.parent()?.join("flowshield");
    candidate.exists().then_some(candidate)
}

struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        // SIGTERM lets the daemon remove its socket and interface.
        send_sigterm(self.0.id());
        let _ = self.0.wait();
    }
}

fn send_sigterm(pid: u32) {
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
}

fn start_daemon(bin: &PathBuf, iface: &str) -> Option<Daemon> {
    let mut child = Command::new(bin)
        .args(["daemon", iface])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let stdout = child.stdout.take()?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let daemon = Daemon(child);
    match rx.recv_timeout(Duration::from_secs(15)) {
        Ok(line) if line.trim() == "ready" => Some(daemon),
        _ => None,
    }
}

#[tokio::test]
async fn adds_and_removes_a_peer_on_a_real_daemon() {
    let Some(bin) = flowshield_bin() else {
        eprintln!("skipped: no flowshield binary (cargo build -p flowshield-tunnel, or set FLOWSHIELD_BIN)");
        return;
    };
    let iface = format!("fsdp{}", std::process::id() % 10_000);
    let Some(_daemon) = start_daemon(&bin, &iface) else {
        eprintln!("skipped: flowshield daemon did not start (needs root and /dev/net/tun)");
        return;
    };
    let key = WgPublicKey([0x42; 32]);
    let plane = DataPlane::new(&iface);
    plane
        .add_peer(&key, Ipv4Addr::new(10, 77, 0, 2))
        .await
        .unwrap();
    let snapshot = client::get(&iface).unwrap();
    assert_eq!(snapshot.peers.len(), 1);
    assert_eq!(snapshot.peers[0].public_key.0, key.0);
    let ips: Vec<String> = snapshot.peers[0]
        .allowed_ips
        .iter()
        .map(|n| n.to_string())
        .collect();
    assert_eq!(ips, vec!["10.77.0.2/32"]);

    // Re-adding with a new address replaces the allowed IP.
    plane
        .add_peer(&key, Ipv4Addr::new(10, 77, 0, 3))
        .await
        .unwrap();
    let snapshot = client::get(&iface).unwrap();
    let ips: Vec<String> = snapshot.peers[0]
        .allowed_ips
        .iter()
        .map(|n| n.to_string())
        .collect();
    assert_eq!(ips, vec!["10.77.0.3/32"]);

    plane.remove_peer(&key).await.unwrap();
    assert!(client::get(&iface).unwrap().peers.is_empty());
}
