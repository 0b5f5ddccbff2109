//! In-process network tests on 127.0.0.1: fullnodes, providers and bare
//! nodes talking real libp2p (TCP and QUIC) and real HTTP. Every wait is on
//! an event or a query result, bounded by a timeout.

mod common;

use common::http::request as http;
use common::net::{
    listen_tcp_and_quic, provider_config, quic_addr, tcp_addr, wait_fullnode, within,
};
use flowshield_market::fullnode::{Fullnode, FullnodeEvent};
use flowshield_market::net::{self, MarketRequest, MarketResponse, NetConfig, NetEvent, NetHandle};
use flowshield_market::provider::{Provider, ProviderConfig};
use flowshield_market::unix_ms;
use flowshield_proto::{Heartbeat, Keypair, Offer, PeerId, Region, SignedMessage};
use libp2p::Multiaddr;
use serde_json::Value;
use std::time::Duration;
use tokio::sync::mpsc;

fn offer(keypair: &Keypair, region: &str, price: u128) -> Offer {
    Offer {
        region: Region::new(region).unwrap(),
        price_per_gib_wei: price,
        ..common::net::offer(keypair)
    }
}

async fn start_fullnode(
    bootstrap: Vec<Multiaddr>,
    expire_after: Duration,
) -> (tempfile::TempDir, Fullnode) {
    common::net::start_fullnode(|config| {
        config.listen = listen_tcp_and_quic();
        config.bootstrap = bootstrap;
        config.expire_after = expire_after;
    })
    .await
}

async fn start_provider(bootstrap: Vec<Multiaddr>, region: &str, price: u128) -> Provider {
    let keypair = Keypair::generate_ed25519();
    let offer = offer(&keypair, region, price);
    Provider::start(ProviderConfig {
        listen: listen_tcp_and_quic(),
        bootstrap,
        ..provider_config(keypair, offer)
    })
    .await
    .unwrap()
}

async fn start_node(bootstrap: Vec<Multiaddr>) -> (NetHandle, mpsc::Receiver<NetEvent>) {
    let mut config = NetConfig::new(Keypair::generate_ed25519());
    config.listen = listen_tcp_and_quic();
    config.bootstrap = bootstrap;
    net::spawn(config).await.unwrap()
}

async fn wait_subscribed(events: &mut mpsc::Receiver<NetEvent>, peer: PeerId) {
    within("gossip subscription", async {
        while let Some(event) = events.recv().await {
            if matches!(event, NetEvent::PeerSubscribed { peer: p } if p == peer) {
                return;
            }
        }
        panic!("net events closed");
    })
    .await
}

fn json(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series).map(|v| v.trim().parse().unwrap()))
        .unwrap_or_else(|| panic!("no series {series} in\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_is_indexed_matched_and_expired() {
    let (_dir, fullnode) = start_fullnode(vec![], Duration::from_secs(2)).await;
    let mut events = fullnode.subscribe();
    let provider = start_provider(
        vec![tcp_addr(fullnode.net.listen_addrs())],
        "eu-west",
        1_000,
    )
    .await;
    let provider_id = provider.net.peer_id();
    wait_fullnode(
        &mut events,
        "provider indexed",
        |e| matches!(e, FullnodeEvent::Indexed { provider, .. } if *provider == provider_id),
    )
    .await;

    let (status, body) = http(
        fullnode.http_addr,
        "GET",
        "/v1/providers?region=eu-west&max_price=5000",
        "",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let list = json(&body);
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(
        list[0]["offer"]["provider_peer_id"],
        provider_id.to_base58()
    );
    assert_eq!(list[0]["offer"]["price_per_gib_wei"], "1000");
    let signed = list[0]["signed_heartbeat"].as_str().unwrap();
    let verified = SignedMessage::<Heartbeat>::from_bytes(signed.as_bytes())
        .unwrap()
        .verify()
        .unwrap();
    assert_eq!(verified.offer.provider_peer_id, provider_id);

    let (status, body) = http(
        fullnode.http_addr,
        "GET",
        "/v1/providers?region=us-east",
        "",
    )
    .await;
    assert_eq!((status, json(&body)), (200, Value::Array(vec![])));

    let (status, body) = http(
        fullnode.http_addr,
        "POST",
        "/v1/match",
        r#"{"region":"eu-west","max_price_per_gib_wei":"2000","min_capacity_mbps":50}"#,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        json(&body)["offer"]["provider_peer_id"],
        provider_id.to_base58()
    );
    let (status, body) = http(
        fullnode.http_addr,
        "POST",
        "/v1/match",
        r#"{"max_price_per_gib_wei":"999"}"#,
    )
    .await;
    assert_eq!(status, 404, "{body}");
    assert!(json(&body)["error"]
        .as_str()
        .unwrap()
        .contains("no provider"));

    let (status, body) = http(fullnode.http_addr, "GET", "/healthz", "").await;
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    let (status, body) = http(fullnode.http_addr, "GET", "/openapi.json", "").await;
    assert_eq!(status, 200);
    assert!(json(&body)["paths"]["/v1/match"].is_object());
    let (_, metrics) = http(fullnode.http_addr, "GET", "/metrics", "").await;
    assert!(metric(&metrics, "flowshield_heartbeats_total{result=\"accepted\"}") >= 1.0);
    assert_eq!(metric(&metrics, "flowshield_providers_indexed"), 1.0);
    assert!(metric(&metrics, "flowshield_match_latency_seconds_count") >= 2.0);

    // Silent providers leave the index.
    provider.shutdown().await;
    wait_fullnode(&mut events, "provider expired", |e| {
        matches!(e, FullnodeEvent::Expired { .. })
    })
    .await;
    let (_, body) = http(fullnode.http_addr, "GET", "/v1/providers", "").await;
    assert_eq!(json(&body), Value::Array(vec![]));
    fullnode.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_api_input_is_a_4xx_naming_the_field() {
    let (_dir, fullnode) = start_fullnode(vec![], Duration::from_secs(30)).await;
    let cases = [
        ("GET", "/v1/providers?max_price=abc", "", 400, "max_price"),
        (
            "GET",
            "/v1/providers?region=Not%20A%20Region",
            "",
            400,
            "region",
        ),
        (
            "GET",
            "/v1/providers?min_capacity=-1",
            "",
            400,
            "min_capacity",
        ),
        ("GET", "/v1/providers?limit=100000", "", 400, "limit"),
        ("GET", "/v1/providers?surprise=1", "", 400, "query"),
        ("POST", "/v1/match", "{}", 400, "max_price_per_gib_wei"),
        (
            "POST",
            "/v1/match",
            r#"{"max_price_per_gib_wei":"1","region":"??"}"#,
            400,
            "region",
        ),
        (
            "POST",
            "/v1/match",
            r#"{"max_price_per_gib_wei":"1","min_capacity_mbps":"x"}"#,
            400,
            "min_capacity_mbps",
        ),
        ("POST", "/v1/match", "{not json", 400, "body"),
    ];
    for (method, path, body, want_status, want_field) in cases {
        let (status, reply) = http(fullnode.http_addr, method, path, body).await;
        assert_eq!(status, want_status, "{method} {path} {body}: {reply}");
        let reply = json(&reply);
        assert_eq!(
            reply["field"], want_field,
            "{method} {path} {body}: {reply}"
        );
        assert!(reply["error"].as_str().is_some_and(|e| !e.is_empty()));
    }
    let (status, _) = http(fullnode.http_addr, "POST", "/v1/match", &" ".repeat(5000)).await;
    assert_eq!(status, 413);
    fullnode.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_and_replayed_heartbeats_are_rejected_and_counted() {
    let (_dir, fullnode) = start_fullnode(vec![], Duration::from_secs(30)).await;
    let mut events = fullnode.subscribe();
    let (attacker, mut attacker_events) =
        start_node(vec![tcp_addr(fullnode.net.listen_addrs())]).await;
    wait_subscribed(&mut attacker_events, fullnode.net.peer_id()).await;

    // A genuine heartbeat from a provider key, relayed by the attacker node.
    let provider = Keypair::generate_ed25519();
    let genuine = Heartbeat {
        offer: offer(&provider, "eu-west", 10),
        seq: 1,
        timestamp_ms: unix_ms(),
    };
    let genuine_bytes = SignedMessage::sign(&genuine, &provider).unwrap().to_bytes();
    attacker.publish_raw(genuine_bytes.clone()).await.unwrap();
    wait_fullnode(&mut events, "genuine heartbeat", |e| {
        matches!(e, FullnodeEvent::Indexed { seq: 1, .. })
    })
    .await;

    // Names the provider, signed by another key: wrong signer.
    let thief = Keypair::generate_ed25519();
    let mut cheaper = genuine.clone();
    cheaper.seq = 2;
    cheaper.offer.price_per_gib_wei = 1;
    let payload = SignedMessage::encode_payload(&cheaper).unwrap();
    let signature = thief
        .sign(&SignedMessage::<Heartbeat>::signing_input(&payload))
        .unwrap();
    let wrong_signer = SignedMessage::<Heartbeat>::from_parts(
        payload.clone(),
        thief.public().encode_protobuf(),
        signature.clone(),
    );
    attacker.publish_raw(wrong_signer.to_bytes()).await.unwrap();
    wait_fullnode(&mut events, "wrong signer refused", |e| {
        matches!(
            e,
            FullnodeEvent::Rejected {
                reason: "wrong_signer"
            }
        )
    })
    .await;

    // Carries the provider's public key but not its signature: forged.
    let forged = SignedMessage::<Heartbeat>::from_parts(
        payload,
        provider.public().encode_protobuf(),
        signature,
    );
    attacker.publish_raw(forged.to_bytes()).await.unwrap();
    wait_fullnode(&mut events, "forgery refused", |e| {
        matches!(e, FullnodeEvent::Rejected { reason: "forged" })
    })
    .await;

    // The genuine heartbeat again, byte for byte: gossip identifies messages
    // by content, so it is a duplicate before any node looks at it.
    assert!(attacker.publish_raw(genuine_bytes).await.is_err());
    // Its sequence number again, freshly signed: replayed.
    let mut again = genuine.clone();
    again.timestamp_ms += 1;
    let again_bytes = SignedMessage::sign(&again, &provider).unwrap().to_bytes();
    attacker.publish_raw(again_bytes).await.unwrap();
    wait_fullnode(&mut events, "replay refused", |e| {
        matches!(e, FullnodeEvent::Rejected { reason: "replayed" })
    })
    .await;

    let (_, metrics) = http(fullnode.http_addr, "GET", "/metrics", "").await;
    assert_eq!(
        metric(&metrics, "flowshield_heartbeats_total{result=\"accepted\"}"),
        1.0
    );
    assert_eq!(
        metric(
            &metrics,
            "flowshield_heartbeats_total{result=\"wrong_signer\"}"
        ),
        1.0
    );
    assert_eq!(
        metric(&metrics, "flowshield_heartbeats_total{result=\"forged\"}"),
        1.0
    );
    assert_eq!(
        metric(&metrics, "flowshield_heartbeats_total{result=\"replayed\"}"),
        1.0
    );
    // The index still holds the genuine offer, not the forged price.
    let (_, body) = http(fullnode.http_addr, "GET", "/v1/providers", "").await;
    assert_eq!(json(&body)[0]["offer"]["price_per_gib_wei"], "10");
    attacker.shutdown().await;
    fullnode.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn providers_are_found_through_the_dht_without_a_fullnode() {
    let first = start_provider(vec![], "ap-south", 7).await;
    let second = start_provider(vec![tcp_addr(first.net.listen_addrs())], "ap-south", 9).await;
    let (client, mut client_events) = start_node(vec![tcp_addr(first.net.listen_addrs())]).await;
    // Nothing reads the client's events but us; drain them so the network
    // task never waits on a full channel.
    tokio::spawn(async move { while client_events.recv().await.is_some() {} });
    let region = Region::new("ap-south").unwrap();
    let wanted = [first.net.peer_id(), second.net.peer_id()];

    let found = within("both providers in the DHT", async {
        loop {
            let found = client.find_providers(region.clone()).await.unwrap();
            if wanted.iter().all(|p| found.contains(p)) {
                return found;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;
    assert_eq!(found.len(), 2);

    let heartbeat = within("second provider's heartbeat record", async {
        loop {
            match client.get_heartbeat(second.net.peer_id()).await {
                Ok(heartbeat) => return heartbeat,
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    })
    .await;
    assert_eq!(heartbeat.offer.provider_peer_id, second.net.peer_id());
    assert_eq!(heartbeat.offer.price_per_gib_wei, 9);

    // And the provider answers directly over request-response.
    let response = within(
        "request-response",
        client.request(first.net.peer_id(), MarketRequest::GetHeartbeat),
    )
    .await
    .unwrap();
    let MarketResponse::Heartbeat(text) = response else {
        panic!("unexpected {response:?}")
    };
    let direct = SignedMessage::<Heartbeat>::from_bytes(text.as_bytes())
        .unwrap()
        .verify()
        .unwrap();
    assert_eq!(direct.offer.provider_peer_id, first.net.peer_id());

    client.shutdown().await;
    first.shutdown().await;
    second.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_fullnodes_index_the_same_provider_through_gossip() {
    let (_dir1, one) = start_fullnode(vec![], Duration::from_secs(30)).await;
    // The second fullnode joins over QUIC; the provider knows only the first.
    let (_dir2, two) = start_fullnode(
        vec![quic_addr(one.net.listen_addrs())],
        Duration::from_secs(30),
    )
    .await;
    let mut one_events = one.subscribe();
    let mut two_events = two.subscribe();
    let provider = start_provider(vec![tcp_addr(one.net.listen_addrs())], "eu-north", 5).await;
    let id = provider.net.peer_id();
    let indexed =
        |e: &FullnodeEvent| matches!(e, FullnodeEvent::Indexed { provider, .. } if *provider == id);
    wait_fullnode(&mut one_events, "first fullnode indexes", indexed).await;
    wait_fullnode(&mut two_events, "second fullnode indexes", indexed).await;
    for node in [&one, &two] {
        let (status, body) = http(node.http_addr, "GET", "/v1/providers?region=eu-north", "").await;
        assert_eq!(status, 200);
        assert_eq!(json(&body)[0]["offer"]["provider_peer_id"], id.to_base58());
    }
    provider.shutdown().await;
    two.shutdown().await;
    one.shutdown().await;
}
