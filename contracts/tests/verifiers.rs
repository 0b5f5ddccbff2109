//! Verifier admission, quality reports (direct and EIP-712 signed), quorum slashing and
//! its distribution; plus TransferFailed and the reentrancy guard via a test contract.

mod common;

use common::{eth, meth, Actor, Fixture};
use flowshield_chain::alloy::contract::{CallBuilder, CallDecoder};
use flowshield_chain::alloy::primitives::{Address, Bytes, B256, U256};
use flowshield_chain::alloy::providers::Provider;
use flowshield_chain::alloy::rpc::types::TransactionReceipt;
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

/// `verifier` submits its report on `provider` for `period` directly.
async fn submit(
    verifier: &Actor,
    provider: Address,
    period: u64,
    passed: bool,
) -> flowshield_chain::Result<TransactionReceipt> {
    let r = report(provider, period, passed);
    verifier.market.submit_report(&r).await
}

/// Send a transaction to the test contract and wait until it is mined.
async fn mined<P: Provider, D: CallDecoder>(call: CallBuilder<P, D>) {
    call.send()
        .await
        .expect("send")
        .get_receipt()
        .await
        .expect("receipt");
}

/// Sending `call` must revert with the market's `TransferFailed`.
async fn assert_transfer_failed<P: Provider, D: CallDecoder>(call: CallBuilder<P, D>) {
    let err = call.send().await.expect_err("transfer must fail");
    let decoded = err
        .as_decoded_interface_error::<BandwidthMarketErrors>()
        .expect("market error");
    assert!(
        matches!(decoded, BandwidthMarketErrors::TransferFailed(_)),
        "{decoded:?}"
    );
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
    fx.admit_verifier(&v1).await;
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
    fx.admit_verifier(&v2).await;
    fx.owner
        .market
        .remove_verifier(v2.addr())
        .await
        .expect("remove v2");
    assert!(!fx.owner.market.is_verifier(v2.addr()).await.expect("view"));

    // submitReport
    let period = fx.owner.market.current_period().await.expect("period");
    assert_market_revert!(submit(&v2, p.addr(), period, true).await, NotVerifier);
    assert_market_revert!(submit(&v1, x.addr(), period, true).await, NotRegistered);
    let e = assert_market_revert!(
        submit(&v1, p.addr(), period + 1, true).await,
        PeriodOutOfRange
    );
    assert_eq!((e.period, e.current), (period + 1, period));
    assert_market_revert!(
        submit(&v1, p.addr(), period - 2, true).await,
        PeriodOutOfRange
    );
    submit(&v1, p.addr(), period, true).await.expect("report");
    assert!(fx.has_reported(v1.addr(), p.addr(), period).await);
    let e = assert_market_revert!(submit(&v1, p.addr(), period, false).await, DuplicateReport);
    assert_eq!(
        (e.verifier, e.provider, e.period),
        (v1.addr(), p.addr(), period)
    );
    submit(&v1, p.addr(), period - 1, false)
        .await
        .expect("previous period allowed");
    assert_eq!(fx.fail_reports(p.addr(), period - 1).await, 1);

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
    fx.admit_verifier(&v2).await;
    let by_v2 = voucher::sign_report(&v2.signer, &domain, &r).expect("sign");
    x.market
        .submit_signed_report(&r, by_v2)
        .await
        .expect("relayed report");
    assert!(fx.has_reported(v2.addr(), p.addr(), period).await);
    assert!(!fx.has_reported(x.addr(), p.addr(), period).await);
}

#[tokio::test]
async fn quorum_of_failing_reports_slashes_once_and_pays_clients_and_verifiers() {
    let fx = Fixture::new(MarketParams::default()).await; // quorum 2, 10 % slash, 20 % to verifiers
    let p = fx.provider(eth(10)).await;
    let (c1, c2) = (fx.actor().await, fx.actor().await);
    let vs = [fx.actor().await, fx.actor().await, fx.actor().await];
    for v in &vs {
        fx.admit_verifier(v).await;
    }
    fx.open_accepted(&c1, &p, eth(1)).await;
    fx.open_accepted(&c2, &p, eth(1)).await;
    let _pending = c2.open(&p, eth(1)).await;
    // Part of the stake is unbonding: still slashable.
    p.market
        .request_unstake(eth(2))
        .await
        .expect("partial unstake");

    let period = fx.owner.market.current_period().await.expect("period");
    submit(&vs[0], p.addr(), period, true).await.expect("pass");
    submit(&vs[1], p.addr(), period, false)
        .await
        .expect("fail 1");
    assert!(!fx.slashed(p.addr(), period).await, "below quorum");
    submit(&vs[2], p.addr(), period, false)
        .await
        .expect("fail 2 -> slash");
    assert!(fx.slashed(p.addr(), period).await);

    // 10 % of 10 ETH = 1 ETH: 0.2 to the 2 failing reporters, 0.8 to the 2 active orders.
    let rec = fx.record(p.addr()).await;
    assert_eq!((rec.stake, rec.unbonding), (eth(7), eth(2)));
    for (who, want) in [
        (c1.addr(), meth(400)),
        (c2.addr(), meth(400)),
        (vs[0].addr(), U256::ZERO),
        (vs[1].addr(), meth(100)),
        (vs[2].addr(), meth(100)),
    ] {
        assert_eq!(fx.claimable(who).await, want);
    }
    fx.assert_solvent().await;

    // A third failing report for the same period does not slash again.
    let late = fx.actor().await;
    fx.admit_verifier(&late).await;
    submit(&late, p.addr(), period, false)
        .await
        .expect("late fail report");
    assert_eq!(fx.fail_reports(p.addr(), period).await, 3);
    assert_eq!(fx.record(p.addr()).await.stake, eth(7));
    assert_eq!(fx.claimable(late.addr()).await, U256::ZERO);
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
    fx.admit_verifier(&v).await;
    p.market.request_unstake(eth(2)).await.expect("unstake");
    let period = fx.owner.market.current_period().await.expect("period");
    submit(&v, p.addr(), period, false)
        .await
        .expect("fail -> slash");
    let rec = fx.record(p.addr()).await;
    assert_eq!((rec.stake, rec.unbonding), (U256::ZERO, U256::ZERO));
    assert_eq!(fx.claimable(v.addr()).await, eth(3));
    assert!(!fx.is_active(p.addr()).await);
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
    mined(receiver.openOrder(p.addr()).value(eth(1))).await;
    mined(receiver.cancelOrder(id)).await;
    assert_eq!(fx.claimable(*receiver.address()).await, eth(1));
    mined(receiver.setMode(1)).await; // Reject
    assert_transfer_failed(receiver.withdraw()).await;

    // Re-entering withdraw() from receive() hits the guard; the payout happens once.
    mined(receiver.setMode(2)).await; // Reenter
    let before = fx.balance(*receiver.address()).await;
    mined(receiver.withdraw()).await;
    assert_eq!(fx.balance(*receiver.address()).await, before + eth(1));
    assert_eq!(
        receiver.reentryAttempts().call().await.expect("view"),
        U256::from(1u64)
    );
    let reason = receiver.lastReentryError().call().await.expect("view");
    let guard_selector =
        flowshield_chain::bindings::BandwidthMarket::ReentrancyGuardReentrantCall::SELECTOR;
    assert_eq!(&reason[..4], guard_selector.as_slice());

    // Same for withdrawStake() paying a contract provider.
    mined(receiver.setMode(0)).await;
    let key = B256::repeat_byte(9);
    mined(receiver.register(key).value(eth(1))).await;
    mined(receiver.requestUnstake(eth(1))).await;
    fx.advance(fx.params.unstake_delay).await;
    mined(receiver.setMode(1)).await;
    assert_transfer_failed(receiver.withdrawStake()).await;
    mined(receiver.setMode(0)).await;
    mined(receiver.withdrawStake()).await;
    fx.assert_solvent().await;
}
