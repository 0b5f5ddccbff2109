//! Order sessions end to end, in network namespaces: a dev chain, two
//! fullnodes, providers with real `flowshield` data planes and a client
//! (see `common`). Needs root and `cargo build -p flowshield-tunnel`.
//! The tests take turns (one whole market at a time): on a small machine
//! three markets at once would trip their timeouts.

mod common;

use common::{wei, World, WAIT};
use std::sync::{Mutex, MutexGuard};

static ONE_MARKET_AT_A_TIME: Mutex<()> = Mutex::new(());

fn take_turn() -> MutexGuard<'static, ()> {
    // A panicking test poisons the lock; the next one may still run.
    ONE_MARKET_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[test]
fn demo_flow_pays_the_provider_and_refunds_the_client() {
    let _turn = take_turn();
    let mut world = World::start(1).expect("world");
    let provider = world.account("p0");
    let client = world.account("client");
    let config = world.client_config(&World::fullnode_urls()).unwrap();
    let connected = world.connect_client(&config).unwrap();
    let ms = connected["purchase_to_first_packet_ms"].as_u64().unwrap();
    eprintln!("purchase_to_first_packet_ms = {ms}");
    assert!(ms < 5_000, "purchase to first packet took {ms} ms");
    let order = connected["order_id"].as_str().unwrap().to_string();
    assert_eq!(
        world.provider_peers(0).unwrap().len(),
        1,
        "client peer pushed over UAPI"
    );

    world.fetch_blob().expect("fetch through the tunnel");
    // Let at least two vouchers cover the transfer.
    std::thread::sleep(std::time::Duration::from_secs(3));
    let before = world
        .chain_status(&[&provider, &client], Some(&order))
        .unwrap();
    assert_eq!(before["order"]["status"], "Active");

    let summary = world.disconnect(&config).unwrap();
    eprintln!("summary: {summary}");
    assert_eq!(summary["event"], "disconnected");
    assert_eq!(summary["settled_by"], "provider");
    assert!(summary["bytes"].as_u64().unwrap() >= common::BLOB_BYTES as u64);
    let voucher = wei(&summary["voucher_wei"]);
    let paid = wei(&summary["provider_paid_wei"]);
    let refunded = wei(&summary["client_refunded_wei"]);
    assert!(voucher > 0);
    assert!(paid >= voucher, "provider paid {paid} < voucher {voucher}");
    assert_eq!(paid + refunded, wei(&summary["escrow_wei"]));

    // Both withdrew: nothing left claimable, the provider's balance grew.
    // The provider answered Disconnect before its transactions, so its
    // withdrawal may land a block after the settlement: polled, bounded.
    let p_before = wei(&before["accounts"][&provider]["balance_wei"]);
    let deadline = std::time::Instant::now() + WAIT;
    let after = loop {
        let after = world
            .chain_status(&[&provider, &client], Some(&order))
            .unwrap();
        let withdrawn = wei(&after["accounts"][&provider]["balance_wei"]) > p_before;
        if withdrawn || std::time::Instant::now() >= deadline {
            break after;
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
    };
    assert_eq!(after["order"]["status"], "Settled");
    assert_eq!(wei(&after["order"]["redeemed_wei"]), paid);
    let p_after = wei(&after["accounts"][&provider]["balance_wei"]);
    assert!(
        p_after > p_before,
        "provider balance {p_before} -> {p_after}"
    );
    assert_eq!(wei(&after["accounts"][&client]["claimable_wei"]), 0);
    assert!(
        world.provider_peers(0).unwrap().is_empty(),
        "peer removed after settlement"
    );
    world.client.as_mut().unwrap().wait_exit(WAIT).unwrap();
}

#[test]
fn client_fails_over_when_its_provider_dies() {
    let _turn = take_turn();
    let mut world = World::start(2).expect("world");
    let config = world.client_config(&World::fullnode_urls()).unwrap();
    let connected = world.connect_client(&config).unwrap();
    let first_order = connected["order_id"].as_str().unwrap().to_string();
    world.fetch_blob().unwrap();
    let dead = if world.provider_peers(0).unwrap().is_empty() {
        1
    } else {
        0
    };
    world.kill_provider(dead);

    let client = world.client.as_ref().unwrap();
    let failover = client.wait_event("failover", WAIT).unwrap();
    assert_eq!(failover["order_id"], first_order.as_str());
    let again = client.wait_event("connected", WAIT).unwrap();
    assert_ne!(again["order_id"], first_order.as_str());
    client.wait_event("failover_done", WAIT).unwrap();
    world
        .fetch_blob()
        .expect("traffic flows through the other provider");
    assert_eq!(world.provider_peers(1 - dead).unwrap().len(), 1);

    // The dead provider's order is closed and refunded by the client.
    let closed = world
        .client
        .as_ref()
        .unwrap()
        .wait_event("abandoned_order_closed", WAIT)
        .unwrap();
    assert_eq!(closed["order_id"], first_order.as_str());
    let status = world.chain_status(&[], Some(&first_order)).unwrap();
    assert_eq!(status["order"]["status"], "Settled");

    let summary = world.disconnect(&config).unwrap();
    assert_eq!(summary["event"], "disconnected");
    assert_eq!(summary["status"], "Settled");
}

#[test]
fn client_uses_the_other_fullnode_when_one_is_down() {
    let _turn = take_turn();
    let mut world = World::start(1).expect("world");
    world.fullnodes[0].take(); // killed
    let config = world.client_config(&World::fullnode_urls()).unwrap();
    let connected = world.connect_client(&config).unwrap();
    assert_eq!(connected["found_via"], "http://10.250.0.1:8102");
    world.fetch_blob().unwrap();
    let summary = world.disconnect(&config).unwrap();
    assert_eq!(summary["status"], "Settled");
}
