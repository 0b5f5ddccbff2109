//! The fullnode API's POST limits against a real fullnode on 127.0.0.1:
//! a burst over the per-client rate gets 429, an oversized body 413, both
//! in the API's JSON error shape; requests under the limits are answered
//! as usual.

mod common;

use common::http::request_with_head as http;
use flowshield_market::fullnode::api::ApiLimits;
use flowshield_market::fullnode::{Fullnode, FullnodeConfig};
use flowshield_proto::Keypair;
use serde_json::Value;

const MATCH: &str = r#"{"region":"eu-west","max_price_per_gib_wei":"1000"}"#;

async fn start_fullnode(limits: ApiLimits) -> (tempfile::TempDir, Fullnode) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("index.db").display());
    let mut config = FullnodeConfig::new(Keypair::generate_ed25519(), url);
    config.listen = vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()];
    config.api_limits = limits;
    (dir, Fullnode::start(config).await.unwrap())
}

fn json(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn burst_over_the_rate_is_429_in_json_and_gets_are_not_limited() {
    let (_dir, fullnode) = start_fullnode(ApiLimits {
        per_second: 1,
        burst: 5,
        max_body_bytes: 16 * 1024,
    })
    .await;
    let addr = fullnode.http_addr;
    // Under the limit: answered as usual (no provider yet: 404 in JSON).
    for _ in 0..5 {
        let (status, _, body) = http(addr, "POST", "/v1/match", MATCH).await;
        assert_eq!(status, 404, "{body}");
        assert!(json(&body)["error"].is_string());
    }
    // The burst is spent: refused with 429, a JSON body and Retry-After.
    let (status, head, body) = http(addr, "POST", "/v1/match", MATCH).await;
    assert_eq!(status, 429, "{body}");
    assert!(head.contains("content-type: application/json"), "{head}");
    assert!(head.contains("retry-after:"), "{head}");
    let body = json(&body);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("too many requests"),
        "{body}"
    );
    assert!(body["field"].is_null(), "{body}");
    // Every POST shares the client's budget.
    let (status, _, _) = http(addr, "POST", "/v1/reports", "{}").await;
    assert_eq!(status, 429);
    // GETs are not limited.
    for _ in 0..10 {
        let (status, _, _) = http(addr, "GET", "/healthz", "").await;
        assert_eq!(status, 200);
    }
    // The limit is counted in the clients gauge within a minute at most;
    // what is checked here is that the series exists.
    let (_, _, metrics) = http(addr, "GET", "/metrics", "").await;
    assert!(metrics.contains("flowshield_tracked_peers{map=\"api_clients\"}"));
    fullnode.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_body_is_413_in_json() {
    let (_dir, fullnode) = start_fullnode(ApiLimits {
        per_second: 100,
        burst: 100,
        max_body_bytes: 1024,
    })
    .await;
    let addr = fullnode.http_addr;
    let big = format!(r#"{{"region":"{}"}}"#, "x".repeat(4096));
    for path in ["/v1/match", "/v1/reports"] {
        let (status, head, body) = http(addr, "POST", path, &big).await;
        assert_eq!(status, 413, "{path}: {body}");
        assert!(head.contains("content-type: application/json"), "{head}");
        let body = json(&body);
        assert_eq!(body["field"], "body", "{path}: {body}");
        assert!(body["error"].as_str().unwrap().contains("too large"));
    }
    // Under the size limit: answered as usual.
    let (status, _, body) = http(addr, "POST", "/v1/match", MATCH).await;
    assert_eq!(status, 404, "{body}");
    fullnode.shutdown().await;
}
