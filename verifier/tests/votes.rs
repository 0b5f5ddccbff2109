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
use flowshield_chain::{MarketClient, MarketParams};
use flowshield_verifier::report::{self, ProbeRecord};
use flowshield_verifier::stats::{Metrics, Verdict};
use flowshield_verifier::{ChainOutcome, Config, Verifier};

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
    assert_eq!(
        published.verify(&domain).expect("fullnodes accept it"),
        verifier.address()
    );

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

/// A verifier for voting only (no probe interface is ever brought up): its own
/// database, WireGuard key and chain key (`market.verifiers[i]`), a static target.
async fn voter(market: &Market, i: usize) -> (tempfile::TempDir, Verifier) {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = tempfile::Builder::new()
        .prefix("fsvoter-")
        .tempdir()
        .expect("dir");
    let secret = |name: &str, text: &str| {
        let path = dir.path().join(name);
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .mode(0o600)
            .open(&path)
            .expect("key file");
        std::io::Write::write_all(&mut f, text.as_bytes()).expect("write key");
        path
    };
    let wg = secret("wg.key", "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=");
    let chain = secret("chain.key", &market.verifiers[i].to_bytes().to_string());
    let text = format!(
        r#"database = "{db}"
fullnodes = []

[verifier]
wg_private_key_file = "{wg}"
interface = "fsvote{i}"

[chain]
rpc_url = "{rpc}"
market = "{market:#x}"
private_key_file = "{chain}"
source = "config"

[[targets]]
name = "provider-a"
provider = "{provider:#x}"
endpoint = "198.18.99.1:51820"
tunnel_address = "10.77.0.99/32"
probe_address = "10.77.0.1"
wg_public_key = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc="
"#,
        db = dir.path().join("results.db").display(),
        wg = wg.display(),
        rpc = market.chain.rpc_url(),
        market = market.owner.address(),
        chain = chain.display(),
        provider = market.provider_address(),
    );
    let path = dir.path().join("verifier.toml");
    std::fs::write(&path, text).expect("config");
    let v = verifier(Config::load(&path).expect("valid config")).await;
    (dir, v)
}

/// Store probes of the market's provider in `period` as `v` would after measuring:
/// `true` = passed (signed and published), `false` = failed.
async fn probed(v: &Verifier, market: &Market, period: u64, verdicts: &[bool]) {
    let ctx = v.chain().expect("chain");
    for passed in verdicts {
        let (metrics, verdict) = if *passed {
            (
                good_metrics(),
                Verdict {
                    passed: true,
                    reasons: vec![],
                },
            )
        } else {
            let m = Metrics::unreachable("down");
            (
                m,
                Verdict {
                    passed: false,
                    reasons: vec!["down".into()],
                },
            )
        };
        let signed = report::sign(
            &ctx.signer,
            &ctx.domain,
            market.provider_address(),
            period,
            &metrics,
            &verdict,
        )
        .expect("sign");
        let record = ProbeRecord {
            started_at_ms: 0,
            target: "provider-a".into(),
            provider: market.provider_address(),
            period: Some(period),
            metrics,
            verdict,
            signed: Some(signed),
        };
        v.store().insert_probe(&record).await.expect("store");
    }
}

/// Move the chain past the end of `period` (inside its challenge window).
async fn end_period(market: &Market, period: u64) {
    let p = MarketParams::default().report_period;
    let now = market.chain.latest_timestamp().await.expect("timestamp");
    let end = (period + 1) * p;
    market
        .chain
        .increase_time(end.saturating_sub(now) + 1)
        .await
        .expect("time");
}

async fn close_window(market: &Market, period: u64) {
    let closes = market
        .owner
        .challenge_closes_at(period)
        .await
        .expect("view");
    let now = market.chain.latest_timestamp().await.expect("timestamp");
    market
        .chain
        .increase_time(closes.saturating_sub(now) + 1)
        .await
        .expect("time");
}

/// (b), the driver: the pass vote waits for the period's end, lands inside the
/// challenge window, once; a period with a K-run of failures gets no pass vote.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verifier_votes_pass_once_after_the_period_it_saw_pass() {
    let market = Market::start([7u8; 32], 2).await;
    let p = market.provider_address();
    let period = market.owner.current_period().await.expect("period");
    let (_d1, good) = voter(&market, 0).await;
    let (_d2, bad) = voter(&market, 1).await;
    probed(&good, &market, period, &[true, false, false, true]).await;
    probed(&bad, &market, period, &[true, false, false, false, true]).await;

    // While the period runs, nobody votes pass (a failure may still come).
    assert!(good.cast_closing_votes().await.expect("votes").is_empty());
    assert_eq!(
        market.owner.tally(p, period).await.expect("tally").passes,
        0
    );

    end_period(&market, period).await;
    let votes = good.cast_closing_votes().await.expect("votes");
    assert_eq!(votes.len(), 1, "{votes:?}");
    assert_eq!((votes[0].provider, votes[0].period), (p, period));
    assert!(
        matches!(votes[0].outcome, ChainOutcome::Submitted(_)),
        "{votes:?}"
    );
    // K = 3 consecutive failures happened for the other one: no pass vote from it.
    assert!(bad.cast_closing_votes().await.expect("votes").is_empty());
    let tally = market.owner.tally(p, period).await.expect("tally");
    assert_eq!((tally.passes, tally.fails), (1, 0));
    assert!(market
        .owner
        .has_reported(market.verifiers[0].address(), p, period)
        .await
        .expect("view"));
    // Once: the next round finds the vote recorded.
    assert!(good.cast_closing_votes().await.expect("votes").is_empty());

    // After the challenge window the verifier finalizes and claims: its bond is back.
    let me = market.verifiers[0].address();
    let bonded = market
        .owner
        .verifier_record(me)
        .await
        .expect("record")
        .stake;
    assert!(
        good.claim_past_votes().await.expect("claim").is_empty(),
        "window open"
    );
    close_window(&market, period).await;
    // Claiming looks only at periods whose window has closed by the period count.
    let p_len = MarketParams::default().report_period;
    market.chain.increase_time(p_len).await.expect("time");
    assert_eq!(
        good.claim_past_votes().await.expect("claim"),
        vec![(p, period)]
    );
    let tally = market.owner.tally(p, period).await.expect("tally");
    assert!(tally.finalized && !tally.failed);
    let back = market
        .owner
        .verifier_record(me)
        .await
        .expect("record")
        .stake;
    assert_eq!(back, bonded + MarketParams::default().report_bond);
    assert!(
        good.claim_past_votes().await.expect("claim").is_empty(),
        "claimed twice"
    );
}

/// (b), the attack: three colluding staked verifiers vote fail on an honest provider
/// while five honest verifiers probe it and find it fine. The honest verifiers' drivers
/// vote pass after the period, so the failing share stays under `failQuorumBps` and
/// `finalize` does not slash. (Before: honest verifiers never voted pass, the tally was
/// 3 fails out of 3 and the provider was slashed.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_colluders_cannot_slash_a_provider_five_honest_verifiers_saw_pass() {
    let market = Market::start([7u8; 32], 8).await;
    let p = market.provider_address();
    let period = market.owner.current_period().await.expect("period");
    for colluder in &market.verifiers[5..] {
        let fail = Report {
            provider: p,
            period,
            passed: false,
            metricsHash: report::metrics_hash(&Metrics::unreachable("made up")),
        };
        as_account(&market, colluder)
            .submit_report(&fail)
            .await
            .expect("colluder's fail vote");
    }
    let mut honest = Vec::new();
    for i in 0..5 {
        let (dir, v) = voter(&market, i).await;
        probed(&v, &market, period, &[true, true, true]).await;
        honest.push((dir, v));
    }
    end_period(&market, period).await;
    for (_, v) in &honest {
        let votes = v.cast_closing_votes().await.expect("votes");
        assert!(
            votes
                .iter()
                .any(|x| matches!(x.outcome, ChainOutcome::Submitted(_))),
            "{votes:?}"
        );
    }
    let tally = market.owner.tally(p, period).await.expect("tally");
    assert_eq!((tally.passes, tally.fails), (5, 3));
    close_window(&market, period).await;
    market.owner.finalize(p, period).await.expect("finalize");
    assert!(
        !market.owner.slashed(p, period).await.expect("view"),
        "three colluders slashed a provider five honest verifiers saw pass"
    );
    let record = market.owner.provider_record(p).await.expect("record");
    assert_eq!(record.stake, market.stake);
}
