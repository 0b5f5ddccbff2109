//! A slow chain (a block every 5 s, as on a busy network) must not stall
//! sessions: while one session settles on chain, the others keep getting
//! their vouchers answered at once. The attacker here is the chain's pace
//! itself, or a client that disconnects to make the provider wait on it.

use crate::common::net::within;
use crate::fixture::{Site, ESCROW};
use flowshield_chain::alloy::primitives::U256;
use flowshield_chain::OrderStatus;
use flowshield_market::net::{MarketRequest, MarketResponse};
use flowshield_market::wire::raw::RawSessionRequest;
use flowshield_market::wire::session::{SessionRequest, SessionResponse};
use flowshield_proto::WgPublicKey;
use std::time::{Duration, Instant};

/// How long a voucher may wait for its answer: half a block (a voucher
/// that waited on the settling session's transactions would wait ~10 s),
/// and under the client's own deadline (twice its 2 s voucher interval).
/// Measured: 0.1 s alone, up to 0.8 s beside the other end-to-end tests.
const VOUCHER_DEADLINE: Duration = Duration::from_millis(2500);
/// How long the leaving client may wait for the answer to its
/// `Disconnect`: well under a block, and far under libp2p's 10 s request
/// timeout (the provider answers before its chain transactions).
const DISCONNECT_DEADLINE: Duration = Duration::from_secs(2);
/// Vouchers per session while the fourth settles.
const ROUNDS: u64 = 16;
/// What each voucher adds: 50 s of connection at 1 wei/ms, ahead of
/// anything the provider can measure during the test (16 of them stay
/// under the escrow).
const STEP_WEI: u64 = 50_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_keep_paying_while_another_settles_on_a_slow_chain() {
    let site = Site::start_with_clients(4).await;
    let mut actors = Vec::new();
    let mut orders = Vec::new();
    for key in 1..=4u8 {
        let actor = site.actor().await;
        let order = site.open_order(&actor, ESCROW).await;
        let r = site
            .ask(&actor, &site.connect(&actor, order, WgPublicKey([key; 32])))
            .await;
        assert!(matches!(r, SessionResponse::Connected(_)), "{r:?}");
        actors.push(actor);
        orders.push(order);
    }
    // The leaving session has a voucher to redeem when it settles.
    let leaving_voucher = site.voucher(&actors[3].signer, orders[3], STEP_WEI).await;
    let r = site.ask(&actors[3], &leaving_voucher).await;
    assert!(
        matches!(r, SessionResponse::VoucherAccepted { .. }),
        "{r:?}"
    );

    site.chain
        .set_interval_mining(Some(5_000))
        .await
        .expect("interval mining");
    let site = &site;
    let leaving = &actors[3];
    // The leaving client is answered at once: the provider records that it
    // will settle (durably) and answers before its transactions, which
    // then take blocks (redeem+settle, withdraw: ~10 s, past the request's
    // 10 s timeout if the answer waited for them). The chain is asked
    // what happened.
    let settle = async {
        let start = Instant::now();
        let raw = RawSessionRequest::encode(&SessionRequest::Disconnect {
            order_id: orders[3],
        })
        .expect("encode");
        let answer = leaving
            .net
            .request(site.provider_peer, MarketRequest::Session(raw))
            .await;
        let answered = start.elapsed();
        eprintln!("disconnect answered after {answered:?}: {answer:?}");
        let answer = match answer {
            Ok(MarketResponse::Session(r)) => r.decode().expect("decode"),
            other => panic!("disconnect not answered: {other:?}"),
        };
        assert_eq!(
            answer,
            SessionResponse::Disconnected {
                order_id: orders[3],
                redeemed_wei: U256::from(STEP_WEI)
            },
            "the answer names the voucher the provider will redeem"
        );
        assert!(
            answered < DISCONNECT_DEADLINE,
            "disconnect answered after {answered:?} (blocks every 5 s)"
        );
        loop {
            let status = site.market.order_status(orders[3]).await.expect("status");
            if status == OrderStatus::Settled {
                break start.elapsed();
            }
            // Poll interval; the whole wait is bounded by `within` below.
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    let pay = |i: usize| {
        let actor = &actors[i];
        let order = orders[i];
        async move {
            let mut slowest = Duration::ZERO;
            for round in 1..=ROUNDS {
                let voucher = site.voucher(&actor.signer, order, STEP_WEI * round).await;
                let start = Instant::now();
                let r = site.ask(actor, &voucher).await;
                let took = start.elapsed();
                assert!(
                    matches!(r, SessionResponse::VoucherAccepted { .. }),
                    "session {i} round {round}: {r:?}"
                );
                assert!(
                    took < VOUCHER_DEADLINE,
                    "session {i} round {round}: voucher answered after {took:?} while another session settled"
                );
                slowest = slowest.max(took);
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            slowest
        }
    };
    let (settle_took, a, b, c) = within("three sessions paying while a fourth settles", async {
        tokio::join!(settle, pay(0), pay(1), pay(2))
    })
    .await;
    eprintln!("settling took {settle_took:?}; slowest vouchers {a:?} {b:?} {c:?}");
    // The chain really was slow: settling waited for a block.
    assert!(
        settle_took >= Duration::from_millis(500),
        "settling took only {settle_took:?}: the chain was not slow"
    );
    let order = site.market.order(orders[3]).await.expect("order");
    assert_eq!(
        order.redeemed,
        U256::from(STEP_WEI),
        "the best voucher was paid"
    );
    // The session is dropped once the provider has also withdrawn.
    within("the settled session dropped", async {
        while site.host.session_count().await != 3 {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;
    site.chain
        .set_interval_mining(None)
        .await
        .expect("automine");
}
