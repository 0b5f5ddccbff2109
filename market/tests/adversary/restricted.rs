//! A compromised sidecar: whoever holds the provider's UAPI access tries to
//! read the interface's private key and to reconfigure the interface. The
//! full socket (what the provider used before, opened to its group) hands
//! over the key; the restricted socket it uses now refuses, answering
//! EPERM, and leaves alone peers it did not add.

use flowshield_e2e::daemon::{Daemon, Implementation};
use flowshield_e2e::site::{self as e2e, PeerSpec};
use flowshield_tunnel::uapi::client::{call, call_at, ClientError};
use flowshield_tunnel::uapi::restricted;

fn errno(result: Result<String, ClientError>) -> i32 {
    match result {
        Err(ClientError::Errno { errno, .. }) => errno,
        other => panic!("expected an errno, got {other:?}"),
    }
}

#[test]
fn the_restricted_socket_keeps_the_key_and_the_interface_to_root() {
    let (mut wg, other) = e2e::two_sites().expect("namespaces");
    wg.daemon = Some(
        Daemon::spawn_with_env(
            &wg.ns,
            Implementation::Flowshield,
            &wg.iface,
            &[("FLOWSHIELD_RESTRICTED_GROUP", "0")],
        )
        .expect("data plane"),
    );
    // Root configures the interface and one peer of its own (a verifier's).
    wg.wg_set(&[PeerSpec::new(&other)]).expect("wg set");
    let iface = wg.iface.clone();
    let sock = restricted::socket_path(&iface);
    let private_hex = hex_of(&wg.keys.private);

    // Before: the full socket gives the private key to whoever may use it.
    let full = call(&iface, "get=1").expect("full get");
    assert!(full.contains(&format!("private_key={private_hex}")));

    // The restricted socket: no private key, the public key instead,
    // counters and peers readable.
    let got = call_at(&sock, &iface, "get=1").expect("restricted get");
    assert!(!got.contains("private_key"), "{got}");
    assert!(
        got.contains(&format!("own_public_key={}", hex_of(&wg.keys.public))),
        "{got}"
    );
    assert!(
        got.contains(&format!("public_key={}", hex_of(&other.keys.public))),
        "{got}"
    );
    assert!(got.contains("rx_bytes="), "{got}");

    // Reconfiguring the interface: refused, nothing changed.
    let eperm = libc::EPERM;
    let new_key = "22".repeat(32);
    for request in [
        "set=1\nlisten_port=4000".to_string(),
        format!("set=1\nprivate_key={new_key}"),
        "set=1\nfwmark=7".to_string(),
        "set=1\nreplace_peers=true".to_string(),
    ] {
        assert_eq!(errno(call_at(&sock, &iface, &request)), eperm, "{request}");
    }
    // Root's peer is not the sidecar's to remove.
    let remove_root_peer = format!(
        "set=1\npublic_key={}\nremove=true",
        hex_of(&other.keys.public)
    );
    assert_eq!(errno(call_at(&sock, &iface, &remove_root_peer)), eperm);
    let after = call(&iface, "get=1").expect("full get");
    assert!(
        after.contains(&format!("private_key={private_hex}")),
        "key changed"
    );
    assert!(
        after.contains(&format!("listen_port={}", wg.port)),
        "{after}"
    );
    assert!(
        after.contains(&hex_of(&other.keys.public)),
        "root's peer removed"
    );

    // Its own peers it adds, changes and removes.
    let own = "33".repeat(32);
    call_at(
        &sock,
        &iface,
        &format!("set=1\npublic_key={own}\nallowed_ip=10.77.0.9/32"),
    )
    .expect("add own peer");
    call_at(
        &sock,
        &iface,
        &format!("set=1\npublic_key={own}\nreplace_allowed_ips=true\nallowed_ip=10.77.0.10/32"),
    )
    .expect("change own peer");
    call_at(
        &sock,
        &iface,
        &format!("set=1\npublic_key={own}\nremove=true"),
    )
    .expect("remove own peer");
    assert!(!call(&iface, "get=1").expect("get").contains(&own));

    // The socket is the group's (0660), not the world's.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&sock)
        .expect("socket")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o660);
}

/// A base64 key as UAPI's hex.
fn hex_of(base64_key: &str) -> String {
    let key: flowshield_proto::WgPublicKey = base64_key.parse().expect("key");
    key.0.iter().map(|b| format!("{b:02x}")).collect()
}
