//! A staked verifier trying to pin a provider's reputation with
//! reports outside the market's period window, on a real local chain
//! (`LocalChain`, hardhat; run `bash contracts/scripts/setup.sh` once) with
//! a real fullnode: over HTTP and as a raw libp2p node gossiping reports.
//! Only the current period and the one before are taken, as the contract
//! does; the window follows the chain's clock.

mod common;

use common::http::request_json as http;
use common::net::{listen_tcp, start_fullnode, within};
use flowshield_chain::alloy::primitives::{keccak256, Address};
use flowshield_chain::alloy::signers::local::PrivateKeySigner;
use flowshield_chain::alloy::sol_types::Eip712Domain;
use flowshield_chain::voucher::{sign_published_report, Report};
use flowshield_chain::{LocalChain, MarketClient, MarketParams};
use flowshield_market::fullnode::reports::period::MIN_RESYNC_MS;
use flowshield_market::fullnode::Fullnode;
use flowshield_market::net::{self, NetConfig, NetEvent};
use flowshield_proto::Keypair;
use std::time::Duration;

/// A report body exactly as the verifier publishes it.
fn report_body(
    signer: &PrivateKeySigner,
    domain: &Eip712Domain,
    provider: Address,
    period: u64,
    passed: bool,
) -> String {
    let metrics = r#"{"handshake_ms":12.5,"loss_pct":0.0,"rtt_p50_ms":3.1}"#;
    let metrics_hash = keccak256(metrics.as_bytes());
    let report = Report {
        provider,
        period,
        passed,
        metricsHash: metrics_hash,
    };
    let signature = sign_published_report(signer, domain, &report).unwrap();
    format!(
        r#"{{"verifier":"{:#x}","market":"{:#x}","chain_id":{},"report":{{"provider":"{provider:#x}","period":{period},"passed":{passed},"metrics_hash":"{metrics_hash}"}},"metrics":{metrics},"reasons":[],"signature":"{signature}"}}"#,
        signer.address(),
        domain.verifying_contract.unwrap(),
        domain.chain_id.unwrap(),
    )
}

fn metric(fullnode: &Fullnode, series: &str) -> u64 {
    let text = fullnode.metrics.render();
    text.lines()
        .find_map(|l| l.strip_prefix(series).map(|v| v.trim().parse().unwrap()))
        .unwrap_or_else(|| panic!("no series {series} in\n{text}"))
}

#[tokio::test]
async fn reports_outside_the_period_window_are_refused_and_counted() {
    let chain = LocalChain::start()
        .await
        .expect("local chain (run contracts/scripts/setup.sh)");
    let params = MarketParams::default();
    let owner = MarketClient::deploy(
        chain.provider_for(chain.dev_signer(0).unwrap()).unwrap(),
        &params,
        // Governance: a plain account is enough here (no parameter changes).
        chain.dev_signer(0).unwrap().address(),
    )
    .await
    .unwrap();
    let verifier = chain.funded_signer().await.unwrap();
    owner
        .with_provider(chain.provider_for(verifier.clone()).unwrap())
        .join_verifiers(params.min_verifier_stake)
        .await
        .unwrap();
    let domain = owner.eip712_domain().await.unwrap();
    let market = MarketClient::at(owner.address(), chain.reader().clone());
    let (_dir, fullnode) = start_fullnode(|c| c.market = Some(market.clone())).await;

    let provider = Address::repeat_byte(0xc3);
    let post = |period: u64, passed: bool| {
        let body = report_body(&verifier, &domain, provider, period, passed);
        async move { http(fullnode.http_addr, "POST", "/v1/reports", &body).await }
    };
    let current = owner.current_period().await.unwrap();

    // The attack: a passing report for a far-future period would be the
    // provider's newest for years, and one for a long-gone period rewrites
    // history. Both are refused, naming the field.
    for period in [current + 1_000_000, current + 1, current - 2, current - 500] {
        let (status, answer) = post(period, true).await;
        assert_eq!(
            (status, answer["field"].as_str()),
            (422, Some("period")),
            "period {period} (current {current}): {answer}"
        );
        assert!(
            answer["error"]
                .as_str()
                .unwrap()
                .contains(&period.to_string()),
            "{answer}"
        );
    }
    assert_eq!(
        metric(
            &fullnode,
            "flowshield_reports_total{result=\"future_period\",source=\"http\"}"
        ),
        2
    );
    assert_eq!(
        metric(
            &fullnode,
            "flowshield_reports_total{result=\"stale_period\",source=\"http\"}"
        ),
        2
    );

    // The current period and the one before are taken.
    for period in [current, current - 1] {
        let (status, answer) = post(period, false).await;
        assert_eq!(status, 201, "period {period}: {answer}");
    }
    let path = format!("/v1/providers/{provider:#x}/reputation");
    let (_, standing) = http(fullnode.http_addr, "GET", &path, "").await;
    assert_eq!(standing["reports"], 2, "{standing}");
    assert_eq!(standing["latest_period"], current, "{standing}");
    assert!(standing["reputation"].as_f64().unwrap() < 0.5, "{standing}");
    let (_, listed) = http(
        fullnode.http_addr,
        "GET",
        &format!("/v1/reports?provider={provider:#x}"),
        "",
    )
    .await;
    assert_eq!(listed.as_array().unwrap().len(), 2, "SQL holds what counts");

    // The chain's clock moves a period on: the window follows it (the
    // fullnode re-syncs when a report looks future), and the oldest
    // period it took is now stale.
    chain.increase_time(params.report_period).await.unwrap();
    let next = owner.current_period().await.unwrap();
    assert_eq!(next, current + 1);
    // A report that looks future re-syncs the fullnode's clock, at most
    // every MIN_RESYNC_MS (the last sync was at the future reports above).
    tokio::time::sleep(Duration::from_millis(MIN_RESYNC_MS)).await;
    let (status, answer) = post(next, false).await;
    assert_eq!(status, 201, "period {next} after the chain moved: {answer}");
    let (status, answer) = post(current - 1, true).await;
    assert_eq!(
        (status, answer["field"].as_str()),
        (422, Some("period")),
        "{answer}"
    );

    // The same attack over gossip, from a raw libp2p node: ignored (not
    // stored, not counted in reputation), counted by reason.
    let mut config = NetConfig::new(Keypair::generate_ed25519());
    config.listen = listen_tcp();
    config.bootstrap = fullnode.net.listen_addrs().to_vec();
    let (attacker, mut events) = net::spawn(config).await.unwrap();
    within("the fullnode's subscription", async {
        while let Some(event) = events.recv().await {
            if matches!(event, NetEvent::PeerSubscribed { peer } if peer == fullnode.net.peer_id())
            {
                return;
            }
        }
        panic!("net events closed");
    })
    .await;
    tokio::spawn(async move { while events.recv().await.is_some() {} });
    let future = report_body(&verifier, &domain, provider, next + 50, true);
    attacker.publish_report(future.into_bytes()).await.unwrap();
    within("the gossiped report counted", async {
        let series = "flowshield_reports_total{result=\"future_period\",source=\"gossip\"}";
        // Polled: reports from gossip have no event of their own.
        while metric(&fullnode, series) == 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    let (_, standing) = http(fullnode.http_addr, "GET", &path, "").await;
    assert_eq!(standing["reports"], 3, "{standing}");
    assert_eq!(standing["latest_period"], next, "{standing}");

    attacker.shutdown().await;
    fullnode.shutdown().await;
}
