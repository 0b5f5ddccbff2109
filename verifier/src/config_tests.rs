//! Tests of [`super`]: parsing, defaults, and errors that name the field.

use super::*;

const KEY: &str = "HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=";

fn config(extra: &str, target: &str) -> String {
    format!(
        r#"
database = "/tmp/x.db"
fullnodes = ["http://127.0.0.1:1"]
[verifier]
wg_private_key_file = "/etc/wg.key"
{extra}
[[targets]]
name = "alpha"
provider = "0x00000000000000000000000000000000000000aa"
wg_public_key = "{KEY}"
tunnel_address = "10.77.0.2/32"
probe_address = "10.77.0.1"
min_throughput_mbps = 10
max_loss_pct = 2
max_rtt_ms = 100
{target}
"#
    )
}

fn err(text: &str) -> String {
    Config::parse(text).expect_err("must fail").to_string()
}

#[test]
fn full_config_parses_with_defaults() {
    let c = Config::parse(&config(
        "[schedule]\ncron = \"*/5 * * * *\"\njitter_secs = 7",
        "endpoint = \"198.18.0.1:51820\"",
    ))
    .expect("valid");
    assert_eq!(c.targets.len(), 1);
    let t = &c.targets[0];
    assert_eq!(t.endpoint, "198.18.0.1:51820".parse().expect("addr"));
    assert_eq!(t.responder_port, 9909);
    assert_eq!(t.config_quality.map(|q| q.max_rtt_ms), Some(100.0));
    assert_eq!(c.probe.ping_count, 10);
    assert_eq!(c.probe.transfer_bytes, 2 << 20);
    assert_eq!(c.probe.interface, "fsverify0");
    assert_eq!(
        c.schedule.as_ref().map(|s| s.jitter),
        Some(Duration::from_secs(7))
    );
    assert!(c.chain.is_none());
}

#[test]
fn hostname_endpoint_is_refused_naming_the_field() {
    let e = err(&config("", "endpoint = \"vpn.example.com:51820\""));
    assert!(e.starts_with("targets[0].endpoint:"), "{e}");
    assert!(e.contains("never resolved"), "{e}");
}

#[test]
fn field_errors_name_the_field() {
    let ep = "endpoint = \"198.18.0.1:51820\"";
    let cases = [
        (
            "[probe]\ntransfer_bytes = 999999999",
            "probe.transfer_bytes",
        ),
        ("[probe]\nping_count = 0", "probe.ping_count"),
        (
            "[probe]\nhandshake_timeout_secs = -1",
            "probe.handshake_timeout_secs",
        ),
        ("interface = \"much-too-long-name\"", "verifier.interface"),
        ("[schedule]\njitter_secs = 3", "schedule"),
        ("[schedule]\ncron = \"nope\"", "schedule.cron"),
        (
            "[chain]\nrpc_url = \"http://x\"\nmarket = \"0x12\"\nprivate_key_file = \"k\"",
            "chain.market",
        ),
        (
            "[chain]\nrpc_url = \"ws://x\"\nmarket = \"0x12\"\nprivate_key_file = \"k\"",
            "chain.rpc_url",
        ),
    ];
    for (extra, field) in cases {
        let e = err(&config(extra, ep));
        assert!(e.starts_with(&format!("{field}:")), "{field}: got {e}");
    }
    let e = err(&config(
        "",
        "endpoint = \"198.18.0.1:51820\"\nmax_loss_pct = 1",
    ));
    assert!(e.contains("max_loss_pct"), "{e}");
    let e = err(&config("", &format!("{ep}\n[[targets]]\nname = \"alpha\"")));
    assert!(e.contains("targets"), "{e}");
}

#[test]
fn thresholds_are_optional_but_all_or_none() {
    let ep = "endpoint = \"198.18.0.1:51820\"";
    let none = config("", ep)
        .replace("min_throughput_mbps = 10\n", "")
        .replace("max_loss_pct = 2\n", "")
        .replace("max_rtt_ms = 100\n", "");
    let c = Config::parse(&none).expect("valid without thresholds");
    assert_eq!(c.targets[0].config_quality, None);
    let partial = config("", ep).replace("max_loss_pct = 2\n", "");
    let e = err(&partial);
    assert!(e.starts_with("targets[0].max_loss_pct:"), "{e}");
    let c = Config::parse(&config("[probe]\nfail_streak = 5", ep)).expect("valid");
    assert_eq!(c.fail_streak, Some(5));
    let e = err(&config("[probe]\nfail_streak = 0", ep));
    assert!(e.starts_with("probe.fail_streak:"), "{e}");
}

#[test]
fn chain_market_or_deployment_exactly_one() {
    let ep = "endpoint = \"198.18.0.1:51820\"";
    let base = "[chain]\nrpc_url = \"http://127.0.0.1:8545\"\nprivate_key_file = \"k\"\n";
    let with =
        |extra: &str| config("", ep).replace("[[targets]]", &format!("{base}{extra}\n[[targets]]"));
    let c = Config::parse(&with("deployment = \"/etc/fs/deployment.json\"")).expect("valid");
    assert_eq!(
        c.chain.map(|c| c.market),
        Some(MarketSource::Deployment(PathBuf::from(
            "/etc/fs/deployment.json"
        )))
    );
    let both =
        with("deployment = \"/d.json\"\nmarket = \"0x00000000000000000000000000000000000000bb\"");
    assert!(err(&both).starts_with("chain.market:"), "{}", err(&both));
    assert!(err(&with("")).starts_with("chain.market:"));
}

#[test]
fn unknown_keys_are_refused() {
    let e = err(&config(
        "colour = \"blue\"",
        "endpoint = \"198.18.0.1:51820\"",
    ));
    assert!(e.contains("colour"), "{e}");
}

#[test]
fn key_optional_only_with_chain_source() {
    let no_key = config("", "endpoint = \"198.18.0.1:51820\"")
        .replace(&format!("wg_public_key = \"{KEY}\""), "");
    assert!(err(&no_key).starts_with("targets[0].wg_public_key:"));
    let chain = "[chain]\nrpc_url = \"http://127.0.0.1:8545\"\nmarket = \"0x00000000000000000000000000000000000000bb\"\nprivate_key_file = \"k\"\nsource = \"chain\"";
    let with_chain = no_key.replace("[[targets]]", &format!("{chain}\n[[targets]]"));
    let c = Config::parse(&with_chain).expect("valid");
    assert_eq!(c.chain.map(|c| c.source), Some(SourceKind::Chain));
    assert_eq!(c.targets[0].wg_public_key, None);
}
