use super::*;
use crate::provider::dashboard::fixtures;

const PROVIDER_TOML: &str = r#"
identity_file = "/tmp/p.key"
tunnel_subnet = "10.77.0.0/24"
[offer]
region = "eu-west"
price_per_gib_wei = "1"
price_per_hour_wei = "0"
capacity_mbps = 10
max_clients = 1
wg_public_key = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="
endpoint = "203.0.113.7:51820"
chain_address = "0x0101010101010101010101010101010101010101"
"#;

/// The tables of a provider file the dashboard reads.
#[derive(Debug, serde::Deserialize)]
struct ProviderTables {
    dashboard: Option<DashboardFile>,
    chain: Option<ChainFile>,
}

fn provider(extra: &str) -> Result<ProviderTables, toml::de::Error> {
    toml::from_str(&format!("{PROVIDER_TOML}{extra}"))
}

fn config(extra: &str) -> Result<DashboardConfig, DashboardError> {
    let file = provider(extra).unwrap();
    let (_, offer) = fixtures::node();
    file.dashboard
        .as_ref()
        .expect("a [dashboard] table")
        .config(
            Path::new("p.toml"),
            file.chain.as_ref(),
            "flowshield0",
            &offer,
            None,
            None,
        )
}

#[test]
fn the_table_is_optional_and_checked() {
    assert!(provider("").unwrap().dashboard.is_none());
    let ok = config("[dashboard]\nlisten = \"127.0.0.1:8090\"\n").unwrap();
    assert_eq!(ok.listen, "127.0.0.1:8090".parse().unwrap());
    assert_eq!(ok.refresh_secs, 5);
    assert!(ok.sources.fullnode_url.is_none() && ok.sources.registry.is_none());
    let err = provider("[dashboard]\nlisten = \"127.0.0.1:1\"\ncolour = \"red\"\n").unwrap_err();
    assert!(err.to_string().contains("colour"), "{err}");

    for (extra, field) in [
        ("listen = \"localhost\"", "dashboard.listen"),
        (
            "listen = \"127.0.0.1:1\"\nfullnode_url = \"ftp://x\"",
            "dashboard.fullnode_url",
        ),
        (
            "listen = \"127.0.0.1:1\"\nfullnode_url = \"not a url\"",
            "dashboard.fullnode_url",
        ),
        (
            "listen = \"127.0.0.1:1\"\ndeca_registry = \"0x12\"",
            "dashboard.deca_registry",
        ),
        (
            "listen = \"127.0.0.1:1\"\nrefresh_secs = 99999",
            "dashboard.refresh_secs",
        ),
    ] {
        let err = config(&format!("[dashboard]\n{extra}\n"))
            .err()
            .unwrap_or_else(|| panic!("{extra} accepted"))
            .to_string();
        assert!(err.starts_with(&format!("p.toml: {field}: ")), "{err}");
    }
    let err = config(&format!(
        "[dashboard]\nlisten = \"127.0.0.1:1\"\ndeca_registry = \"0x{}\"\n",
        "ab".repeat(20)
    ))
    .err()
    .unwrap()
    .to_string();
    assert!(err.contains("needs a [chain] table"), "{err}");
}

/// A stand-in fullnode answering the reputation route.
async fn fake_fullnode() -> SocketAddr {
    let app = Router::new().route(
        "/v1/providers/{address}/reputation",
        get(|| async {
            Json(serde_json::json!({
                "provider": "0x..", "reputation": 0.72, "reports": 5, "passed": 4,
                "periods": 3, "latest_period": 12
            }))
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

#[tokio::test]
async fn serves_the_page_and_the_json_with_degraded_panels() {
    let fullnode = fake_fullnode().await;
    let (_, offer) = fixtures::node();
    let dashboard = Dashboard::start(DashboardConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        refresh_secs: 7,
        access: super::access::Access::default(),
        sources: Sources {
            offer: offer.clone(),
            interface: "fsdash-absent0".into(),
            host: None,
            fullnode_url: Some(format!("http://{fullnode}/")),
            certificate: None,
            registry: None,
        },
    })
    .await
    .unwrap();
    let base = format!("http://{}", dashboard.addr());
    let http = reqwest::Client::new();

    let status: serde_json::Value = http
        .get(format!("{base}/api/status"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        status["identity"]["peer_id"],
        offer.provider_peer_id.to_base58()
    );
    assert_eq!(status["sessions"]["state"], "not_configured");
    assert_eq!(status["traffic"]["state"], "unavailable");
    let uapi_error = status["traffic"]["error"].as_str().unwrap();
    assert!(
        uapi_error.starts_with("UAPI fsdash-absent0: "),
        "{uapi_error}"
    );
    assert_eq!(status["reputation"]["state"], "ok");
    assert_eq!(status["reputation"]["data"]["score"], 0.72);
    assert_eq!(status["reputation"]["data"]["reports"], 5);
    assert_eq!(status["certificate"]["state"], "not_configured");

    let response = http.get(format!("{base}/")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let csp = response.headers()[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap()
        .to_string();
    assert!(csp.starts_with("default-src 'none'"), "{csp}");
    let page = response.text().await.unwrap();
    assert!(page.contains(r#"<meta http-equiv="refresh" content="7">"#));
    assert!(page.contains("5 reports (4 passed) over 3 periods"));
    assert!(page.contains("no certificate configured"));
    assert!(page.contains("Unavailable: </strong>UAPI fsdash-absent0"));

    let quiet = http.get(format!("{base}/?refresh=0")).send().await.unwrap();
    assert!(!quiet.text().await.unwrap().contains("http-equiv"));
    let bad = http
        .get(format!("{base}/?refresh=soon"))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    dashboard.shutdown();
}

#[tokio::test]
async fn an_unreachable_fullnode_leaves_reputation_unavailable_not_invented() {
    // A port nobody listens on: bind, learn it, close it.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let (_, offer) = fixtures::node();
    let gatherer = Gatherer::new(Sources {
        offer,
        interface: "fsdash-absent0".into(),
        host: None,
        fullnode_url: Some(format!("http://{closed}")),
        certificate: None,
        registry: None,
    });
    let view = gatherer.view().await;
    let view::Panel::Unavailable { error } = &view.reputation else {
        panic!("{:?}", view.reputation)
    };
    assert!(error.starts_with(&format!("http://{closed}: ")), "{error}");
    assert!(error.to_lowercase().contains("refused"), "{error}");
    let page = render::page(&view, 0);
    assert!(!page.contains("data-score"), "no score is shown");
}

/// A page on attacker.example rebinds its name to the dashboard's address:
/// the browser then sends `Host: attacker.example`, which is refused; and
/// with a token configured, nothing but `/healthz` answers without it.
#[tokio::test]
async fn foreign_hosts_and_missing_tokens_are_refused() {
    let (_, offer) = fixtures::node();
    let dashboard = Dashboard::start(DashboardConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        refresh_secs: 0,
        access: super::access::Access::new(&[], Some("t0ken")),
        sources: Sources {
            offer,
            interface: "fsdash-absent1".into(),
            host: None,
            fullnode_url: None,
            certificate: None,
            registry: None,
        },
    })
    .await
    .unwrap();
    let base = format!("http://{}", dashboard.addr());
    let http = reqwest::Client::new();
    let get = |path: &str, host: Option<&str>, token: Option<&str>| {
        let mut request = http.get(format!("{base}{path}"));
        if let Some(host) = host {
            request = request.header(header::HOST, host);
        }
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        async move { request.send().await.unwrap().status().as_u16() }
    };
    let rebound = "attacker.example:8090";
    assert_eq!(get("/api/status", Some(rebound), Some("t0ken")).await, 421);
    assert_eq!(get("/", Some(rebound), Some("t0ken")).await, 421);
    assert_eq!(get("/api/status", None, None).await, 401);
    assert_eq!(get("/api/status", None, Some("wrong")).await, 401);
    assert_eq!(get("/", None, None).await, 401);
    assert_eq!(get("/healthz", None, None).await, 200);
    assert_eq!(get("/api/status", None, Some("t0ken")).await, 200);
    assert_eq!(get("/", Some("localhost:9000"), Some("t0ken")).await, 200);
    dashboard.shutdown();
}
