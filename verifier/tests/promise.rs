//! Attack tests (issue 14, item 3): a verifier must judge a provider by the quality the
//! provider promised on chain, and only after K consecutive failing probes of a period.
//! Real `flowshield` daemons in namespaces, a real local chain; needs root.
//!
//! Both were run against the code before the fix, where they failed: the verifier
//! reported on chain after one probe judged against its own config's thresholds.

mod common;

use alloy::primitives::Address;
use common::*;
use flowshield_verifier::{ChainOutcome, Verifier};

/// One provider throttled to `rate` towards one verifier, its market (a 1 Mbit/s
/// promise on chain), a fullnode, and that verifier configured against them. The
/// daemons and namespaces live as long as this does.
/// Fields drop in order: the verifier first, the provider's namespace last.
struct Throttled {
    verifier: Verifier,
    p: Address,
    node: Fullnode,
    market: Market,
    _v: VerifierNs,
    _provider: Provider,
}

impl Throttled {
    async fn start(rate: &str) -> Self {
        let provider = Provider::start(true).expect("provider");
        let v = VerifierNs::new(&provider, 1).expect("verifier ns");
        provider.admit(&v).expect("admit");
        provider.throttle(&v, rate).expect("tc tbf");
        let market = Market::start(provider.wg_public(), 1).await;
        let node = Fullnode::start(false).await;
        let p = market.provider_address();
        let target = format!("provider = \"{p:#x}\"");
        let config = v.config(
            std::slice::from_ref(&node.url),
            &market.chain_section(0, &v, "chain"),
            &target,
        );
        let verifier = verifier(config).await;
        Self {
            verifier,
            p,
            node,
            market,
            _v: v,
            _provider: provider,
        }
    }
}

/// A verifier whose config demands 4 Mbit/s probes a provider that promised 1 Mbit/s
/// on chain and delivers about 2: the provider keeps its promise, so the verifier's own
/// stricter thresholds must not get it reported (nor fail its verdict).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_strict_verifier_cannot_report_a_provider_that_keeps_its_promise() {
    // The common config asks min_throughput_mbps = 4; the chain promise is 1 Mbit/s.
    let t = Throttled::start("2mbit").await;
    let (market, node, p, verifier) = (&t.market, &t.node, t.p, &t.verifier);
    let results = verifier.round().await.expect("round");
    assert_eq!(results.len(), 1, "nothing probed");
    let r = &results[0];
    let mbps = r.metrics.throughput_mbps.unwrap_or(0.0);
    assert!(
        (1.0..4.0).contains(&mbps),
        "the fixture should deliver between the promise and the config: {mbps} Mbit/s"
    );
    assert!(r.verdict.passed, "judged by the config: {:?}", r.verdict);
    assert_eq!(r.chain, ChainOutcome::NotNeeded);
    let period = market.owner.current_period().await.expect("period");
    assert_eq!(market.owner.fail_reports(p, period).await.expect("view"), 0);
    assert!(node.reports().iter().all(|s| s.report.passed));
}

/// One failing probe (a blip, or congestion on the verifier's own side) must not spend
/// the verifier's vote for the period: nothing on chain, nothing signed as failing that
/// someone could relay there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_failing_probe_is_not_reported() {
    let t = Throttled::start("512kbit").await;
    let (market, node, p, verifier) = (&t.market, &t.node, t.p, &t.verifier);
    let results = verifier.round().await.expect("round");
    assert_eq!(results.len(), 1, "nothing probed");
    let r = &results[0];
    assert!(!r.verdict.passed, "the throttled provider passed");
    assert!(
        !matches!(r.chain, ChainOutcome::Submitted(_)),
        "reported after one probe: {:?}",
        r.chain
    );
    assert!(r.signed.is_none(), "a lone failing probe was signed");
    let period = market.owner.current_period().await.expect("period");
    assert_eq!(market.owner.fail_reports(p, period).await.expect("view"), 0);
    let me = market.verifiers[0].address();
    assert!(!market
        .owner
        .has_reported(me, p, period)
        .await
        .expect("view"));
    assert!(node.reports().is_empty(), "a failing report was published");
}
