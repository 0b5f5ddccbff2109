//! `DataPlane` against a real `flowshield daemon` in a network namespace
//! (flowshield-e2e's `Daemon`: needs root, /dev/net/tun and the
//! `flowshield` binary from `FLOWSHIELD_BIN` or this target directory,
//! `cargo build -p flowshield-tunnel`). A missing requirement fails the
//! test with what to do.

use flowshield_e2e::daemon::{Daemon, Implementation};
use flowshield_e2e::netns::Netns;
use flowshield_market::dataplane::DataPlane;
use flowshield_proto::WgPublicKey;
use flowshield_tunnel::uapi::client;
use std::net::Ipv4Addr;

#[tokio::test]
async fn adds_and_removes_a_peer_on_a_real_daemon() {
    let ns = Netns::new().expect("namespace");
    let iface = flowshield_e2e::unique_iface();
    let _daemon = Daemon::spawn(&ns, Implementation::Flowshield, &iface).expect("data plane");
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
