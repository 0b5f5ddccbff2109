//! Bad session input over the real wire: a provider with a session host on
//! a local chain (127.0.0.1) and a `flowshield` data plane in a namespace,
//! and a raw libp2p client sending what an honest client never would. Every
//! refusal names what was wrong. Needs root (the data plane).

mod common;

use common::devnet;
use common::net::{listen_tcp, provider_config, within};
use flowshield_chain::alloy::primitives::U256;
use flowshield_chain::voucher::sign_voucher;
use flowshield_chain::{LocalChain, OrderStatus, ProviderTerms};
use flowshield_e2e::daemon::{Daemon, Implementation};
use flowshield_e2e::netns::Netns;
use flowshield_market::dataplane::DataPlane;
use flowshield_market::net::{self, MarketRequest, MarketResponse, NetConfig, NetHandle};
use flowshield_market::provider::host::{HostConfig, SessionHost};
use flowshield_market::provider::{Provider, ProviderConfig};
use flowshield_market::session::pricing::Prices;
use flowshield_market::session::table::SessionPolicy;
use flowshield_market::unix_ms;
use flowshield_market::wire::raw::RawSessionRequest;
use flowshield_market::wire::session::{
    ConnectRequest, SessionRequest, SessionResponse, VoucherMessage,
};
use flowshield_proto::{Keypair, Offer, PeerId, WgPublicKey};
use std::time::Duration;

/// Sends a typed request, or raw JSON (what an honest client never sends).
enum Ask {
    Typed(SessionRequest),
    Raw(&'static str),
}

impl From<SessionRequest> for Ask {
    fn from(request: SessionRequest) -> Self {
        Self::Typed(request)
    }
}

async fn ask(net: &NetHandle, peer: PeerId, request: impl Into<Ask>) -> SessionResponse {
    let raw = match request.into() {
        Ask::Typed(request) => RawSessionRequest::encode(&request).unwrap(),
        Ask::Raw(json) => RawSessionRequest::from_json(json).unwrap(),
    };
    match net
        .request(peer, MarketRequest::Session(raw))
        .await
        .unwrap()
    {
        MarketResponse::Session(r) => r.decode().unwrap(),
        other => panic!("unexpected {other:?}"),
    }
}

fn kind(response: &SessionResponse) -> (&str, &str) {
    match response {
        SessionResponse::Rejected { kind, error } => (kind.as_str(), error),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_session_input_is_refused_with_a_clear_error() {
    let ns = Netns::new().expect("namespace");
    let iface = flowshield_e2e::unique_iface();
    let _daemon = Daemon::spawn(&ns, Implementation::Flowshield, &iface).expect("data plane");

    let chain = LocalChain::start().await.expect("local chain");
    let market = devnet::deploy(&chain, &devnet::demo_params())
        .await
        .unwrap();
    let provider_signer = chain.funded_signer().await.unwrap();
    let client_signer = chain.funded_signer().await.unwrap();
    let intruder = chain.funded_signer().await.unwrap();
    let as_provider = market.with_provider(chain.provider_for(provider_signer.clone()).unwrap());
    let as_client = market.with_provider(chain.provider_for(client_signer.clone()).unwrap());
    let terms = ProviderTerms {
        price_per_gib: U256::from(1u64 << 30),
        price_per_hour: U256::ZERO,
        peer_id_hash: Default::default(),
        wg_public_key: [9; 32],
        quality: flowshield_chain::default_quality(),
    };
    as_provider
        .register(U256::from(10u64).pow(U256::from(18u64)), &terms)
        .await
        .unwrap();

    let keypair = Keypair::generate_ed25519();
    let provider_peer = keypair.public().to_peer_id();
    let host = SessionHost::new(HostConfig {
        peer_id: provider_peer,
        market: as_provider.clone(),
        // A session store of its own (sessions are recorded before they are
        // acknowledged).
        store: flowshield_market::provider::store::SessionStore::connect(&format!(
            "sqlite://{}/flowshield-test-{}-{}.db",
            std::env::temp_dir().display(),
            std::process::id(),
            flowshield_market::unix_ms()
        ))
        .await
        .expect("session store"),
        dataplane: DataPlane::new(&iface),
        tunnel_subnet: "10.77.0.0/24".into(),
        provider_wg_public_key: WgPublicKey([9; 32]),
        endpoint: "127.0.0.1:51820".parse().unwrap(),
        client_allowed_ips: vec![],
        keepalive_secs: 25,
        policy: SessionPolicy {
            me: provider_signer.address(),
            min_escrow: U256::from(1000),
            prices: Prices {
                per_gib: terms.price_per_gib,
                per_hour: U256::ZERO,
            },
            idle_timeout_ms: 60_000,
            redeem_threshold: U256::MAX,
            redeem_interval_ms: 600_000,
            credit_limit: U256::from(1u64 << 30),
            max_clients: 4,
            max_orders_per_client: 4,
        },
        shaper: None,
    })
    .await
    .unwrap();
    let offer = Offer {
        chain_address: flowshield_proto::ChainAddress(provider_signer.address().0 .0),
        price_per_gib_wei: 1 << 30,
        capacity_mbps: 10,
        max_clients: 4,
        ..common::net::offer(&keypair)
    };
    let provider = Provider::start(ProviderConfig {
        heartbeat_interval: Duration::from_secs(1),
        dht_refresh_every: 6,
        sessions: Some(host.clone()),
        ..provider_config(keypair, offer)
    })
    .await
    .unwrap();
    let mut config = NetConfig::new(Keypair::generate_ed25519());
    config.listen = listen_tcp();
    config.bootstrap = provider.net.listen_addrs().to_vec();
    let (client, _events) = net::spawn(config).await.unwrap();

    let (order, _) = as_client
        .open_order(provider_signer.address(), U256::from(1_000_000))
        .await
        .unwrap();
    let wg = WgPublicKey([5; 32]);
    let connect = |signer, order_id, ts| {
        SessionRequest::Connect(
            ConnectRequest::sign(signer, order_id, wg, &provider_peer, ts).unwrap(),
        )
    };

    // Unknown order.
    let r = ask(
        &client,
        provider_peer,
        connect(&client_signer, U256::from(999), unix_ms()),
    )
    .await;
    assert_eq!(kind(&r).0, "unknown_order", "{r:?}");
    assert!(kind(&r).1.contains("order 999 does not exist"));
    // Right order, wrong signer.
    let r = ask(&client, provider_peer, connect(&intruder, order, unix_ms())).await;
    assert_eq!(kind(&r).0, "wrong_client", "{r:?}");
    assert!(
        kind(&r).1.contains(&intruder.address().to_string()),
        "{r:?}"
    );
    // Stale timestamp.
    let r = ask(
        &client,
        provider_peer,
        connect(&client_signer, order, unix_ms() - 3_600_000),
    )
    .await;
    assert_eq!(kind(&r).0, "stale_connect", "{r:?}");
    // A voucher before any session.
    let domain = market.eip712_domain().await.unwrap();
    let voucher = |signer, amount: u64| {
        SessionRequest::Voucher(VoucherMessage::from_signed(
            &sign_voucher(signer, &domain, order, U256::from(amount)).unwrap(),
        ))
    };
    let r = ask(&client, provider_peer, voucher(&client_signer, 10)).await;
    assert_eq!(kind(&r).0, "no_session", "{r:?}");
    // Malformed numbers.
    let r = ask(
        &client,
        provider_peer,
        Ask::Raw(r#"{"type":"disconnect","order_id":"twelve"}"#),
    )
    .await;
    assert_eq!(kind(&r).0, "malformed", "{r:?}");
    assert!(kind(&r).1.contains("order_id"), "{r:?}");
    assert_eq!(
        as_client.order_status(order).await.unwrap(),
        OrderStatus::Pending
    );

    // The honest Connect works; then replayed, lower and forged vouchers fail.
    let r = ask(
        &client,
        provider_peer,
        connect(&client_signer, order, unix_ms()),
    )
    .await;
    assert!(matches!(r, SessionResponse::Connected(_)), "{r:?}");
    assert_eq!(
        as_client.order_status(order).await.unwrap(),
        OrderStatus::Active
    );
    let r = ask(
        &client,
        provider_peer,
        connect(&client_signer, order, unix_ms()),
    )
    .await;
    assert_eq!(kind(&r).0, "already_connected", "{r:?}");
    let r = ask(&client, provider_peer, voucher(&client_signer, 100)).await;
    assert!(
        matches!(r, SessionResponse::VoucherAccepted { .. }),
        "{r:?}"
    );
    let r = ask(&client, provider_peer, voucher(&client_signer, 100)).await;
    assert_eq!(kind(&r).0, "voucher_not_increasing", "{r:?}");
    let r = ask(&client, provider_peer, voucher(&client_signer, 50)).await;
    assert_eq!(kind(&r).0, "voucher_not_increasing", "{r:?}");
    let r = ask(&client, provider_peer, voucher(&intruder, 200)).await;
    assert_eq!(kind(&r).0, "voucher_bad_signature", "{r:?}");
    let r = ask(&client, provider_peer, voucher(&client_signer, 2_000_000)).await;
    assert_eq!(kind(&r).0, "voucher_exceeds_escrow", "{r:?}");

    // Disconnect settles with the best voucher (100) and removes the peer.
    let r = ask(
        &client,
        provider_peer,
        SessionRequest::Disconnect { order_id: order },
    )
    .await;
    assert_eq!(
        r,
        SessionResponse::Disconnected {
            order_id: order,
            redeemed_wei: U256::from(100)
        }
    );
    // Answered before the chain transactions: the peer is gone at once,
    // the settlement follows (polled, bounded).
    let peers = flowshield_tunnel::uapi::client::get(&iface).unwrap().peers;
    assert!(peers.is_empty(), "peer removed: {peers:?}");
    within("the order settled on chain", async {
        while as_client.order_status(order).await.unwrap() != OrderStatus::Settled {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    assert_eq!(
        as_client.order_status(order).await.unwrap(),
        OrderStatus::Settled
    );
    within("the settled session dropped", async {
        while host.session_count().await != 0 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    assert_eq!(host.session_count().await, 0);
    assert_eq!(
        as_client.order(order).await.unwrap().redeemed,
        U256::from(100),
        "paid exactly the best voucher"
    );
    client.shutdown().await;
    provider.shutdown().await;
}
