//! Cheap griefing: locking a provider's capacity with many orders or dust
//! orders, and borrowing a WireGuard key that is already on the provider's
//! interface.

use crate::common::net::within;
use crate::fixture::{refusal, Site, ESCROW, MAX_CLIENTS, MAX_PER_CLIENT, MIN_ESCROW};
use flowshield_chain::OrderStatus;
use flowshield_market::wire::session::SessionResponse;
use flowshield_proto::WgPublicKey;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_client_cannot_hold_more_than_its_share_nor_fill_the_provider() {
    assert_eq!((MAX_CLIENTS, MAX_PER_CLIENT), (3, 2));
    let site = Site::start().await;
    let greedy = site.actor().await;
    let other = site.actor().await;
    let mut accepted = 0;
    for key in 1..=3u8 {
        let order = site.open_order(&greedy, ESCROW).await;
        let r = site
            .ask(
                &greedy,
                &site.connect(&greedy, order, WgPublicKey([key; 32])),
            )
            .await;
        if matches!(r, SessionResponse::Connected(_)) {
            accepted += 1;
        } else {
            assert_eq!(refusal(&r).0, "too_many_orders", "{r:?}");
            assert_eq!(
                site.market.order_status(order).await.unwrap(),
                OrderStatus::Pending,
                "a refused order is not accepted on chain"
            );
        }
    }
    assert_eq!(
        accepted, MAX_PER_CLIENT,
        "one client holds at most its share"
    );
    // Another client takes the last place; then the provider is full.
    let order = site.open_order(&other, ESCROW).await;
    let r = site
        .ask(&other, &site.connect(&other, order, WgPublicKey([10; 32])))
        .await;
    assert!(matches!(r, SessionResponse::Connected(_)), "{r:?}");
    let order = site.open_order(&other, ESCROW).await;
    let r = site
        .ask(&other, &site.connect(&other, order, WgPublicKey([11; 32])))
        .await;
    assert_eq!(refusal(&r).0, "provider_full", "{r:?}");
    assert_eq!(site.host.session_count().await, MAX_CLIENTS as usize);
    site.shutdown(vec![greedy, other]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dust_orders_are_rejected_on_chain_and_borrowed_keys_refused() {
    let site = Site::start().await;
    let client = site.actor().await;
    // A dust order: the provider rejects it on chain (refunding the
    // client), so it can never take one of the accepted-order slots.
    let dust = site.open_order(&client, MIN_ESCROW - 1).await;
    let r = site
        .ask(&client, &site.connect(&client, dust, WgPublicKey([1; 32])))
        .await;
    assert_eq!(refusal(&r).0, "escrow_too_small", "{r:?}");
    assert_eq!(
        site.market.order_status(dust).await.unwrap(),
        OrderStatus::Cancelled
    );

    // The operator's own peer is on the interface (wg set by hand).
    let operator = WgPublicKey([0x42; 32]);
    let key_hex = hex::encode(operator.0);
    flowshield_tunnel::uapi::client::call(
        &site.iface,
        &format!("set=1\npublic_key={key_hex}\nallowed_ip=192.168.50.0/24\n"),
    )
    .expect("operator peer");
    let order = site.open_order(&client, ESCROW).await;
    let r = site
        .ask(&client, &site.connect(&client, order, operator))
        .await;
    assert_eq!(refusal(&r).0, "key_in_use", "{r:?}");
    assert_eq!(
        site.market.order_status(order).await.unwrap(),
        OrderStatus::Pending
    );
    // The operator's peer is as it was: its route not replaced.
    let peers = flowshield_tunnel::uapi::client::get(&site.iface)
        .unwrap()
        .peers;
    let [peer] = peers.as_slice() else {
        panic!("one peer expected: {peers:?}")
    };
    let ips: Vec<String> = peer.allowed_ips.iter().map(|n| n.to_string()).collect();
    assert_eq!(ips, vec!["192.168.50.0/24".to_string()]);
    assert_eq!(site.host.session_count().await, 0);
    site.shutdown(vec![client]).await;
}

/// N + k clients race their `Connect`s against `max_clients` = N: each
/// check sees the provider with room while the others are still being
/// accepted on chain (a block a second widens that window, as a busy chain
/// would). At most N orders may be accepted; the rest stay Pending, their
/// clients told the provider is full.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_connects_cannot_pass_max_clients() {
    const RACERS: usize = MAX_CLIENTS as usize + 2;
    let site = Site::start().await;
    let mut racers = Vec::new();
    for key in 0..RACERS {
        let actor = site.actor().await;
        let order = site.open_order(&actor, ESCROW).await;
        let connect = site.connect(&actor, order, WgPublicKey([0x60 + key as u8; 32]));
        racers.push((actor, order, connect));
    }
    site.chain
        .set_interval_mining(Some(1_000))
        .await
        .expect("interval mining");
    let answers = within(
        "every racing Connect answered",
        futures::future::join_all(
            racers
                .iter()
                .map(|(actor, _, connect)| site.ask(actor, connect)),
        ),
    )
    .await;
    site.chain
        .set_interval_mining(None)
        .await
        .expect("automine");
    let mut accepted = 0;
    for ((_, order, _), r) in racers.iter().zip(&answers) {
        if matches!(r, SessionResponse::Connected(_)) {
            accepted += 1;
        } else {
            assert_eq!(refusal(r).0, "provider_full", "{r:?}");
            assert_eq!(
                site.market.order_status(*order).await.unwrap(),
                OrderStatus::Pending,
                "a refused order is not accepted on chain"
            );
        }
    }
    eprintln!("{accepted} of {RACERS} racing connects accepted (max_clients {MAX_CLIENTS})");
    let active = site
        .market
        .active_orders(site.provider_signer.address())
        .await
        .unwrap();
    assert!(
        active.len() <= MAX_CLIENTS as usize,
        "{} orders accepted on chain against max_clients {MAX_CLIENTS}: {active:?}",
        active.len()
    );
    assert!(
        accepted <= MAX_CLIENTS as usize,
        "{accepted} racing connects accepted against max_clients {MAX_CLIENTS}"
    );
    assert_eq!(
        accepted, MAX_CLIENTS as usize,
        "every free place is taken by one of the racers"
    );
    assert_eq!(site.host.session_count().await, MAX_CLIENTS as usize);
    site.shutdown(racers.into_iter().map(|(a, _, _)| a).collect())
        .await;
}
