//! Full order lifecycles from Rust against a real node: vouchers signed in Rust are
//! redeemed on chain, balances are checked to the wei (gas included).

mod common;

use common::{eth, gas_cost, meth, parties, Fixture};
use flowshield_chain::alloy::primitives::U256;
use flowshield_chain::voucher::{self, VoucherLedger};
use flowshield_chain::{MarketParams, OrderStatus};

#[tokio::test]
async fn full_order_lifecycle_with_vouchers_and_unstake() {
    let fx = Fixture::new(MarketParams::default()).await;
    let provider = fx.actor().await;
    let client = fx.actor().await;
    let market = fx.owner.market.address();
    let p0 = fx.balance(provider.addr()).await;
    let c0 = fx.balance(client.addr()).await;
    let mut p_gas = U256::ZERO;
    let mut c_gas = U256::ZERO;

    // Register with 2 ETH stake.
    let r = provider
        .market
        .register(eth(2), &common::terms(1))
        .await
        .expect("register");
    p_gas += gas_cost(&r);
    let rec = fx.record(provider.addr()).await;
    assert!(rec.registered);
    assert_eq!(rec.stake, eth(2));
    assert_eq!(rec.wgPublicKey.0, [1u8; 32]);
    assert!(fx.is_active(provider.addr()).await);
    fx.assert_solvent().await;

    // Open with 1 ETH escrow, provider accepts.
    let (id, r) = client
        .market
        .open_order(provider.addr(), eth(1))
        .await
        .expect("open");
    c_gas += gas_cost(&r);
    assert_eq!(id, U256::from(1u64));
    let o = fx.order(id).await;
    assert_eq!(
        (o.client, o.provider, o.escrow),
        (client.addr(), provider.addr(), eth(1))
    );
    assert_eq!(fx.status(id).await, OrderStatus::Pending);
    p_gas += gas_cost(&provider.market.accept_order(id).await.expect("accept"));
    assert_eq!(fx.status(id).await, OrderStatus::Active);
    assert_eq!(fx.active_orders(provider.addr()).await, vec![id]);
    fx.assert_solvent().await;

    // Client streams cumulative vouchers; the provider's ledger keeps the best one.
    let domain = client.market.eip712_domain().await.expect("domain");
    assert_eq!(domain, voucher::market_domain(31337, market));
    let mut ledger = VoucherLedger::new(domain.clone(), id, client.addr(), eth(1));
    for amount in [meth(100), meth(250), meth(400)] {
        let v = client.voucher(id, amount).await;
        let on_chain = fx
            .owner
            .market
            .voucher_digest_on_chain(id, amount)
            .await
            .expect("digest");
        assert_eq!(
            on_chain,
            voucher::voucher_digest(&domain, id, amount),
            "Rust and Solidity EIP-712 digests agree"
        );
        ledger.offer(v).expect("ledger accepts increasing voucher");
    }
    let latest = ledger.to_redeem().cloned().expect("voucher to redeem");
    assert_eq!(latest.cumulative_amount, meth(400));
    p_gas += gas_cost(
        &provider
            .market
            .redeem_voucher(&latest)
            .await
            .expect("redeem latest"),
    );
    ledger.mark_redeemed(latest.cumulative_amount);
    assert_eq!(fx.claimable(provider.addr()).await, meth(400));
    assert_eq!(fx.order(id).await.redeemed, meth(400));
    fx.assert_solvent().await;

    // Replays and older vouchers are rejected.
    let e = assert_market_revert!(
        provider.market.redeem_voucher(&latest).await,
        VoucherNotIncreasing
    );
    assert_eq!((e.cumulativeAmount, e.redeemed), (meth(400), meth(400)));
    let older = client.voucher(id, meth(250)).await;
    assert_market_revert!(
        provider.market.redeem_voucher(&older).await,
        VoucherNotIncreasing
    );

    // Final voucher: redeem and settle in one tx; the client gets the rest back.
    let last = client.voucher(id, meth(500)).await;
    p_gas += gas_cost(
        &provider
            .market
            .redeem_and_settle(&last)
            .await
            .expect("redeem+settle"),
    );
    assert_eq!(fx.status(id).await, OrderStatus::Settled);
    assert!(fx.active_orders(provider.addr()).await.is_empty());
    assert_eq!(fx.claimable(provider.addr()).await, meth(500));
    assert_eq!(fx.claimable(client.addr()).await, meth(500));
    assert_market_revert!(provider.market.settle(id).await, InvalidOrderStatus);
    fx.assert_solvent().await;

    // Pull payouts.
    p_gas += gas_cost(&provider.market.withdraw().await.expect("provider withdraw"));
    c_gas += gas_cost(&client.market.withdraw().await.expect("client withdraw"));
    assert_market_revert!(client.market.withdraw().await, NothingToWithdraw);
    assert_eq!(fx.balance(client.addr()).await, c0 - meth(500) - c_gas);
    assert_eq!(
        fx.balance(provider.addr()).await,
        p0 - eth(2) + meth(500) - p_gas
    );
    assert_eq!(fx.balance(market).await, eth(2), "only the stake is left");
    fx.assert_solvent().await;

    // Unstake with delay.
    let r = provider
        .market
        .request_unstake(eth(2))
        .await
        .expect("unstake");
    p_gas += gas_cost(&r);
    assert!(!fx.is_active(provider.addr()).await);
    let rec = fx.record(provider.addr()).await;
    assert_eq!((rec.stake, rec.unbonding), (U256::ZERO, eth(2)));
    let locked = assert_market_revert!(provider.market.withdraw_stake().await, UnbondingLocked);
    assert_eq!(locked.unlockAt, rec.unbondingUnlockAt);
    fx.advance(fx.params.unstake_delay).await;
    p_gas += gas_cost(
        &provider
            .market
            .withdraw_stake()
            .await
            .expect("withdraw stake"),
    );
    assert_eq!(fx.balance(provider.addr()).await, p0 + meth(500) - p_gas);
    assert_eq!(fx.balance(market).await, U256::ZERO);
    assert_market_revert!(provider.market.withdraw_stake().await, NothingToWithdraw);
    fx.assert_solvent().await;
}

#[tokio::test]
async fn unaccepted_order_times_out_and_refunds_client() {
    let (fx, provider, client, stranger) = parties(eth(1)).await;
    let c0 = fx.balance(client.addr()).await;

    let (id, r) = client
        .market
        .open_order(provider.addr(), eth(3))
        .await
        .expect("open");
    let mut c_gas = gas_cost(&r);
    let deadline = fx.order(id).await.acceptDeadline;
    assert_eq!(
        deadline,
        fx.chain.latest_timestamp().await.expect("ts") + fx.params.accept_timeout
    );

    // Before the deadline only the client may cancel.
    let e = assert_market_revert!(stranger.market.cancel_order(id).await, AcceptWindowOpen);
    assert_eq!(e.deadline, deadline);

    fx.advance(fx.params.accept_timeout + 1).await;
    assert_market_revert!(provider.market.accept_order(id).await, AcceptDeadlinePassed);

    // After the deadline anyone can trigger the refund (to the client).
    stranger
        .market
        .cancel_order(id)
        .await
        .expect("timeout cancel");
    assert_eq!(fx.status(id).await, OrderStatus::Cancelled);
    assert_eq!(fx.claimable(client.addr()).await, eth(3));
    assert_market_revert!(stranger.market.withdraw().await, NothingToWithdraw);
    c_gas += gas_cost(&client.market.withdraw().await.expect("withdraw"));
    assert_eq!(fx.balance(client.addr()).await, c0 - c_gas);
    assert_market_revert!(client.market.cancel_order(id).await, InvalidOrderStatus);
    assert_market_revert!(provider.market.accept_order(id).await, InvalidOrderStatus);
    fx.assert_solvent().await;
}

#[tokio::test]
async fn client_close_waits_for_grace_and_provider_can_still_redeem() {
    let (fx, provider, client, stranger) = parties(eth(1)).await;

    let id = client.open(&provider, eth(1)).await;
    client
        .market
        .top_up(id, eth(1))
        .await
        .expect("top up pending");
    provider.market.accept_order(id).await.expect("accept");
    client
        .market
        .top_up(id, eth(1))
        .await
        .expect("top up active");
    assert_eq!(fx.order(id).await.escrow, eth(3));
    let v = client.voucher(id, meth(300)).await;

    // Client may not settle an active order itself; it requests close first.
    assert_market_revert!(client.market.settle(id).await, InvalidOrderStatus);
    assert_market_revert!(stranger.market.request_close(id).await, Unauthorized);
    client
        .market
        .request_close(id)
        .await
        .expect("request close");
    assert_eq!(fx.status(id).await, OrderStatus::Closing);
    assert_market_revert!(client.market.request_close(id).await, InvalidOrderStatus);
    assert_market_revert!(client.market.top_up(id, eth(1)).await, InvalidOrderStatus);
    let e = assert_market_revert!(client.market.settle(id).await, CloseGraceActive);
    assert_eq!(e.orderId, id);
    assert_market_revert!(stranger.market.settle(id).await, Unauthorized);

    // During the grace period the provider redeems its latest voucher.
    provider
        .market
        .redeem_voucher(&v)
        .await
        .expect("redeem while closing");
    fx.advance(fx.params.close_grace).await;
    client
        .market
        .settle(id)
        .await
        .expect("client settles after grace");
    assert_eq!(fx.claimable(client.addr()).await, eth(3) - meth(300));
    assert_eq!(fx.claimable(provider.addr()).await, meth(300));
    assert_market_revert!(
        provider
            .market
            .redeem_voucher(&client.voucher(id, meth(400)).await)
            .await,
        InvalidOrderStatus
    );
    fx.assert_solvent().await;
}
