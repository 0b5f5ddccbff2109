//! Attack tests (issue 14): a verifier's vote on chain is its own to cast.
//!
//! (a) A pass report a verifier publishes to fullnodes during a period must not be a
//!     valid on-chain vote: otherwise the provider relays it with `submitSignedReport`,
//!     spends the verifier's one vote for the period, and the verifier's later failure
//!     (after K failing probes) lands as `DuplicateReport` and never counts.
//! (b) Honest verifiers cast a pass vote for each period they probed without a failing
//!     streak, after the period ends and inside its challenge window, so colluders'
//!     failures are weighed against them.
//!
//! A real local chain; no namespaces or daemons (the probes are stored results).

mod common;

use alloy::signers::local::PrivateKeySigner;
use common::*;
use flowshield_chain::voucher::Report;
use flowshield_chain::MarketClient;
use flowshield_verifier::report;
use flowshield_verifier::stats::{Metrics, Verdict};

/// `signer`'s view of the market (transactions sent from its key).
fn as_account(market: &Market, signer: &PrivateKeySigner) -> MarketClient {
    let provider = market.chain.provider_for(signer.clone()).expect("rpc");
    market.owner.with_provider(provider)
}

fn good_metrics() -> Metrics {
    let mut m = Metrics::unreachable("placeholder");
    m.error = None;
    m.handshake_ms = Some(20.0);
    m.rtt_p50_ms = Some(5.0);
    m.loss_pct = 0.0;
    m.throughput_mbps = Some(50.0);
    m.quantized()
}

/// (a) The provider relays the verifier's published pass report on chain with its own
/// key. It must not count as the verifier's vote, and the verifier's failing vote for
/// the same period (its K-th consecutive failing probe) must still count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_published_pass_report_cannot_be_relayed_as_the_verifiers_vote() {
    let market = Market::start([7u8; 32], 1).await;
    let p = market.provider_address();
    let verifier = &market.verifiers[0];
    let domain = market.owner.eip712_domain().await.expect("domain");
    let period = market.owner.current_period().await.expect("period");
    // Early in the period the provider looks good: the verifier publishes a pass.
    let pass = Verdict {
        passed: true,
        reasons: vec![],
    };
    let published =
        report::sign(verifier, &domain, p, period, &good_metrics(), &pass).expect("sign");
    assert_eq!(published.verify(&domain).expect("fullnodes accept it"), verifier.address());

    // The provider, with its own key, relays it as the verifier's vote.
    let as_provider = as_account(&market, &market.provider);
    let relay = as_provider
        .submit_signed_report(
            &published.to_report().expect("report"),
            published.signature_bytes().expect("signature").into(),
        )
        .await;
    assert!(
        relay.is_err(),
        "the provider relayed the verifier's published pass report as its on-chain vote"
    );
    assert!(!market
        .owner
        .has_reported(verifier.address(), p, period)
        .await
        .expect("view"));

    // Later in the period the provider degrades: the verifier votes fail, and it counts.
    let fail = Report {
        provider: p,
        period,
        passed: false,
        metricsHash: report::metrics_hash(&Metrics::unreachable("down")),
    };
    as_account(&market, verifier)
        .submit_report(&fail)
        .await
        .expect("the verifier's own failing vote");
    assert_eq!(market.owner.fail_reports(p, period).await.expect("view"), 1);
}
