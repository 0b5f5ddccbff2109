//! Every BandwidthMarket function: happy path and each revert reason, asserted by the
//! decoded custom error.

mod common;

use common::{eth, meth, parties, terms, Fixture};
use flowshield_chain::alloy::primitives::{Address, Bytes, U256};
use flowshield_chain::voucher;
use flowshield_chain::{MarketClient, MarketParams, OrderStatus, ProviderTerms, QualityPromise};

#[tokio::test]
async fn deploy_rejects_invalid_params() {
    let fx = Fixture::new(MarketParams::default()).await;
    let p = fx.owner.market.params().await.expect("params");
    assert_eq!(p, MarketParams::default());
    let provider = fx
        .chain
        .provider_for(fx.owner.signer.clone())
        .expect("provider");
    // Each case spoils one field of otherwise default parameters; the revert names it.
    type Spoiler = (fn(&mut MarketParams), &'static str);
    let spoilers: [Spoiler; 12] = [
        (|p| p.min_stake = U256::ZERO, "minStake"),
        (|p| p.min_reporters = 0, "minReporters"),
        (|p| p.min_reporters = 2, "minReporters"),
        (|p| p.report_period = 0, "reportPeriod"),
        (|p| p.accept_timeout = 0, "acceptTimeout"),
        (|p| p.slash_bps = 10_001, "slashBps"),
        (|p| p.verifier_share_bps = 10_001, "verifierShareBps"),
        (|p| p.fail_quorum_bps = 5_000, "failQuorumBps"),
        (|p| p.fail_quorum_bps = 10_001, "failQuorumBps"),
        (|p| p.min_verifier_stake = U256::ZERO, "minVerifierStake"),
        (
            |p| p.report_bond = p.min_verifier_stake + U256::from(1u64),
            "reportBond",
        ),
        (|p| p.fail_streak = 0, "failStreak"),
    ];
    let governance = fx.timelock.address();
    for (spoil, field) in spoilers {
        let mut params = MarketParams::default();
        spoil(&mut params);
        let deployed = MarketClient::deploy(provider.clone(), &params, governance).await;
        let e = assert_market_revert!(deployed, InvalidParams, "{params:?}");
        assert_eq!(e.field, field, "{params:?}");
    }
}

#[tokio::test]
async fn provider_registry_functions_and_reverts() {
    let fx = Fixture::new(MarketParams::default()).await;
    let p = fx.actor().await;
    let other = fx.actor().await;

    // register
    let e = assert_market_revert!(
        p.market.register(meth(999), &terms(1)).await,
        InsufficientStake
    );
    assert_eq!((e.given, e.minimum), (meth(999), eth(1)));
    let zero_key = ProviderTerms {
        wg_public_key: [0; 32],
        ..terms(1)
    };
    assert_market_revert!(p.market.register(eth(1), &zero_key).await, InvalidWgKey);
    for (quality, field) in [
        (
            QualityPromise {
                minThroughputKbps: 1,
                maxRttMs: 1,
                maxLossBps: 10_001,
            },
            "maxLossBps",
        ),
        (
            QualityPromise {
                minThroughputKbps: 1,
                maxRttMs: 0,
                maxLossBps: 0,
            },
            "maxRttMs",
        ),
    ] {
        let bad = ProviderTerms {
            quality,
            ..terms(1)
        };
        let e = assert_market_revert!(p.market.register(eth(1), &bad).await, InvalidPromise);
        assert_eq!(e.field, field);
    }
    p.market
        .register(eth(1), &terms(1))
        .await
        .expect("register");
    assert_market_revert!(
        p.market.register(eth(1), &terms(1)).await,
        AlreadyRegistered
    );

    // updateProvider
    assert_market_revert!(other.market.update_provider(&terms(2)).await, NotRegistered);
    assert_market_revert!(p.market.update_provider(&zero_key).await, InvalidWgKey);
    let new_terms = ProviderTerms {
        price_per_gib: meth(5),
        price_per_hour: meth(6),
        ..terms(2)
    };
    p.market.update_provider(&new_terms).await.expect("update");
    let rec = fx.record(p.addr()).await;
    assert_eq!((rec.pricePerGiB, rec.pricePerHour), (meth(5), meth(6)));
    assert_eq!(
        (rec.peerIdHash, rec.wgPublicKey.0),
        (new_terms.peer_id_hash, [2; 32])
    );
    assert_eq!(rec.quality, new_terms.quality);

    // addStake
    assert_market_revert!(other.market.add_stake(eth(1)).await, NotRegistered);
    assert_market_revert!(p.market.add_stake(U256::ZERO).await, ZeroAmount);
    p.market.add_stake(eth(2)).await.expect("add stake");
    assert_eq!(fx.record(p.addr()).await.stake, eth(3));

    // requestUnstake
    assert_market_revert!(other.market.request_unstake(eth(1)).await, NotRegistered);
    assert_market_revert!(p.market.request_unstake(U256::ZERO).await, ZeroAmount);
    let e = assert_market_revert!(p.market.request_unstake(eth(4)).await, AmountExceedsStake);
    assert_eq!((e.requested, e.stake), (eth(4), eth(3)));
    let e = assert_market_revert!(
        p.market.request_unstake(eth(3) - meth(1)).await,
        StakeBelowMinimum
    );
    assert_eq!(e.remaining, meth(1));
    p.market
        .request_unstake(eth(1))
        .await
        .expect("partial unstake keeps min stake");
    let rec = fx.record(p.addr()).await;
    assert_eq!((rec.stake, rec.unbonding), (eth(2), eth(1)));
    assert!(fx.is_active(p.addr()).await);

    // withdrawStake (UnbondingLocked and the happy path are in tests/lifecycle.rs)
    assert_market_revert!(other.market.withdraw_stake().await, NotRegistered);
    let fresh = fx.provider(eth(1)).await;
    assert_market_revert!(fresh.market.withdraw_stake().await, NothingToWithdraw);
    assert_market_revert!(p.market.withdraw_stake().await, UnbondingLocked);

    // Full exit makes the provider inactive: no new orders; re-staking reactivates.
    p.market
        .request_unstake(eth(2))
        .await
        .expect("full unstake");
    let client = fx.actor().await;
    assert_market_revert!(
        client.market.open_order(p.addr(), eth(1)).await,
        ProviderNotActive
    );
    p.market.add_stake(eth(1)).await.expect("re-stake");
    client.open(&p, eth(1)).await;
    fx.assert_solvent().await;
}

#[tokio::test]
async fn order_functions_and_reverts() {
    let (fx, p, c, x) = parties(eth(2)).await;
    let unknown = U256::from(999u64);

    // openOrder
    assert_market_revert!(c.market.open_order(p.addr(), U256::ZERO).await, ZeroAmount);
    assert_market_revert!(
        c.market.open_order(x.addr(), eth(1)).await,
        ProviderNotActive
    );
    let id = c.open(&p, eth(1)).await;

    // topUp
    assert_market_revert!(c.market.top_up(unknown, eth(1)).await, UnknownOrder);
    assert_market_revert!(x.market.top_up(id, eth(1)).await, Unauthorized);
    assert_market_revert!(c.market.top_up(id, U256::ZERO).await, ZeroAmount);

    // acceptOrder
    assert_market_revert!(p.market.accept_order(unknown).await, UnknownOrder);
    let e = assert_market_revert!(c.market.accept_order(id).await, Unauthorized);
    assert_eq!(e.caller, c.addr());
    p.market.accept_order(id).await.expect("accept");
    let e = assert_market_revert!(p.market.accept_order(id).await, InvalidOrderStatus);
    assert_eq!(e.status, 2u8, "Active");

    // rejectOrder / cancelOrder only on pending orders
    assert_market_revert!(p.market.reject_order(id).await, InvalidOrderStatus);
    assert_market_revert!(c.market.cancel_order(id).await, InvalidOrderStatus);
    assert_market_revert!(c.market.cancel_order(unknown).await, UnknownOrder);
    let id2 = c.open(&p, eth(1)).await;
    assert_market_revert!(c.market.reject_order(id2).await, Unauthorized);
    assert_market_revert!(p.market.reject_order(unknown).await, UnknownOrder);
    p.market.reject_order(id2).await.expect("reject");
    assert_eq!(fx.status(id2).await, OrderStatus::Cancelled);
    assert_eq!(fx.claimable(c.addr()).await, eth(1));
    assert_market_revert!(c.market.top_up(id2, eth(1)).await, InvalidOrderStatus);
    let id3 = c.open(&p, eth(1)).await;
    c.market
        .cancel_order(id3)
        .await
        .expect("client cancels before deadline");
    assert_eq!(fx.claimable(c.addr()).await, eth(2));

    // requestClose / settle
    assert_market_revert!(c.market.request_close(unknown).await, UnknownOrder);
    assert_market_revert!(p.market.request_close(id).await, Unauthorized);
    assert_market_revert!(c.market.request_close(id3).await, InvalidOrderStatus);
    assert_market_revert!(x.market.settle(id).await, Unauthorized);
    assert_market_revert!(p.market.settle(unknown).await, UnknownOrder);
    assert_market_revert!(p.market.settle(id3).await, InvalidOrderStatus);
    p.market
        .settle(id)
        .await
        .expect("provider settles with nothing redeemed");
    assert_eq!(fx.claimable(c.addr()).await, eth(3));

    // withdraw
    assert_market_revert!(x.market.withdraw().await, NothingToWithdraw);
    c.market.withdraw().await.expect("withdraw");
    assert_eq!(fx.claimable(c.addr()).await, U256::ZERO);

    // acceptOrder when the provider has left meanwhile
    let id4 = c.open(&p, eth(1)).await;
    p.market.request_unstake(eth(2)).await.expect("exit");
    assert_market_revert!(p.market.accept_order(id4).await, ProviderNotActive);
    fx.assert_solvent().await;
}

#[tokio::test]
async fn accept_is_capped_at_max_active_orders() {
    let (fx, p, c, _) = parties(eth(1)).await;
    for _ in 0..32 {
        fx.open_accepted(&c, &p, meth(1)).await;
    }
    let id = c.open(&p, meth(1)).await;
    assert_market_revert!(p.market.accept_order(id).await, TooManyActiveOrders);
    let first = U256::from(1u64);
    p.market.settle(first).await.expect("settle frees a slot");
    p.market
        .accept_order(id)
        .await
        .expect("accept after settle");
    let active = fx.active_orders(p.addr()).await;
    assert_eq!(active.len(), 32);
    assert!(!active.contains(&first) && active.contains(&id));
    fx.assert_solvent().await;
}

#[tokio::test]
async fn voucher_redemption_reverts() {
    let (fx, p, c, x) = parties(eth(1)).await;
    let id = c.open(&p, eth(1)).await;
    let v = c.voucher(id, meth(100)).await;

    assert_market_revert!(p.market.redeem_voucher(&v).await, InvalidOrderStatus); // pending
    p.market.accept_order(id).await.expect("accept");
    assert_market_revert!(x.market.redeem_voucher(&v).await, Unauthorized);
    assert_market_revert!(c.market.redeem_voucher(&v).await, Unauthorized);
    let unknown = voucher::SignedVoucher {
        order_id: U256::from(77u64),
        ..v.clone()
    };
    assert_market_revert!(p.market.redeem_voucher(&unknown).await, UnknownOrder);
    let zero = c.voucher(id, U256::ZERO).await;
    assert_market_revert!(p.market.redeem_voucher(&zero).await, VoucherNotIncreasing);
    let too_much = c.voucher(id, eth(1) + U256::from(1u64)).await;
    let e = assert_market_revert!(
        p.market.redeem_voucher(&too_much).await,
        VoucherExceedsEscrow
    );
    assert_eq!(e.escrow, eth(1));

    // Malformed signatures: wrong length, v not in {27,28}, malleable high-s twin.
    let short = Bytes::from(v.signature[..64].to_vec());
    assert_market_revert!(
        p.market.redeem_raw(id, v.cumulative_amount, short).await,
        InvalidSignature
    );
    let mut bad_v = v.signature.to_vec();
    bad_v[64] -= 27;
    assert_market_revert!(
        p.market
            .redeem_raw(id, v.cumulative_amount, bad_v.into())
            .await,
        InvalidSignature
    );
    let n = U256::from_str_radix(
        "fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141",
        16,
    )
    .expect("n");
    let mut twin = v.signature.to_vec();
    let s = U256::from_be_slice(&twin[32..64]);
    twin[32..64].copy_from_slice(&(n - s).to_be_bytes::<32>());
    twin[64] = if twin[64] == 27 { 28 } else { 27 };
    assert_market_revert!(
        p.market
            .redeem_raw(id, v.cumulative_amount, twin.into())
            .await,
        InvalidSignature
    );

    // Signed by someone else, for another order, or for another deployment.
    let by_provider = p.voucher(id, meth(100)).await;
    let e = assert_market_revert!(p.market.redeem_voucher(&by_provider).await, InvalidSigner);
    assert_eq!((e.recovered, e.expected), (p.addr(), c.addr()));
    let id2 = c.open(&p, eth(1)).await;
    let for_other_order = c.voucher(id2, meth(100)).await;
    let replayed = voucher::SignedVoucher {
        order_id: id,
        ..for_other_order
    };
    assert_market_revert!(p.market.redeem_voucher(&replayed).await, InvalidSigner);
    let foreign_domain = voucher::market_domain(31337, Address::repeat_byte(0x42));
    let foreign = voucher::sign_voucher(&c.signer, &foreign_domain, id, meth(100)).expect("sign");
    assert_market_revert!(p.market.redeem_voucher(&foreign).await, InvalidSigner);

    // The genuine voucher still works, exactly once.
    p.market.redeem_voucher(&v).await.expect("redeem");
    assert_market_revert!(p.market.redeem_voucher(&v).await, VoucherNotIncreasing);
    fx.assert_solvent().await;
}
