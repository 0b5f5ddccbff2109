//! A provider restarting mid-session, end to end (namespaces, dev chain,
//! real data planes; see `common`): its session store lets it take the
//! session up again, and it settles for the best voucher it ever
//! acknowledged. Stopped cleanly, it first takes its clients off the data
//! plane (nothing would check credit, and the egress filter goes with it).
//! Needs root and `cargo build -p flowshield-tunnel`.

mod common;

use common::{wei, World, WAIT};
use flowshield_chain::alloy::primitives::U256;
use flowshield_market::provider::store::SessionStore;
use flowshield_proto::WgPublicKey;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

/// Polls provider 0's store until `order`'s best voucher exceeds `above`;
/// returns it.
fn wait_stored_voucher(world: &World, order: U256, above: U256) -> U256 {
    let url = world.provider_store_url(0);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let deadline = Instant::now() + WAIT;
        loop {
            // Reopened each time: the provider may be replaced meanwhile.
            if let Ok(store) = SessionStore::connect(&url).await {
                let best = store
                    .session(order)
                    .await
                    .ok()
                    .flatten()
                    .map(|r| r.best_amount());
                store.close().await;
                if let Some(best) = best.filter(|b| *b > above) {
                    return best;
                }
            }
            assert!(
                Instant::now() < deadline,
                "no voucher above {above} stored for order {order}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
}

/// A world whose client waits out its provider's restart instead of failing
/// over after two missed vouchers, and whose provider interface carries
/// the operator's own peer (never to be touched); returns the world, the
/// client's config and that peer's key (base64).
fn world_with_operator_peer() -> (World, std::path::PathBuf, String) {
    let world = World::start(1).expect("world");
    let config = world.client_config(&World::fullnode_urls()).unwrap();
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace("max_failed_vouchers = 2", "max_failed_vouchers = 60"),
    )
    .unwrap();
    let iface = world.providers[0].iface.clone();
    let operator_key: WgPublicKey = flowshield_e2e::wg::KeyPair::generate()
        .unwrap()
        .public
        .parse()
        .unwrap();
    let add = flowshield_market::dataplane::add_peer_request(
        &operator_key,
        Ipv4Addr::new(192, 168, 77, 1),
    );
    flowshield_tunnel::uapi::client::call(&iface, &add.to_uapi()).unwrap();
    (world, config, operator_key.to_string())
}

/// Connects the client; returns its order (as text and as a number).
fn connect(world: &mut World, config: &std::path::Path) -> (String, U256) {
    let connected = world.connect_client(config).unwrap();
    let order_text = connected["order_id"].as_str().unwrap().to_string();
    let order = U256::from_str_radix(&order_text, 10).unwrap();
    (order_text, order)
}

#[test]
fn provider_killed_mid_session_resumes_it_and_loses_no_wei() {
    let (mut world, config, operator_b64) = world_with_operator_peer();
    let provider = world.account("p0");
    let (order_text, order) = connect(&mut world, &config);
    world.fetch_blob().expect("traffic before the crash");
    let before_crash = wait_stored_voucher(&world, order, U256::ZERO);

    world.kill_provider_sidecar(0);
    // The data plane outlives the sidecar: both peers are still there.
    let peers = world.provider_peers(0).unwrap();
    assert_eq!(peers.len(), 2, "peers after kill -9: {peers:?}");
    world
        .restart_provider_sidecar(0)
        .expect("provider restarts");

    // The client keeps its tunnel: traffic flows, and it goes on paying
    // the same order (the provider acknowledges and stores its vouchers).
    world.fetch_blob().expect("traffic after the restart");
    let after_restart = wait_stored_voucher(&world, order, before_crash);
    assert!(after_restart > before_crash);
    let peers = world.provider_peers(0).unwrap();
    assert_eq!(peers.len(), 2, "peers after restart: {peers:?}");
    assert!(peers.contains(&operator_b64), "operator's peer kept");
    let client = world.client.as_ref().unwrap();
    assert!(
        client
            .wait_event("failover", Duration::from_millis(10))
            .is_err(),
        "the client failed over"
    );

    let summary = world.disconnect(&config).unwrap();
    eprintln!("summary: {summary}");
    assert_eq!(summary["event"], "disconnected");
    assert_eq!(summary["order_id"], order_text.as_str());
    // The restarted provider knew the session and settled it itself...
    assert_eq!(summary["settled_by"], "provider");
    let paid = wei(&summary["provider_paid_wei"]);
    let voucher = wei(&summary["voucher_wei"]);
    // ...for at least every voucher it ever acknowledged: no wei lost.
    assert!(paid >= voucher, "provider paid {paid} < voucher {voucher}");
    assert!(U256::from(paid) >= after_restart);
    let after = world.chain_status(&[&provider], Some(&order_text)).unwrap();
    assert_eq!(after["order"]["status"], "Settled");
    assert_eq!(wei(&after["order"]["redeemed_wei"]), paid);
    // Its own peer removed, the operator's left.
    assert_eq!(world.provider_peers(0).unwrap(), vec![operator_b64]);
    world.client.as_mut().unwrap().wait_exit(WAIT).unwrap();
}

#[test]
fn provider_stopped_cleanly_forwards_nothing_until_it_starts_again() {
    let (mut world, config, operator_b64) = world_with_operator_peer();
    let (_, order) = connect(&mut world, &config);
    world.fetch_blob().expect("traffic before the stop");
    let before_stop = wait_stored_voucher(&world, order, U256::ZERO);
    let peers = world.provider_peers(0).unwrap();
    assert_eq!(peers.len(), 2, "client's and operator's peers: {peers:?}");

    // SIGTERM, as `systemctl stop` sends: a clean exit...
    let status = world.stop_provider_sidecar(0).expect("sidecar exits");
    assert!(status.success(), "sidecar exit: {status:?}");
    // ...that leaves the data plane running but forwarding nothing for the
    // client: only the operator's peer is left.
    assert_eq!(world.provider_peers(0).unwrap(), vec![operator_b64.clone()]);
    assert!(
        world.fetch_blob_within(3).is_err(),
        "the client was forwarded with no provider running"
    );

    // Started again, the provider puts the session's peer back: traffic
    // flows and the client goes on paying the same order.
    world
        .restart_provider_sidecar(0)
        .expect("provider restarts");
    world.fetch_blob().expect("traffic after the restart");
    let after_restart = wait_stored_voucher(&world, order, before_stop);
    assert!(after_restart > before_stop);
    let peers = world.provider_peers(0).unwrap();
    assert_eq!(peers.len(), 2, "peers after restart: {peers:?}");

    let summary = world.disconnect(&config).unwrap();
    assert_eq!(summary["event"], "disconnected");
    assert_eq!(summary["settled_by"], "provider");
    let paid = wei(&summary["provider_paid_wei"]);
    assert!(U256::from(paid) >= after_restart, "paid {paid}");
    assert_eq!(world.provider_peers(0).unwrap(), vec![operator_b64]);
    world.client.as_mut().unwrap().wait_exit(WAIT).unwrap();
}
