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
            exit: view::Panel::not_configured("not selling"),
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
        exit: view::Panel::not_configured("not selling"),
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

/// A dashboard on 127.0.0.1 (any port) with `access`, reading nothing.
async fn guarded(access: super::access::Access) -> (Dashboard, Offer) {
    let (_, offer) = fixtures::node();
    let dashboard = Dashboard::start(DashboardConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        refresh_secs: 0,
        access,
        sources: Sources {
            offer: offer.clone(),
            interface: "fsdash-absent1".into(),
            host: None,
            fullnode_url: None,
            certificate: None,
            registry: None,
            exit: view::Panel::not_configured("not selling"),
        },
    })
    .await
    .unwrap();
    (dashboard, offer)
}

/// `GET base+path` with an optional `Host` and bearer token: status, body.
async fn fetch(base: &str, path: &str, host: Option<&str>, token: Option<&str>) -> (u16, String) {
    let mut request = reqwest::Client::new().get(format!("{base}{path}"));
    if let Some(host) = host {
        request = request.header(header::HOST, host);
    }
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

/// The attacker: a page on evil.example re-points its name at 127.0.0.1
/// (DNS rebinding), so the operator's browser fetches the dashboard as
/// `http://evil.example:PORT/` and hands the page the answer. The browser
/// still says `Host: evil.example:PORT`: with the packaged configuration
/// (no token) that gets 421 and none of the dashboard's data, while the
/// configured listen address, with its port, is served.
#[tokio::test]
async fn a_dns_rebinding_page_gets_421_and_no_data() {
    let (dashboard, offer) = guarded(super::access::Access::default()).await;
    let addr = dashboard.addr();
    let base = format!("http://{addr}");
    let peer_id = offer.provider_peer_id.to_base58();
    let rebound = format!("evil.example:{}", addr.port());
    for path in ["/api/status", "/", "/healthz", "/nothing"] {
        let (status, body) = fetch(&base, path, Some(&rebound), None).await;
        assert_eq!(status, 421, "{path} answered the rebound name: {body}");
        assert!(!body.contains(&peer_id), "{path} leaked data: {body}");
        assert!(!body.contains("identity"), "{path} leaked data: {body}");
    }
    // The configured listen address itself, with its port (what reqwest
    // sends by default, and spelled out).
    let (status, body) = fetch(&base, "/api/status", None, None).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(&peer_id), "{body}");
    let (status, _) = fetch(&base, "/", Some(&addr.to_string()), None).await;
    assert_eq!(status, 200);
    let (status, _) = fetch(
        &base,
        "/",
        Some(&format!("localhost:{}", addr.port())),
        None,
    )
    .await;
    assert_eq!(status, 200);
    dashboard.shutdown();
}

/// The attacker who can reach the port but lacks the token: 401 on every
/// route but `/healthz`, with a wrong, truncated or missing token; a
/// foreign Host is refused before the token is looked at.
#[tokio::test]
async fn without_the_token_only_healthz_answers() {
    let token = "Zm9vYmFyYmF6cXV4cXV1eA==";
    let access = super::access::Access::new(&["dash.example.net".into()], Some(token)).unwrap();
    let (dashboard, offer) = guarded(access).await;
    let base = format!("http://{}", dashboard.addr());
    let peer_id = offer.provider_peer_id.to_base58();
    for path in ["/api/status", "/", "/?refresh=0"] {
        for wrong in [None, Some("wrong"), Some(&token[..token.len() - 1])] {
            let (status, body) = fetch(&base, path, None, wrong).await;
            assert_eq!(status, 401, "{path} with {wrong:?}: {body}");
            assert!(!body.contains(&peer_id), "{path} leaked data: {body}");
        }
    }
    assert_eq!(fetch(&base, "/healthz", None, None).await.0, 200);
    let (status, body) = fetch(&base, "/api/status", None, Some(token)).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(&peer_id), "{body}");
    // A listed name (a reverse proxy's) with the token is served; a
    // rebound name is refused even with it.
    let listed = Some("dash.example.net");
    assert_eq!(fetch(&base, "/", listed, Some(token)).await.0, 200);
    let rebound = Some("evil.example");
    assert_eq!(fetch(&base, "/", rebound, Some(token)).await.0, 421);
    assert_eq!(fetch(&base, "/healthz", rebound, None).await.0, 421);
    dashboard.shutdown();
}

/// A token file anyone else can read is refused at start, naming the file;
/// so is an `allowed_hosts` entry that is not a name (a wildcard would
/// turn the check off).
#[test]
fn a_readable_token_file_or_a_wildcard_host_is_refused_at_start() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dashboard.token");
    std::fs::write(&path, "Zm9vYmFyYmF6cXV4cXV1eA==\n").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let table = format!(
        "[dashboard]\nlisten = \"127.0.0.1:8090\"\ntoken_file = \"{}\"\n",
        path.display()
    );
    let err = config(&table).err().expect("0644 accepted").to_string();
    assert!(
        err.starts_with(&format!(
            "p.toml: dashboard.token_file: {}: readable by group or others (mode 644)",
            path.display()
        )),
        "{err}"
    );
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let ok = config(&table).unwrap();
    assert!(ok.access.token_required());

    let err = config(
        "[dashboard]\nlisten = \"127.0.0.1:8090\"\nallowed_hosts = [\"a.example\", \"*\"]\n",
    )
    .err()
    .expect("wildcard accepted")
    .to_string();
    assert!(
        err.starts_with("p.toml: dashboard.allowed_hosts: [1]: '*' is not a host name"),
        "{err}"
    );
}

/// `/api/status` carries the exit policy in force under `exit`, and the
/// page shows it (what an operator checks after start).
#[tokio::test]
async fn the_exit_policy_in_force_is_served_as_json_and_html() {
    let (_, offer) = fixtures::node();
    let dashboard = Dashboard::start(DashboardConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        refresh_secs: 0,
        access: super::access::Access::default(),
        sources: Sources {
            offer,
            interface: "fsdash-absent2".into(),
            host: None,
            fullnode_url: None,
            certificate: None,
            registry: None,
            exit: view::Panel::ok(super::exit::tests::input()),
        },
    })
    .await
    .unwrap();
    let base = format!("http://{}", dashboard.addr());
    let (status, body) = fetch(&base, "/api/status", None, None).await;
    assert_eq!(status, 200, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    let exit = &json["exit"];
    assert_eq!(exit["state"], "ok", "{exit}");
    let egress = &exit["data"]["egress"];
    assert_eq!(egress["enabled"], true);
    assert_eq!(egress["uplink"], "eth0");
    assert_eq!(egress["client_to_client_blocked"], true);
    assert_eq!(egress["smtp_blocked"], true);
    assert_eq!(egress["blocked_ports"], serde_json::json!([25, 6667]));
    assert_eq!(
        egress["allowed_exceptions"],
        serde_json::json!(["192.168.7.0/24"])
    );
    let ranges = egress["blocked_ranges"].as_array().unwrap();
    assert!(ranges.contains(&"169.254.0.0/16".into()), "{ranges:?}");
    assert!(ranges.contains(&"fe80::/10".into()), "{ranges:?}");
    let shaping = &exit["data"]["shaping"];
    assert_eq!(shaping["enabled"], true);
    assert_eq!(shaping["per_client_kbit"], 5000);
    assert_eq!(shaping["per_client_ceiling_kbit"], 20000);
    let (_, page) = fetch(&base, "/", None, None).await;
    assert!(page.contains(r#"id="exit" data-state="ok""#), "{page}");
    assert!(page.contains("egress filter on"), "{page}");
    dashboard.shutdown();
}
