//! The client as the victim of a dishonest provider. The attacker is a raw
//! libp2p node answering the client's `Connect` with crafted `Connected`
//! answers, plus raw contract calls on a local chain; a stand-in fullnode
//! serves the attacker's own signed offer. The client is the real
//! [`flowshield_market::client::run`]; its `flowshield` CLI is a script
//! that records each call, so the test sees whether the client would have
//! brought a tunnel up with what the attacker sent (no root needed: the
//! client refuses before any interface exists).

mod common;

use axum::routing::{get, post};
use common::devnet;
use common::net::listen_tcp;
use flowshield_chain::alloy::primitives::U256;
use flowshield_chain::{LocalChain, MarketClient, OrderStatus, ProviderTerms};
use flowshield_market::client::config::ClientFile;
use flowshield_market::client::{self, Overrides};
use flowshield_market::net::{self, MarketRequest, MarketResponse, NetConfig, NetEvent, NetHandle};
use flowshield_market::wire::api::{MatchView, ProviderView};
use flowshield_market::wire::raw::RawSessionResponse;
use flowshield_market::wire::session::{ConnectedInfo, SessionRequest, SessionResponse};
use flowshield_proto::{ChainAddress, Heartbeat, Keypair, Offer, SignedMessage, WgPublicKey};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The WireGuard key the attacker registered on chain.
const REGISTERED_WG: [u8; 32] = [9; 32];

/// What the dishonest provider does with a `Connect`.
struct Attack {
    /// Accept the order on chain first (as an honest provider would).
    accept_on_chain: bool,
    /// Its `Connected` answer, built from the order id.
    answer: fn(U256) -> ConnectedInfo,
}

/// An answer an honest provider of 10.77.0.0/24 would give.
fn honest(order_id: U256) -> ConnectedInfo {
    ConnectedInfo {
        order_id,
        tunnel_address: "10.77.0.2/24".parse().unwrap(),
        provider_wg_public_key: WgPublicKey(REGISTERED_WG),
        endpoint: "127.0.0.1:51820".parse().unwrap(),
        allowed_ips: vec!["10.77.0.0/24".parse().unwrap()],
        persistent_keepalive: 25,
        provider_tunnel_ip: "10.77.0.1".parse().unwrap(),
    }
}

/// What the attack left behind.
struct Outcome {
    /// The client's error when it gave up.
    error: String,
    /// Every `flowshield` call the client made (`up <file>`, `down <file>`).
    calls: String,
    /// The attacked order's status on chain after the client stopped.
    status: OrderStatus,
}

/// Answers session requests as the attacker; records the order id.
async fn serve_attack(
    net: NetHandle,
    mut events: tokio::sync::mpsc::Receiver<NetEvent>,
    market: MarketClient,
    attack: Attack,
    order_seen: Arc<Mutex<Option<U256>>>,
) {
    while let Some(event) = events.recv().await {
        let NetEvent::InboundRequest {
            request: MarketRequest::Session(raw),
            channel,
            ..
        } = event
        else {
            continue;
        };
        let response = match raw.decode() {
            Ok(SessionRequest::Connect(connect)) => {
                *order_seen.lock().unwrap() = Some(connect.order_id);
                if attack.accept_on_chain {
                    market.accept_order(connect.order_id).await.unwrap();
                }
                SessionResponse::Connected((attack.answer)(connect.order_id))
            }
            Ok(SessionRequest::Voucher(v)) => SessionResponse::VoucherAccepted {
                order_id: v.order_id,
                cumulative_wei: v.cumulative_wei,
            },
            Ok(SessionRequest::Disconnect { order_id }) => SessionResponse::Disconnected {
                order_id,
                redeemed_wei: U256::ZERO,
            },
            Err(e) => panic!("the client sent a malformed request: {e}"),
        };
        let raw = RawSessionResponse::encode(&response).unwrap();
        let _ = net.respond(channel, MarketResponse::Session(raw)).await;
    }
}

/// A fullnode stand-in on 127.0.0.1 that matches every client with `offer`.
async fn fake_fullnode(offer: Offer, signed: String) -> String {
    let view = MatchView {
        offer: offer.clone(),
        score: 1.0,
        reputation: 1.0,
        signed_heartbeat: signed.clone(),
    };
    let listed = ProviderView {
        offer,
        seq: 1,
        timestamp_ms: flowshield_market::unix_ms(),
        last_seen_ms: flowshield_market::unix_ms(),
        signed_heartbeat: signed,
    };
    let app = axum::Router::new()
        .route(
            "/v1/match",
            post(move || {
                let view = view.clone();
                async move { axum::Json(view) }
            }),
        )
        .route(
            "/v1/providers",
            get(move || {
                let listed = listed.clone();
                async move { axum::Json(vec![listed]) }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

/// A `flowshield` CLI that only records its calls in `log`.
fn recording_cli(dir: &Path, log: &Path) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let bin = dir.join("flowshield");
    std::fs::write(
        &bin,
        format!("#!/bin/sh\necho \"$@\" >> '{}'\nexit 0\n", log.display()),
    )
    .unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    bin
}

async fn run_attack(attack: Attack) -> Outcome {
    let chain = LocalChain::start().await.expect("local chain");
    let market = devnet::deploy(&chain, &devnet::demo_params())
        .await
        .unwrap();
    let evil_signer = chain.funded_signer().await.unwrap();
    let client_signer = chain.funded_signer().await.unwrap();
    let as_evil = market.with_provider(chain.provider_for(evil_signer.clone()).unwrap());
    let terms = ProviderTerms {
        price_per_gib: U256::from(1u64 << 30),
        price_per_hour: U256::ZERO,
        peer_id_hash: Default::default(),
        wg_public_key: REGISTERED_WG,
        quality: flowshield_chain::default_quality(),
    };
    as_evil
        .register(U256::from(10u64).pow(U256::from(18u64)), &terms)
        .await
        .unwrap();

    // The attacker's libp2p node and its own, validly signed offer.
    let keypair = Keypair::generate_ed25519();
    let mut config = NetConfig::new(keypair.clone());
    config.listen = listen_tcp();
    let (evil_net, evil_events) = net::spawn(config).await.unwrap();
    let offer = Offer {
        chain_address: ChainAddress(evil_signer.address().0 .0),
        wg_public_key: WgPublicKey(REGISTERED_WG),
        price_per_gib_wei: 1 << 30,
        tunnel_subnet: Some("10.77.0.0/24".parse().unwrap()),
        ..common::net::offer(&keypair)
    };
    let heartbeat = Heartbeat {
        offer: offer.clone(),
        seq: 1,
        timestamp_ms: flowshield_market::unix_ms(),
    };
    let signed = SignedMessage::sign(&heartbeat, &keypair).unwrap();
    let signed = String::from_utf8(signed.to_bytes()).unwrap();
    let fullnode = fake_fullnode(offer, signed).await;
    let order_seen = Arc::new(Mutex::new(None));
    let attacker = tokio::spawn(serve_attack(
        evil_net.clone(),
        evil_events,
        as_evil.clone(),
        attack,
        order_seen.clone(),
    ));

    // The victim: the real client, its chain key funded.
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("client.key");
    flowshield_market::chain::write_key_file(&key_file, &client_signer).unwrap();
    let log = dir.path().join("calls.log");
    let bin = recording_cli(dir.path(), &log);
    let bootstrap: Vec<String> = evil_net
        .listen_addrs()
        .iter()
        .map(|a| format!("\"{a}\""))
        .collect();
    let text = format!(
        r#"identity_file = "{dir}/client.p2p"
fullnodes = ["{fullnode}"]
bootstrap = [{bootstrap}]
listen = ["/ip4/127.0.0.1/tcp/0"]
interface = "{iface}"
escrow_wei = "1000000"
voucher_secs = 1
state_dir = "{dir}/state"
flowshield_bin = "{bin}"
first_packet_timeout_secs = 2

[chain]
rpc_url = "{rpc}"
market_address = "{market}"
key_file = "{key}"
"#,
        dir = dir.path().display(),
        bootstrap = bootstrap.join(", "),
        iface = flowshield_e2e::unique_iface(),
        bin = bin.display(),
        rpc = chain.rpc_url(),
        market = market.address(),
        key = key_file.display(),
    );
    let path = dir.path().join("client.toml");
    std::fs::write(&path, text).unwrap();
    let file = ClientFile::load(&path).unwrap();
    let result = tokio::time::timeout(
        Duration::from_secs(120),
        client::run(file, Overrides::default(), std::future::pending()),
    )
    .await
    .expect("the client gives up within 120 s");
    let error = match result {
        Ok(summary) => panic!("the client settled a session with the attacker: {summary:?}"),
        Err(e) => e.to_string(),
    };
    attacker.abort();
    evil_net.shutdown().await;
    let order = order_seen
        .lock()
        .unwrap()
        .expect("the client asked the attacker to connect");
    let status = market.order_status(order).await.unwrap();
    Outcome {
        error,
        calls: std::fs::read_to_string(&log).unwrap_or_default(),
        status,
    }
}

/// No `flowshield up` ever ran: the attacker's values never configured
/// the client's data plane.
fn assert_never_up(outcome: &Outcome) {
    assert!(
        !outcome.calls.lines().any(|l| l.starts_with("up ")),
        "the client brought the tunnel up with the attacker's answer: {:?} (error: {})",
        outcome.calls,
        outcome.error
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn order_never_accepted_on_chain_is_refused() {
    let outcome = run_attack(Attack {
        accept_on_chain: false,
        answer: honest,
    })
    .await;
    assert_never_up(&outcome);
    assert!(outcome.error.contains("order.status"), "{}", outcome.error);
    // The escrow went back at once.
    assert_eq!(outcome.status, OrderStatus::Cancelled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wireguard_key_not_registered_on_chain_is_refused() {
    let outcome = run_attack(Attack {
        accept_on_chain: true,
        answer: |order| ConnectedInfo {
            // A key the attacker holds but never registered (e.g. another
            // provider's listed key, to make the client talk to it).
            provider_wg_public_key: WgPublicKey([66; 32]),
            ..honest(order)
        },
    })
    .await;
    assert_never_up(&outcome);
    assert!(
        outcome.error.contains("provider_wg_public_key"),
        "{}",
        outcome.error
    );
    assert_ne!(outcome.status, OrderStatus::Active);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tunnel_address_covering_everything_is_refused() {
    let outcome = run_attack(Attack {
        accept_on_chain: true,
        answer: |order| ConnectedInfo {
            tunnel_address: "0.0.0.0/0".parse().unwrap(),
            ..honest(order)
        },
    })
    .await;
    assert_never_up(&outcome);
    assert!(
        outcome.error.contains("tunnel_address"),
        "{}",
        outcome.error
    );
    assert_ne!(outcome.status, OrderStatus::Active);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allowed_ips_covering_the_endpoint_are_refused() {
    let outcome = run_attack(Attack {
        accept_on_chain: true,
        answer: |order| ConnectedInfo {
            // Routes the provider's own endpoint (and the chain RPC and
            // fullnode on 127.0.0.1) into the tunnel: a loop or a hijack.
            allowed_ips: vec![
                "10.77.0.0/24".parse().unwrap(),
                "127.0.0.0/8".parse().unwrap(),
            ],
            ..honest(order)
        },
    })
    .await;
    assert_never_up(&outcome);
    assert!(outcome.error.contains("allowed_ips"), "{}", outcome.error);
    assert_ne!(outcome.status, OrderStatus::Active);
}
