//! End-to-end: real `flowshield` daemons in network namespaces, a real local chain
//! (Hardhat) with the market contract, the real probe responder, and an HTTP fullnode
//! stand-in that records what it receives. Needs root; see `src/lib.rs` for how to run.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use flowshield_verifier::error::ProbeError;
use flowshield_verifier::judge;
use flowshield_verifier::probe::Stage;
use flowshield_verifier::verifier::{is_duplicate, submit};
use flowshield_verifier::{ChainOutcome, VerifierError};

fn key_line(p: &Provider) -> String {
    format!("wg_public_key = \"{}\"", p.site.keys.public)
}

/// (1) A good provider passes: verdict pass, signed "passed" report published to the
/// fullnodes (a broken fullnode is retried, then given up), nothing sent on chain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn good_provider_passes() {
    let provider = Provider::start(true).expect("provider");
    let v = VerifierNs::new(&provider, 1).expect("verifier ns");
    provider.admit(&v).expect("admit");
    let market = Market::start(provider.wg_public(), 1).await;
    let (node, broken) = (Fullnode::start(false).await, Fullnode::start(true).await);
    let target = format!("provider = \"{:#x}\"", market.provider_address());
    let config = v.config(
        &[node.url.clone(), broken.url.clone()],
        &market.chain_section(0, &v, "chain"),
        &target,
    );
    let verifier = verifier(config).await;

    // The chain source lists the provider (active, one accepted order).
    let targets = verifier.targets().await.expect("targets");
    assert_eq!(targets.len(), 1);
    assert_eq!(
        targets[0].wg_public_key.map(|k| k.0),
        Some(provider.wg_public())
    );

    let who = format!("{:#x}", market.provider_address());
    let r = verifier.probe_named(&who, |_| {}).await.expect("probe");
    assert!(
        r.verdict.passed,
        "good provider failed: {:?} {:?}",
        r.verdict, r.metrics
    );
    assert!(r.metrics.handshake_ms.is_some());
    assert_eq!(r.metrics.loss_pct, 0.0);
    assert_eq!(r.metrics.transfer_bytes, 2 << 20);
    assert_eq!(r.chain, ChainOutcome::NotNeeded);
    // Judged against the promise the provider registered on chain, not the config.
    let promise = judge::promise_quality(&flowshield_chain::default_quality());
    assert_eq!(Some(r.basis), promise.map(judge::Basis::Promise));
    assert_eq!(r.decision, judge::Decision::Pass);

    let period = market.owner.current_period().await.expect("period");
    assert_eq!(
        market
            .owner
            .fail_reports(market.provider_address(), period)
            .await
            .expect("view"),
        0
    );
    let me = market.verifiers[0].address();
    assert!(!market
        .owner
        .has_reported(me, market.provider_address(), period)
        .await
        .expect("view"));

    // Published: the working fullnode got one report that verifies to this verifier.
    let got = node.reports();
    assert_eq!(got.len(), 1);
    let domain = market.owner.eip712_domain().await.expect("domain");
    assert_eq!(got[0].verify(&domain).expect("valid signature"), me);
    assert!(got[0].report.passed);
    assert_eq!(got[0].report.period, period);
    // The broken one was tried three times.
    assert_eq!(*broken.hits.lock().expect("lock"), 3);
    let by_url = |u: &str| r.deliveries.iter().find(|d| d.fullnode == u).cloned();
    assert!(by_url(&node.url).is_some_and(|d| d.delivered && d.attempts == 1));
    assert!(by_url(&broken.url).is_some_and(|d| !d.delivered && d.attempts == 3));

    // Stored, signed.
    let rows = verifier
        .store()
        .probes_of(market.provider_address())
        .await
        .expect("rows");
    assert_eq!(rows.len(), 1);
    assert!(rows[0].passed && rows[0].signature.is_some());
    assert_eq!(
        verifier
            .store()
            .delivered_count(r.probe_id)
            .await
            .expect("count"),
        1
    );
}

/// (2) A throttled provider (below its 1 Mbit/s promise) is reported failing by three
/// verifiers (own namespaces, keys and staked chain accounts; three is the smallest
/// `minReporters`), each only at its K-th (3rd, the market's `failStreak`) consecutive
/// failing probe; nothing is slashed while the challenge window is open, and
/// `finalize` after it slashes the provider.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttled_provider_is_reported_and_slashed_by_a_quorum_of_three() {
    let provider = Provider::start(true).expect("provider");
    let v1 = VerifierNs::new(&provider, 1).expect("verifier 1 ns");
    let v2 = VerifierNs::new(&provider, 2).expect("verifier 2 ns");
    let v3 = VerifierNs::new(&provider, 3).expect("verifier 3 ns");
    for v in [&v1, &v2, &v3] {
        provider.admit(v).expect("admit");
        provider.throttle(v, "512kbit").expect("tc tbf");
    }
    let market = Market::start(provider.wg_public(), 3).await;
    let node = Fullnode::start(false).await;
    let target = format!("provider = \"{:#x}\"", market.provider_address());
    let p = market.provider_address();
    let period = market.owner.current_period().await.expect("period");

    let mut outcomes = Vec::new();
    for (i, v) in [&v1, &v2, &v3].into_iter().enumerate() {
        let config = v.config(
            std::slice::from_ref(&node.url),
            &market.chain_section(i, v, "chain"),
            &target,
        );
        let mut config = config;
        // 2 s of transfer at 512 kbit/s is far enough below the promise.
        config.probe.transfer_timeout = Duration::from_secs(2);
        let verifier = verifier(config).await;
        let k = u32::from(market.owner.params().await.expect("params").fail_streak);
        assert_eq!(k, 3);
        let mut results = Vec::new();
        for probe in 1..=k {
            results = verifier.round().await.expect("round");
            assert_eq!(results.len(), 1, "verifier {i} probed nothing");
            if probe < k {
                assert_eq!(
                    results[0].chain,
                    ChainOutcome::Waiting {
                        run: probe,
                        needed: k
                    },
                    "verifier {i}, probe {probe}"
                );
                assert!(results[0].signed.is_none());
                assert_eq!(
                    market.owner.fail_reports(p, period).await.expect("view"),
                    i as u64
                );
            }
        }
        let r = &results[0];
        assert!(
            !r.verdict.passed,
            "throttled provider passed: {:?}",
            r.metrics
        );
        assert!(
            r.verdict
                .reasons
                .iter()
                .any(|x| x.starts_with("throughput") && x.ends_with("< 1.00 Mbit/s")),
            "not judged against the 1 Mbit/s promise: {:?}",
            r.verdict.reasons
        );
        assert_eq!(r.decision, judge::Decision::ReportFailure { run: k });
        assert!(
            matches!(r.chain, ChainOutcome::Submitted(_)),
            "{:?}",
            r.chain
        );
        outcomes.push(r.chain.clone());
        // Reports only count; nothing is slashed before the challenge window closes.
        let slashed = market.owner.slashed(p, period).await.expect("view");
        assert!(!slashed, "slashed after {} report(s)", i + 1);
    }

    assert_eq!(market.owner.fail_reports(p, period).await.expect("view"), 3);
    assert!(!market.owner.slashed(p, period).await.expect("view"));
    // Past the challenge window anyone finalizes the period: the quorum failed it.
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
        .expect("past the challenge window");
    market.owner.finalize(p, period).await.expect("finalize");
    assert!(market.owner.slashed(p, period).await.expect("view"));
    // 10 % of the stake is gone, part of it credited to the three reporters on claim.
    let record = market.owner.provider_record(p).await.expect("record");
    assert_eq!(
        record.stake,
        market.stake - market.stake / alloy::primitives::U256::from(10)
    );
    for v in &market.verifiers {
        market
            .owner
            .claim_report(v.address(), p, period)
            .await
            .expect("claim report");
        assert!(
            market.owner.claimable(v.address()).await.expect("view")
                > alloy::primitives::U256::ZERO
        );
    }
    // Both failing reports reached the fullnode and verify.
    let domain = market.owner.eip712_domain().await.expect("domain");
    let got = node.reports();
    assert_eq!(got.len(), 3);
    for (r, v) in got.iter().zip(&market.verifiers) {
        assert!(!r.report.passed);
        assert_eq!(r.verify(&domain).expect("valid"), v.address());
    }
}

/// (3) A verifier cannot report the same provider twice in one period: refused
/// locally, found on chain by `hasReported`, and reverted `DuplicateReport` if forced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verifier_reports_a_provider_once_per_period() {
    // No responder: the provider serves no throughput, so it fails fast.
    let provider = Provider::start(false).expect("provider");
    let v = VerifierNs::new(&provider, 1).expect("verifier ns");
    provider.admit(&v).expect("admit");
    let market = Market::start(provider.wg_public(), 1).await;
    let target = format!("provider = \"{:#x}\"", market.provider_address());
    let chain = market.chain_section(0, &v, "chain");
    let p = market.provider_address();

    let first = verifier(v.config(&[], &chain, &target)).await;
    // Reporting needs K (3) consecutive failing probes in the period.
    for run in 1..3 {
        let r = first.round().await.expect("round before the streak");
        assert_eq!(r[0].chain, ChainOutcome::Waiting { run, needed: 3 });
    }
    let r1 = first.round().await.expect("round 1");
    assert!(!r1[0].verdict.passed);
    assert!(
        matches!(r1[0].chain, ChainOutcome::Submitted(_)),
        "{:?}",
        r1[0].chain
    );
    let r2 = first.round().await.expect("round 2");
    assert_eq!(r2[0].chain, ChainOutcome::AlreadyReportedLocally);

    // A verifier that lost its database still does not send: hasReported is true.
    let mut config = v.config(&[], &chain, &target);
    config.database = v.dir.path().join("fresh.db");
    let fresh = verifier(config).await;
    for run in 1..3 {
        let r = fresh.round().await.expect("fresh round before the streak");
        assert_eq!(r[0].chain, ChainOutcome::Waiting { run, needed: 3 });
    }
    let r3 = fresh.round().await.expect("round 3");
    assert_eq!(r3[0].chain, ChainOutcome::AlreadyOnChain);

    // Forced past both checks, the contract refuses.
    let signed = r3[0].signed.clone().expect("signed");
    let ctx = fresh.chain().expect("chain");
    let err = submit(&ctx.market, &signed)
        .await
        .expect_err("duplicate must revert");
    assert!(is_duplicate(&err), "{err}");

    let period = market.owner.current_period().await.expect("period");
    assert_eq!(market.owner.fail_reports(p, period).await.expect("view"), 1);
    assert!(!market.owner.slashed(p, period).await.expect("view"));
}

/// (4) Probe traffic stays in the test namespaces: the tunnel exists only in the
/// verifier's namespace while it runs, the transfer arrives over that namespace's
/// veth, nothing is left behind, and a target outside the namespaces' networks fails
/// before a single packet is sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_probe_never_leaves_the_test_namespaces() {
    let provider = Provider::start(true).expect("provider");
    let v = VerifierNs::new(&provider, 1).expect("verifier ns");
    provider.admit(&v).expect("admit");
    let key = key_line(&provider);
    let target = format!("provider = \"0x00000000000000000000000000000000000000aa\"\n{key}");
    let verifier = verifier(v.config(&[], "", &target)).await;

    // The verifier namespace routes only its veth subnet: no default route.
    let routes = v.ns.ip(&["route", "show"]).expect("routes");
    assert!(!routes.contains("default"), "{routes}");

    let rx_before = v.counter("rx_bytes");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (seen2, iface, ns_name) = (seen.clone(), v.iface.clone(), v.ns.name().to_string());
    let r = verifier
        .probe_named("provider-a", move |stage| {
            if *stage == Stage::Handshake {
                let in_ns = std::process::Command::new("ip")
                    .args(["-n", &ns_name, "link", "show", "dev", &iface])
                    .output()
                    .map(|o| o.status.success())
                    .unwrap_or(false);
                seen2
                    .lock()
                    .expect("lock")
                    .push((in_ns, host_has_iface(&iface)));
            }
        })
        .await
        .expect("probe");
    assert!(r.verdict.passed, "{:?}", r.verdict);
    assert_eq!(r.chain, ChainOutcome::NoChain);
    assert_eq!(*seen.lock().expect("lock"), vec![(true, false)]);
    let rx = v.counter("rx_bytes") - rx_before;
    assert!(
        rx >= 2 << 20,
        "only {rx} bytes arrived over the namespace veth"
    );
    assert!(!v.has_iface() && !host_has_iface(&v.iface));
    assert!(!flowshield_tunnel::uapi::socket_path(&v.iface).exists());

    // A target outside the namespaces' networks: refused before anything is sent.
    let outside = format!("provider = \"0x00000000000000000000000000000000000000aa\"\n{key}");
    let text = v
        .config_text(&[], "", &outside)
        .replace(&v.endpoint, "192.0.2.1:51820");
    let path = v.dir.path().join("outside.toml");
    std::fs::write(&path, text).expect("write");
    let verifier =
        common::verifier(flowshield_verifier::Config::load(&path).expect("config")).await;
    let tx_before = v.counter("tx_packets");
    let started = Instant::now();
    let err = verifier
        .probe_named("provider-a", |_| {})
        .await
        .expect_err("outside target must fail");
    assert!(
        matches!(
            err,
            VerifierError::Probe(ProbeError::EndpointUnreachable { .. })
        ),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(
        v.counter("tx_packets"),
        tx_before,
        "packets left the verifier"
    );
    assert!(!v.has_iface() && !host_has_iface(&v.iface));
}
