//! Trust on a real local chain (`LocalChain`, hardhat; run
//! `bash contracts/scripts/setup.sh` once): DeCA admission of providers by
//! certificate (a real CA service issuing through its HTTP API, a real
//! `DecaRegistry`), and verifier reports (a real `BandwidthMarket` with an
//! admitted verifier) feeding reputation into `/v1/match`.

mod common;

use common::chain::{eth, register_provider};
use common::http::request_json as http;
use common::net::{provider_config, start_fullnode, wait_fullnode, within};
use flowshield_ca::authority::Authority;
use flowshield_ca::client::CaClient;
use flowshield_ca::node::NodeKeys;
use flowshield_ca::registry::{ChainRegistry, Registry};
use flowshield_ca::service::{api, CaService, ServiceConfig};
use flowshield_ca::store::Store;
use flowshield_ca::unix_now;
use flowshield_chain::alloy::primitives::{keccak256, Address, B256};
use flowshield_chain::alloy::signers::local::PrivateKeySigner;
use flowshield_chain::alloy::sol_types::Eip712Domain;
use flowshield_chain::voucher::{sign_published_report, Report};
use flowshield_chain::{DecaRegistryClient, LocalChain, MarketClient, MarketParams};
use flowshield_market::fullnode::certgate::CertPolicy;
use flowshield_market::fullnode::reports::period::MIN_RESYNC_MS;
use flowshield_market::fullnode::{DecaConfig, FullnodeEvent};
use flowshield_market::provider::{Provider, ProviderConfig};
use flowshield_proto::{ChainAddress, Keypair, Offer, Region, WgPublicKey};
use libp2p::Multiaddr;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

fn offer(keypair: &Keypair, wg: [u8; 32], chain: ChainAddress, price: u128) -> Offer {
    Offer {
        chain_address: chain,
        wg_public_key: WgPublicKey(wg),
        region: Region::new("eu").unwrap(),
        price_per_gib_wei: price,
        ..common::net::offer(keypair)
    }
}

async fn start_provider(
    keypair: Keypair,
    offer: Offer,
    bootstrap: Vec<Multiaddr>,
    certificate: Option<Vec<Vec<u8>>>,
) -> Provider {
    Provider::start(ProviderConfig {
        bootstrap,
        heartbeat_interval: Duration::from_millis(300),
        dht_refresh_every: 100,
        certificate,
        cert_announce_every: Duration::from_millis(300),
        ..provider_config(keypair, offer)
    })
    .await
    .unwrap()
}

/// A node's libp2p key as the market's keypair type.
fn market_keypair(keys: &NodeKeys) -> Keypair {
    let mut seed = hex::decode(keys.to_file().libp2p_secret).unwrap();
    Keypair::ed25519_from_bytes(&mut seed).unwrap()
}

#[tokio::test]
async fn providers_are_admitted_only_with_a_matching_certificate() {
    let chain = LocalChain::start()
        .await
        .expect("local chain (run contracts/scripts/setup.sh)");
    let owner =
        DecaRegistryClient::deploy(chain.provider_for(chain.dev_signer(0).unwrap()).unwrap())
            .await
            .unwrap();
    let operator = chain.funded_signer().await.unwrap();
    let operator_registry: Arc<dyn Registry> = Arc::new(
        ChainRegistry::connect(chain.rpc_url(), owner.address(), operator.clone()).unwrap(),
    );
    let authority = Authority::create(operator.address(), unix_now()).unwrap();
    let ca_hash = B256::from(authority.ca_cert_hash());
    let store = Store::open(":memory:").await.unwrap();
    let svc = CaService::new(
        authority,
        store,
        Some(operator_registry),
        ServiceConfig::default(),
    )
    .await
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ca_url = format!("http://{}", listener.local_addr().unwrap());
    let ca_server = tokio::spawn(async move {
        axum::serve(listener, api::router(svc)).await.unwrap();
    });
    owner
        .register_operator(operator.address(), ca_hash, &ca_url)
        .await
        .unwrap();
    let ca = CaClient::new(&ca_url);

    let registry =
        ChainRegistry::connect(chain.rpc_url(), owner.address(), PrivateKeySigner::random())
            .unwrap();
    let (_dir, fullnode) = start_fullnode(|c| {
        c.deca = Some(DecaConfig {
            registry,
            policy: CertPolicy {
                require: true,
                ttl: Duration::from_secs(600),
            },
        });
    })
    .await;
    let mut events = fullnode.subscribe();
    let bootstrap = fullnode.net.listen_addrs().to_vec();

    // Honest: the certificate binds exactly the heartbeat's keys.
    let honest = NodeKeys::generate();
    let honest_chain = ca
        .request_certificate(&honest)
        .await
        .unwrap()
        .chain()
        .unwrap();
    let binding = honest.binding();
    let honest_key = market_keypair(&honest);
    let honest_offer = offer(
        &honest_key,
        binding.wg_pubkey,
        ChainAddress(binding.chain_address.into_array()),
        10,
    );
    // Liar: a genuine certificate, but its heartbeats name another wg key.
    let liar = NodeKeys::generate();
    let liar_chain = ca
        .request_certificate(&liar)
        .await
        .unwrap()
        .chain()
        .unwrap();
    let liar_key = market_keypair(&liar);
    let liar_offer = offer(
        &liar_key,
        [0x42; 32],
        ChainAddress(liar.binding().chain_address.into_array()),
        5,
    );
    // No certificate at all.
    let bare_key = Keypair::generate_ed25519();
    let bare_offer = offer(&bare_key, [7; 32], ChainAddress([7; 20]), 1);

    let mut nodes = Vec::new();
    for (key, offer, chain) in [
        (honest_key.clone(), honest_offer, Some(honest_chain)),
        (liar_key.clone(), liar_offer, Some(liar_chain)),
        (bare_key.clone(), bare_offer, None),
    ] {
        nodes.push(start_provider(key, offer, bootstrap.clone(), chain).await);
    }

    let honest_id = honest_key.public().to_peer_id();
    wait_fullnode(
        &mut events,
        "the certified provider indexed",
        |e| matches!(e, FullnodeEvent::Indexed { provider, .. } if *provider == honest_id),
    )
    .await;
    wait_fullnode(&mut events, "the mismatching certificate refused", |e| {
        matches!(
            e,
            FullnodeEvent::Rejected {
                reason: "cert_binding_mismatch"
            }
        )
    })
    .await;
    wait_fullnode(
        &mut events,
        "the provider without certificate refused",
        |e| {
            matches!(
                e,
                FullnodeEvent::Rejected {
                    reason: "no_certificate"
                }
            )
        },
    )
    .await;

    let (status, listed) = http(fullnode.http_addr, "GET", "/v1/providers", "").await;
    assert_eq!(status, 200);
    let ids: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["offer"]["provider_peer_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        vec![honest_id.to_base58().as_str()],
        "only the certified one"
    );
    let metrics = fullnode.metrics.render();
    assert!(metrics.contains("flowshield_cert_checks_total{result=\"valid\"} 1"));
    assert!(!metrics.contains("flowshield_cert_checks_total{result=\"cert_binding_mismatch\"} 0"));
    assert!(!metrics.contains("flowshield_heartbeats_total{result=\"no_certificate\"} 0"));

    for node in nodes {
        node.shutdown().await;
    }
    fullnode.shutdown().await;
    ca_server.abort();
}

/// A report body exactly as the verifier publishes it.
fn report_body(
    signer: &PrivateKeySigner,
    domain: &Eip712Domain,
    provider: Address,
    period: u64,
    passed: bool,
) -> String {
    let metrics = format!(
        r#"{{"handshake_ms":12.5,"loss_pct":{},"rtt_p50_ms":3.1}}"#,
        if passed { 0.0 } else { 40.0 }
    );
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

#[tokio::test]
async fn verifier_reports_are_checked_gossiped_and_move_reputation() {
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
    // Verifiers are permissionless: a funded account joins by staking.
    let verifier = chain.funded_signer().await.unwrap();
    owner
        .with_provider(chain.provider_for(verifier.clone()).unwrap())
        .join_verifiers(params.min_verifier_stake)
        .await
        .unwrap();
    let domain = owner.eip712_domain().await.unwrap();
    let market = MarketClient::at(owner.address(), chain.reader().clone());

    let (_d1, one) = start_fullnode(|c| c.market = Some(market.clone())).await;
    let one_addrs = one.net.listen_addrs().to_vec();
    let (_d2, two) = start_fullnode(|c| {
        c.market = Some(market.clone());
        c.bootstrap = one_addrs.clone();
    })
    .await;
    let mut events = one.subscribe();

    // Two providers; the cheaper one wins while reputations are neutral.
    let cheap_key = Keypair::generate_ed25519();
    let good_key = Keypair::generate_ed25519();
    // Registered and staked, so the fullnodes' stake gate admits them.
    let (cheap_signer, _) = register_provider(&chain, &owner, &cheap_key, [1; 32], eth(1)).await;
    let (good_signer, _) = register_provider(&chain, &owner, &good_key, [2; 32], eth(1)).await;
    let cheap_addr = cheap_signer.address();
    let good_addr = good_signer.address();
    let cheap = start_provider(
        cheap_key.clone(),
        offer(
            &cheap_key,
            [1; 32],
            ChainAddress(cheap_addr.into_array()),
            50,
        ),
        one_addrs.clone(),
        None,
    )
    .await;
    let good = start_provider(
        good_key.clone(),
        offer(&good_key, [2; 32], ChainAddress(good_addr.into_array()), 55),
        one_addrs.clone(),
        None,
    )
    .await;
    for id in [
        cheap_key.public().to_peer_id(),
        good_key.public().to_peer_id(),
    ] {
        wait_fullnode(
            &mut events,
            "provider indexed",
            |e| matches!(e, FullnodeEvent::Indexed { provider, .. } if *provider == id),
        )
        .await;
    }
    let best = |addr| async move {
        let (status, body) = http(
            addr,
            "POST",
            "/v1/match",
            r#"{"max_price_per_gib_wei":"100"}"#,
        )
        .await;
        assert_eq!(status, 200, "{body}");
        body["offer"]["chain_address"].as_str().unwrap().to_string()
    };
    assert_eq!(best(one.http_addr).await, format!("{cheap_addr:#x}"));

    // Three periods: the cheap one fails, the other passes. Reports are
    // taken for the market's current period and the one before only, so
    // the chain's clock moves a period on between them (and the fullnode,
    // which re-syncs at most every MIN_RESYNC_MS, is given that long).
    let first = owner.current_period().await.unwrap();
    for period in first..first + 3 {
        if period > first {
            chain
                .increase_time(MarketParams::default().report_period)
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(MIN_RESYNC_MS)).await;
        }
        for (provider, passed) in [(cheap_addr, false), (good_addr, true)] {
            let body = report_body(&verifier, &domain, provider, period, passed);
            let (status, answer) = http(one.http_addr, "POST", "/v1/reports", &body).await;
            assert_eq!(status, 201, "{answer}");
            assert_eq!(answer["new"], true);
        }
    }
    let again = report_body(&verifier, &domain, good_addr, first + 2, true);
    let (status, answer) = http(one.http_addr, "POST", "/v1/reports", &again).await;
    assert_eq!((status, &answer["new"]), (200, &Value::Bool(false)));
    assert_eq!(best(one.http_addr).await, format!("{good_addr:#x}"));

    // Reputation per provider, with the reports behind it.
    let reputation = |addr: Address| async move {
        let path = format!("/v1/providers/{addr:#x}/reputation");
        let (status, body) = http(one.http_addr, "GET", &path, "").await;
        assert_eq!(status, 200, "{body}");
        body
    };
    let good_rep = reputation(good_addr).await;
    assert_eq!(good_rep["provider"], format!("{good_addr:#x}"));
    assert_eq!(
        (good_rep["reports"].as_u64(), good_rep["passed"].as_u64()),
        (Some(3), Some(3))
    );
    assert_eq!(good_rep["latest_period"], first + 2);
    assert!(good_rep["reputation"].as_f64().unwrap() > 0.5, "{good_rep}");
    let cheap_rep = reputation(cheap_addr).await;
    assert_eq!(
        (cheap_rep["reports"].as_u64(), cheap_rep["passed"].as_u64()),
        (Some(3), Some(0))
    );
    assert!(
        cheap_rep["reputation"].as_f64().unwrap() < 0.5,
        "{cheap_rep}"
    );
    let stranger_rep = reputation(Address::repeat_byte(0x77)).await;
    assert_eq!(
        (
            stranger_rep["reports"].as_u64(),
            stranger_rep["reputation"].as_f64()
        ),
        (Some(0), Some(0.5))
    );
    let (status, answer) = http(one.http_addr, "GET", "/v1/providers/0x12/reputation", "").await;
    assert_eq!((status, answer["field"].as_str()), (400, Some("address")));

    let (status, listed) = http(
        one.http_addr,
        "GET",
        &format!("/v1/reports?provider={good_addr:#x}"),
        "",
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(listed.as_array().unwrap().len(), 3);
    assert_eq!(listed[0]["period"], first + 2);
    assert_eq!(listed[0]["report"]["report"]["passed"], true);

    // The second fullnode got them through gossip.
    within("reports gossiped to the second fullnode", async {
        loop {
            let (_, listed) = http(
                two.http_addr,
                "GET",
                &format!("/v1/reports?provider={cheap_addr:#x}"),
                "",
            )
            .await;
            if listed.as_array().map(|a| a.len()) == Some(3) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;

    // Refusals name the field.
    let stranger = PrivateKeySigner::random();
    let good_body = report_body(&verifier, &domain, good_addr, 9, true);
    let mut bad_sig: Value = serde_json::from_str(&good_body).unwrap();
    bad_sig["signature"] = Value::String(format!("0x{}", "11".repeat(65)));
    let other_domain = flowshield_chain::voucher::market_domain(1, owner.address());
    let cases: Vec<(String, u16, &str)> = vec![
        (
            report_body(&stranger, &domain, good_addr, 9, true),
            403,
            "verifier",
        ),
        (bad_sig.to_string(), 400, "signature"),
        (
            good_body.replace(r#""passed":true"#, r#""passed":false"#),
            400,
            "signature",
        ),
        (
            good_body.replace("\"loss_pct\":0", "\"loss_pct\":1"),
            400,
            "metrics_hash",
        ),
        (
            report_body(&verifier, &other_domain, good_addr, 9, true),
            400,
            "chain_id",
        ),
        (good_body.replace(r#""period":9,"#, ""), 400, "period"),
        ("{not json".into(), 400, "body"),
        (
            good_body.replace(&format!("{good_addr:#x}"), "0x12"),
            400,
            "provider",
        ),
    ];
    for (body, status, field) in cases {
        let (got, answer) = http(one.http_addr, "POST", "/v1/reports", &body).await;
        assert_eq!(
            (got, answer["field"].as_str()),
            (status, Some(field)),
            "{body}\n{answer}"
        );
    }
    let (status, answer) = http(one.http_addr, "GET", "/v1/reports", "").await;
    assert_eq!((status, answer["field"].as_str()), (400, Some("provider")));
    let metrics = one.metrics.render();
    assert!(
        metrics.contains("flowshield_reports_total{result=\"accepted\",source=\"http\"} 6"),
        "{metrics}"
    );
    assert!(metrics.contains("flowshield_reports_total{result=\"not_verifier\",source=\"http\"} 1"));

    cheap.shutdown().await;
    good.shutdown().await;
    one.shutdown().await;
    two.shutdown().await;
}
