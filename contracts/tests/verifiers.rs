//! Verifier staking, quality reports (direct and EIP-712 signed), finalizing a period
//! after its challenge window, quorum slashing and its distribution (bonds, rewards,
//! escrow-weighted client shares); plus TransferFailed and the reentrancy guard via a
//! test contract.

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
async fn verifier_staking_and_report_reverts() {
    let fx = Fixture::new(MarketParams::default()).await;
    let v1 = fx.actor().await;
    let v2 = fx.actor().await;
    let x = fx.actor().await;
    let p = fx.provider(eth(1)).await;
    let min = fx.params.min_verifier_stake;

    // joinVerifiers: anyone, by staking at least the minimum; no owner involved.
    assert_market_revert!(v1.market.join_verifiers(U256::ZERO).await, ZeroAmount);
    let e = assert_market_revert!(
        v1.market.join_verifiers(min - U256::from(1u64)).await,
        InsufficientStake
    );
    assert_eq!((e.given, e.minimum), (min - U256::from(1u64), min));
    fx.admit_verifier(&v1).await;
    assert!(fx.owner.market.is_verifier(v1.addr()).await.expect("view"));
    assert!(!fx.owner.market.is_verifier(x.addr()).await.expect("view"));
    fx.admit_verifier(&v2).await;
    // Leaving: the rest must be zero or >= min; the stake is locked for the delay.
    let staked = fx
        .owner
        .market
        .verifier_record(v2.addr())
        .await
        .expect("rec")
        .stake;
    assert_market_revert!(
        v2.market
            .request_verifier_unstake(staked - U256::from(1u64))
            .await,
        StakeBelowMinimum
    );
    assert_market_revert!(
        v2.market
            .request_verifier_unstake(staked + U256::from(1u64))
            .await,
        AmountExceedsStake
    );
    assert_market_revert!(v2.market.withdraw_verifier_stake().await, NothingToWithdraw);
    v2.market
        .request_verifier_unstake(staked)
        .await
        .expect("leave");
    assert!(!fx.owner.market.is_verifier(v2.addr()).await.expect("view"));
    assert_market_revert!(v2.market.withdraw_verifier_stake().await, UnbondingLocked);
    fx.advance(fx.params.verifier_unbond_delay).await;
    let before = fx.balance(v2.addr()).await;
    let r = v2.market.withdraw_verifier_stake().await.expect("withdraw");
    assert_eq!(
        fx.balance(v2.addr()).await,
        before + staked - common::gas_cost(&r)
    );

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
    // The report locked one bond of v1's stake.
    let rec = fx
        .owner
        .market
        .verifier_record(v1.addr())
        .await
        .expect("rec");
    assert_eq!(rec.stake, min + fx.params.report_bond * U256::from(9u64));
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
    // 3 failing reporters that are >= 2/3 of all reports, 10 % slash, 20 % to verifiers.
    let fx = Fixture::new(MarketParams::default()).await;
    let p = fx.provider(eth(10)).await;
    let (c1, c2) = (fx.actor().await, fx.actor().await);
    let vs = [
        fx.actor().await,
        fx.actor().await,
        fx.actor().await,
        fx.actor().await,
    ];
    for v in &vs {
        fx.admit_verifier(v).await;
    }
    let o1 = fx.open_accepted(&c1, &p, eth(1)).await;
    let o2 = fx.open_accepted(&c2, &p, eth(1)).await;
    let _pending = c2.open(&p, eth(1)).await;
    // Part of the stake is unbonding: still slashable.
    p.market
        .request_unstake(eth(2))
        .await
        .expect("partial unstake");

    let period = fx.owner.market.current_period().await.expect("period");
    submit(&vs[0], p.addr(), period, true).await.expect("pass");
    for v in &vs[1..] {
        submit(v, p.addr(), period, false).await.expect("fail");
    }
    assert!(
        !fx.slashed(p.addr(), period).await,
        "no slash before the window closes"
    );
    let e = assert_market_revert!(
        vs[0].market.finalize(p.addr(), period).await,
        ChallengeWindowOpen
    );
    assert_eq!(e.period, period);
    let stranger = fx.actor().await;
    fx.finalize(&stranger, p.addr(), period).await;
    assert!(fx.slashed(p.addr(), period).await);

    // 10 % of 10 ETH = 1 ETH: 0.2 + the wrong reporter's 0.01 bond to the 3 failing
    // reporters (0.07 each), 0.8 to the 2 accepted orders by escrow (0.4 each).
    let rec = fx.record(p.addr()).await;
    assert_eq!((rec.stake, rec.unbonding), (eth(7), eth(2)));
    for id in [o1, o2] {
        assert_eq!(
            fx.owner.market.pending_slash_share(id).await.expect("view"),
            meth(400)
        );
        stranger
            .market
            .claim_slash_share(id)
            .await
            .expect("claim share");
    }
    for v in &vs {
        stranger
            .market
            .claim_report(v.addr(), p.addr(), period)
            .await
            .expect("claim report");
    }
    for (who, want) in [
        (c1.addr(), meth(400)),
        (c2.addr(), meth(400)),
        (vs[0].addr(), U256::ZERO),
        (vs[1].addr(), meth(70)),
        (vs[2].addr(), meth(70)),
        (vs[3].addr(), meth(70)),
    ] {
        assert_eq!(fx.claimable(who).await, want);
    }
    // The wrong reporter lost its bond; the right ones got theirs back.
    let staked = fx.params.min_verifier_stake + fx.params.report_bond * U256::from(10u64);
    let bond = fx.params.report_bond;
    let v0 = fx
        .owner
        .market
        .verifier_record(vs[0].addr())
        .await
        .expect("rec");
    let v1 = fx
        .owner
        .market
        .verifier_record(vs[1].addr())
        .await
        .expect("rec");
    assert_eq!((v0.stake, v1.stake), (staked - bond, staked));
    assert_market_revert!(
        stranger
            .market
            .claim_report(vs[1].addr(), p.addr(), period)
            .await,
        NothingToClaim
    );
    fx.assert_solvent().await;

    // A late report for the same period is refused, and the period is not judged again.
    let late = fx.actor().await;
    fx.admit_verifier(&late).await;
    assert_market_revert!(
        submit(&late, p.addr(), period, false).await,
        PeriodOutOfRange
    );
    assert_market_revert!(
        late.market.finalize(p.addr(), period).await,
        AlreadyFinalized
    );
    assert_eq!(fx.fail_reports(p.addr(), period).await, 3);
    assert_eq!(fx.record(p.addr()).await.stake, eth(7));
    assert_eq!(fx.claimable(late.addr()).await, U256::ZERO);
    fx.assert_solvent().await;
}

#[tokio::test]
async fn slash_without_active_orders_goes_to_verifiers_and_can_eat_unbonding() {
    let params = MarketParams {
        slash_bps: 10_000,
        ..MarketParams::default()
    };
    let fx = Fixture::new(params).await;
    let p = fx.provider(eth(3)).await;
    let vs = [fx.actor().await, fx.actor().await, fx.actor().await];
    for v in &vs {
        fx.admit_verifier(v).await;
    }
    p.market.request_unstake(eth(2)).await.expect("unstake");
    let period = fx.owner.market.current_period().await.expect("period");
    for v in &vs {
        submit(v, p.addr(), period, false).await.expect("fail");
    }
    fx.finalize(&vs[0], p.addr(), period).await;
    let rec = fx.record(p.addr()).await;
    assert_eq!((rec.stake, rec.unbonding), (U256::ZERO, U256::ZERO));
    for v in &vs {
        v.market
            .claim_report(v.addr(), p.addr(), period)
            .await
            .expect("claim");
        assert_eq!(fx.claimable(v.addr()).await, eth(1));
    }
    assert!(!fx.is_active(p.addr()).await);
    assert_market_revert!(p.market.withdraw_stake().await, NothingToWithdraw);
    fx.assert_solvent().await;
}

#[tokio::test]
async fn too_few_or_uncontradicted_failing_reports_do_not_slash() {
    let fx = Fixture::new(MarketParams::default()).await;
    let p = fx.provider(eth(10)).await;
    let vs = [fx.actor().await, fx.actor().await, fx.actor().await];
    for v in &vs {
        fx.admit_verifier(v).await;
    }
    let period = fx.owner.market.current_period().await.expect("period");
    assert_market_revert!(
        vs[0]
            .market
            .claim_report(vs[0].addr(), p.addr(), period)
            .await,
        NotFinalized
    );
    // Two failing reports, nobody else: below minReporters, nobody contradicted them.
    for v in &vs[..2] {
        submit(v, p.addr(), period, false).await.expect("fail");
    }
    fx.finalize(&vs[2], p.addr(), period).await;
    assert!(!fx.slashed(p.addr(), period).await);
    assert_eq!(fx.record(p.addr()).await.stake, eth(10));
    let staked = fx.params.min_verifier_stake + fx.params.report_bond * U256::from(10u64);
    for v in &vs[..2] {
        v.market
            .claim_report(v.addr(), p.addr(), period)
            .await
            .expect("bond back");
        let rec = fx
            .owner
            .market
            .verifier_record(v.addr())
            .await
            .expect("rec");
        assert_eq!(rec.stake, staked, "an uncontradicted report keeps its bond");
    }
    assert_market_revert!(
        vs[2]
            .market
            .claim_report(vs[2].addr(), p.addr(), period)
            .await,
        NothingToClaim
    );
    // A period without reports cannot be finalized.
    assert_market_revert!(
        vs[2].market.finalize(p.addr(), period + 5).await,
        ChallengeWindowOpen
    );
    let now = fx.owner.market.current_period().await.expect("period");
    fx.advance(2 * fx.params.report_period).await;
    assert_market_revert!(vs[2].market.finalize(p.addr(), now).await, NoReports);
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
