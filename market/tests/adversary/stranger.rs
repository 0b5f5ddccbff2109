//! A stranger on libp2p (a node that never connected the order) tries to
//! end, pay into or take over someone else's session. Order ids are
//! sequential and `activeOrders` is public, so it knows which to aim at.

use crate::fixture::{refusal, Site, ESCROW};
use flowshield_chain::alloy::primitives::U256;
use flowshield_chain::OrderStatus;
use flowshield_market::wire::session::{SessionRequest, SessionResponse};
use flowshield_proto::WgPublicKey;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stranger_cannot_end_strike_or_take_over_a_session() {
    let site = Site::start().await;
    let client = site.actor().await;
    let stranger = site.actor().await;
    let order = site.open_order(&client, ESCROW).await;
    let wg = WgPublicKey([5; 32]);
    let connect = site.connect(&client, order, wg);
    let r = site.ask(&client, &connect).await;
    assert!(matches!(r, SessionResponse::Connected(_)), "{r:?}");

    // The stranger reads the order id off the chain and says "disconnect".
    let active = site
        .market
        .active_orders(site.provider_signer.address())
        .await
        .unwrap();
    assert_eq!(active, vec![order]);
    let r = site
        .ask(&stranger, &SessionRequest::Disconnect { order_id: order })
        .await;
    assert_eq!(refusal(&r).0, "not_session_client", "{r:?}");

    // It replays the client's own Connect (say it leaked) to take the order over.
    let r = site.ask(&stranger, &connect).await;
    assert_eq!(refusal(&r).0, "already_connected", "{r:?}");

    // The client pays once, so the provider has a measurement to hold
    // later vouchers to (1000 wei per second connected).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let paid = site.voucher(&client.signer, order, 2000).await;
    let r = site.ask(&client, &paid).await;
    assert!(
        matches!(r, SessionResponse::VoucherAccepted { .. }),
        "{r:?}"
    );
    // A replay of the client's voucher from the stranger, then under-paying
    // vouchers the stranger signed itself: none may count against the
    // session (three strikes would end it).
    let r = site.ask(&stranger, &paid).await;
    assert_eq!(refusal(&r).0, "not_session_client", "{r:?}");
    for amount in [2001u64, 2002, 2003, 2004] {
        let forged = site.voucher(&stranger.signer, order, amount).await;
        let r = site.ask(&stranger, &forged).await;
        assert!(
            ["not_session_client", "voucher_bad_signature"].contains(&refusal(&r).0),
            "{r:?}"
        );
        // Even sent over the client's own connection (a relay), a voucher
        // the client did not sign is no strike.
        let r = site.ask(&client, &forged).await;
        assert_eq!(refusal(&r).0, "voucher_bad_signature", "{r:?}");
    }
    // Two session ticks: a session with strikes would be ended by now.
    tokio::time::sleep(Duration::from_millis(2500)).await;

    assert_eq!(site.host.session_count().await, 1, "session untouched");
    assert_eq!(
        site.market.order_status(order).await.unwrap(),
        OrderStatus::Active
    );
    assert_eq!(
        site.peers(),
        vec![wg],
        "client peer still on the data plane"
    );
    let [session] = site.host.snapshot().await.sessions.try_into().unwrap();
    assert_eq!(session.vouchers_cumulative, U256::from(2000));

    // The client itself still can end it, and is paid for what it signed.
    let r = site
        .ask(&client, &SessionRequest::Disconnect { order_id: order })
        .await;
    assert_eq!(
        r,
        SessionResponse::Disconnected {
            order_id: order,
            redeemed_wei: U256::from(2000)
        }
    );
    site.shutdown(vec![client, stranger]).await;
}
