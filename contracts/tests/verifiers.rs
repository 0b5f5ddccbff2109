//! Verifier admission, quality reports (direct and EIP-712 signed), quorum slashing and
//! its distribution; plus TransferFailed and the reentrancy guard via a test contract.

mod common;

use common::{eth, meth, Fixture};
use flowshield_chain::alloy::primitives::{Address, Bytes, B256, U256};
use flowshield_chain::alloy::sol;
use flowshield_chain::alloy::sol_types::SolError;
use flowshield_chain::bindings::BandwidthMarket::BandwidthMarketErrors;
use flowshield_chain::voucher::{self, Report};
use flowshield_chain::MarketParams;

sol!(
    #[sol(rpc)]
    TestReceiver,
    "build/TestReceiver.json"
);

fn report(provider: Address, period: u64, passed: bool) -> Report {
    Report {
        provider,
        period,
        passed,
        metricsHash: B256::repeat_byte(0x33),
    }
}

#[tokio::test]
async fn verifier_admission_and_report_reverts() {
    let fx = Fixture::new(MarketParams::default()).await;
    let v1 = fx.actor().await;
    let v2 = fx.actor().await;
    let x = fx.actor().await;
    let p = fx.provider(eth(1)).await;

    // registerVerifier / removeVerifier: owner only.
    assert_market_revert!(
        x.market.register_verifier(v1.addr()).await,
        OwnableUnauthorizedAccount
    );
    assert_market_revert!(
        fx.owner.market.register_verifier(Address::ZERO).await,
        ZeroAddress
    );
    fx.owner
        .market
        .register_verifier(v1.addr())
        .await
        .expect("register v1");
    assert!(fx.owner.market.is_verifier(v1.addr()).await.expect("view"));
    assert_market_revert!(
        fx.owner.market.register_verifier(v1.addr()).await,
        AlreadyVerifier
    );
    assert_market_revert!(
        x.market.remove_verifier(v1.addr()).await,
        OwnableUnauthorizedAccount
    );
    assert_market_revert!(
        fx.owner.market.remove_verifier(v2.addr()).await,
        NotVerifier
    );
    fx.owner
        .market
        .register_verifier(v2.addr())
        .await
        .expect("register v2");
    fx.owner
        .market
        .remove_verifier(v2.addr())
        .await
        .expect("remove v2");
    assert!(!fx.owner.market.is_verifier(v2.addr()).await.expect("view"));

    // submitReport
    let period = fx.owner.market.current_period().await.expect("period");
    assert_market_revert!(
        v2.market
            .submit_report(&report(p.addr(), period, true))
            .await,
        NotVerifier
    );
    assert_market_revert!(
        v1.market
            .submit_report(&report(x.addr(), period, true))
            .await,
        NotRegistered
    );
    let e = assert_market_revert!(
        v1.market
            .submit_report(&report(p.addr(), period + 1, true))
            .await,
        PeriodOutOfRange
    );
    assert_eq!((e.period, e.current), (period + 1, period));
    assert_market_revert!(
        v1.market
            .submit_report(&report(p.addr(), period - 2, true))
            .await,
        PeriodOutOfRange
    );
    v1.market
        .submit_report(&report(p.addr(), period, true))
        .await
        .expect("report");
    assert!(fx
        .owner
        .market
        .has_reported(v1.addr(), p.addr(), period)
        .await
        .expect("view"));
    let e = assert_market_revert!(
        v1.market
            .submit_report(&report(p.addr(), period, false))
            .await,
        DuplicateReport
    );
    assert_eq!(
        (e.verifier, e.provider, e.period),
        (v1.addr(), p.addr(), period)
    );
    v1.market
        .submit_report(&report(p.addr(), period - 1, false))
        .await
        .expect("previous period allowed");
    assert_eq!(
        fx.owner
            .market
            .fail_reports(p.addr(), period - 1)
            .await
            .expect("view"),
        1
    );

    // submitSignedReport: relayed by anyone, attributed to the signer.
    let domain = fx.owner.market.eip712_domain().await.expect("domain");
    let r = report(p.addr(), period, false);
    assert_eq!(
        fx.owner
            .market
            .report_digest_on_chain(&r)
            .await
            .expect("digest"),
        voucher::report_digest(&domain, &r)
    );
    let garbage = Bytes::from(vec![1u8; 65]);
    assert_market_revert!(
        x.market.submit_signed_report(&r, garbage).await,
        InvalidSignature
    );
    let by_stranger = voucher::sign_report(&x.signer, &domain, &r).expect("sign");
    assert_market_revert!(
        x.market.submit_signed_report(&r, by_stranger).await,
        NotVerifier
    );
    let by_v1 = voucher::sign_report(&v1.signer, &domain, &r).expect("sign");
    assert_market_revert!(
        x.market.submit_signed_report(&r, by_v1).await,
        DuplicateReport
    );
    fx.owner
        .market
        .register_verifier(v2.addr())
        .await
        .expect("re-admit v2");
    let by_v2 = voucher::sign_report(&v2.signer, &domain, &r).expect("sign");
    x.market
        .submit_signed_report(&r, by_v2)
        .await
        .expect("relayed report");
    assert!(fx
        .owner
        .market
        .has_reported(v2.addr(), p.addr(), period)
        .await
        .expect("view"));
    assert!(!fx
        .owner
        .market
        .has_reported(x.addr(), p.addr(), period)
        .await
        .expect("view"));
}

#[tokio::test]
async fn quorum_of_failing_reports_slashes_once_and_pays_clients_and_verifiers() {
    let fx = Fixture::new(MarketParams::default()).await; // quorum 2, 10 % slash, 20 % to verifiers
    let p = fx.provider(eth(10)).await;
    let (c1, c2) = (fx.actor().await, fx.actor().await);
    let vs = [fx.actor().await, fx.actor().await, fx.actor().await];
    for v in &vs {
        fx.owner
            .market
            .register_verifier(v.addr())
            .await
            .expect("admit");
    }
    let (o1, _) = c1
        .market
        .open_order(p.addr(), eth(1))
        .await
        .expect("open 1");
    let (o2, _) = c2
        .market
        .open_order(p.addr(), eth(1))
        .await
        .expect("open 2");
    let (_pending, _) = c2
        .market
        .open_order(p.addr(), eth(1))
        .await
        .expect("open 3");
    p.market.accept_order(o1).await.expect("accept 1");
    p.market.accept_order(o2).await.expect("accept 2");
    // Part of the stake is unbonding: still slashable.
    p.market
        .request_unstake(eth(2))
        .await
        .expect("partial unstake");

    let period = fx.owner.market.current_period().await.expect("period");
    vs[0]
        .market
        .submit_report(&report(p.addr(), period, true))
        .await
        .expect("pass");
    vs[1]
        .market
        .submit_report(&report(p.addr(), period, false))
        .await
        .expect("fail 1");
    assert!(
        !fx.owner
            .market
            .slashed(p.addr(), period)
            .await
            .expect("view"),
        "below quorum"
    );
    vs[2]
        .market
        .submit_report(&report(p.addr(), period, false))
        .await
        .expect("fail 2 -> slash");
    assert!(fx
        .owner
        .market
        .slashed(p.addr(), period)
        .await
        .expect("view"));

    // 10 % of 10 ETH = 1 ETH: 0.2 to the 2 failing reporters, 0.8 to the 2 active orders.
    let rec = fx
        .owner
        .market
        .provider_record(p.addr())
        .await
        .expect("record");
    assert_eq!((rec.stake, rec.unbonding), (eth(7), eth(2)));
    for (who, want) in [
        (c1.addr(), meth(400)),
        (c2.addr(), meth(400)),
        (vs[0].addr(), U256::ZERO),
        (vs[1].addr(), meth(100)),
        (vs[2].addr(), meth(100)),
    ] {
        assert_eq!(fx.owner.market.claimable(who).await.expect("view"), want);
    }
    fx.assert_solvent().await;

    // A third failing report for the same period does not slash again.
    let late = fx.actor().await;
    fx.owner
        .market
        .register_verifier(late.addr())
        .await
        .expect("admit");
    late.market
        .submit_report(&report(p.addr(), period, false))
        .await
        .expect("late fail report");
    assert_eq!(
        fx.owner
            .market
            .fail_reports(p.addr(), period)
            .await
            .expect("view"),
        3
    );
    assert_eq!(
        fx.owner
            .market
            .provider_record(p.addr())
            .await
            .expect("record")
            .stake,
        eth(7)
    );
    assert_eq!(
        fx.owner.market.claimable(late.addr()).await.expect("view"),
        U256::ZERO
    );
    fx.assert_solvent().await;
}

#[tokio::test]
async fn slash_without_active_orders_goes_to_verifiers_and_can_eat_unbonding() {
    let params = MarketParams {
        quorum: 1,
        slash_bps: 10_000,
        ..MarketParams::default()
    };
    let fx = Fixture::new(params).await;
    let p = fx.provider(eth(3)).await;
    let v = fx.actor().await;
    fx.owner
        .market
        .register_verifier(v.addr())
        .await
        .expect("admit");
    p.market.request_unstake(eth(2)).await.expect("unstake");
    let period = fx.owner.market.current_period().await.expect("period");
    v.market
        .submit_report(&report(p.addr(), period, false))
        .await
        .expect("fail -> slash");
    let rec = fx
        .owner
        .market
        .provider_record(p.addr())
        .await
        .expect("record");
    assert_eq!((rec.stake, rec.unbonding), (U256::ZERO, U256::ZERO));
    assert_eq!(
        fx.owner.market.claimable(v.addr()).await.expect("view"),
        eth(3)
    );
    assert!(!fx
        .owner
        .market
        .is_active_provider(p.addr())
        .await
        .expect("view"));
    assert_market_revert!(p.market.withdraw_stake().await, NothingToWithdraw);
    fx.assert_solvent().await;
}

#[tokio::test]
async fn transfer_failure_and_reentrancy_are_handled() {
    let fx = Fixture::new(MarketParams::default()).await;
    let user = fx.actor().await;
    let provider = fx
        .chain
        .provider_for(user.signer.clone())
        .expect("provider");
    let receiver = TestReceiver::deploy(provider, fx.owner.market.address())
        .await
        .expect("deploy receiver");
    let p = fx.provider(eth(1)).await;

    // A contract client whose receive() reverts: the credit survives, withdraw reverts.
    let id: U256 = receiver
        .openOrder(p.addr())
        .value(eth(1))
        .call()
        .await
        .expect("simulate");
    receiver
        .openOrder(p.addr())
        .value(eth(1))
        .send()
        .await
        .expect("send")
        .get_receipt()
        .await
        .expect("receipt");
    receiver
        .cancelOrder(id)
        .send()
        .await
        .expect("send")
        .get_receipt()
        .await
        .expect("receipt");
    assert_eq!(
        fx.owner
            .market
            .claimable(*receiver.address())
            .await
            .expect("view"),
        eth(1)
    );
    receiver
        .setMode(1)
        .send()
        .await
        .expect("send")
        .get_receipt()
        .await
        .expect("receipt"); // Reject
    let err = receiver
        .withdraw()
        .send()
        .await
        .expect_err("withdraw must revert");
    let decoded = err
        .as_decoded_interface_error::<BandwidthMarketErrors>()
        .expect("market error");
    assert!(
        matches!(decoded, BandwidthMarketErrors::TransferFailed(_)),
        "{decoded:?}"
    );

    // Re-entering withdraw() from receive() hits the guard; the payout happens once.
    receiver
        .setMode(2)
        .send()
        .await
        .expect("send")
        .get_receipt()
        .await
        .expect("receipt"); // Reenter
    let before = fx
        .chain
        .balance(*receiver.address())
        .await
        .expect("balance");
    receiver
        .withdraw()
        .send()
        .await
        .expect("send")
        .get_receipt()
        .await
        .expect("receipt");
    assert_eq!(
        fx.chain
            .balance(*receiver.address())
            .await
            .expect("balance"),
        before + eth(1)
    );
    assert_eq!(
        receiver.reentryAttempts().call().await.expect("view"),
        U256::from(1u64)
    );
    let reason = receiver.lastReentryError().call().await.expect("view");
    let guard_selector =
        flowshield_chain::bindings::BandwidthMarket::ReentrancyGuardReentrantCall::SELECTOR;
    assert_eq!(&reason[..4], guard_selector.as_slice());

    // Same for withdrawStake() paying a contract provider.
    receiver
        .setMode(0)
        .send()
        .await
        .expect("send")
        .get_receipt()
        .await
        .expect("receipt");
    let key = B256::repeat_byte(9);
    receiver
        .register(key)
        .value(eth(1))
        .send()
        .await
        .expect("send")
        .get_receipt()
        .await
        .expect("receipt");
    receiver
        .requestUnstake(eth(1))
        .send()
        .await
        .expect("send")
        .get_receipt()
        .await
        .expect("receipt");
    fx.chain
        .increase_time(fx.params.unstake_delay)
        .await
        .expect("time");
    receiver
        .setMode(1)
        .send()
        .await
        .expect("send")
        .get_receipt()
        .await
        .expect("receipt");
    let err = receiver
        .withdrawStake()
        .send()
        .await
        .expect_err("rejecting provider");
    let decoded = err
        .as_decoded_interface_error::<BandwidthMarketErrors>()
        .expect("decode");
    assert!(
        matches!(decoded, BandwidthMarketErrors::TransferFailed(_)),
        "{decoded:?}"
    );
    receiver
        .setMode(0)
        .send()
        .await
        .expect("send")
        .get_receipt()
        .await
        .expect("receipt");
    receiver
        .withdrawStake()
        .send()
        .await
        .expect("send")
        .get_receipt()
        .await
        .expect("receipt");
    fx.assert_solvent().await;
}
