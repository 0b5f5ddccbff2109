//! The `flowshield-market` binary end to end on 127.0.0.1: a fullnode and a
//! provider as separate processes, configured the way an operator would.

mod common;

use common::http::get_blocking as http_get;
use common::process::Proc;
use common::{BIN, WAIT};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// `flowshield-market args` as `name`, logging warnings to `dir/name.log`.
fn spawn(dir: &Path, name: &str, args: &[&str]) -> Proc {
    Proc::start(
        dir,
        name,
        Command::new(BIN).args(args).env("RUST_LOG", "warn"),
    )
    .unwrap_or_else(|e| panic!("{e:#}"))
}

/// A provider file in `dir` offering in sa-east at `price_per_gib_wei`
/// (written as given, so a test can make it invalid).
fn write_provider_config(dir: &Path, price_per_gib_wei: &str) -> PathBuf {
    let config = dir.join("provider.toml");
    std::fs::write(
        &config,
        format!(
            r#"identity_file = "{}"
listen = ["/ip4/127.0.0.1/tcp/0"]
heartbeat_secs = 1
tunnel_subnet = "10.77.0.0/24"

[offer]
region = "sa-east"
price_per_gib_wei = "{price_per_gib_wei}"
price_per_hour_wei = "0"
capacity_mbps = 50
max_clients = 5
wg_public_key = "{}"
endpoint = "127.0.0.1:51820"
chain_address = "0x00000000000000000000000000000000000000bb"
"#,
            dir.join("provider.key").display(),
            "A".repeat(43) + "="
        ),
    )
    .expect("write provider config");
    config
}

#[test]
fn fullnode_and_provider_processes_find_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("index.db").display());
    let fullnode_key = dir.path().join("fullnode.key");
    let fullnode = spawn(
        dir.path(),
        "fullnode",
        &[
            "fullnode",
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
            "--http",
            "127.0.0.1:0",
            "--db",
            &db,
            "--identity",
            fullnode_key.to_str().unwrap(),
        ],
    );
    let listen = fullnode.wait_prefix("listening ", WAIT).unwrap();
    let http = fullnode.wait_prefix("http ", WAIT).unwrap();
    let mode = std::fs::metadata(&fullnode_key)
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600, "key file mode");
    assert_eq!(http_get(&http, "/healthz"), (200, "ok\n".to_string()));

    let config = write_provider_config(dir.path(), "123");
    let provider = spawn(
        dir.path(),
        "provider",
        &[
            "provider",
            "--config",
            config.to_str().unwrap(),
            "--bootstrap",
            &listen,
        ],
    );
    provider.wait_prefix("listening ", WAIT).unwrap();

    // The fullnode's index is only observable over HTTP here; poll it.
    let deadline = Instant::now() + WAIT;
    loop {
        let (status, body) = http_get(&http, "/v1/providers?region=sa-east");
        assert_eq!(status, 200);
        if body.contains(r#""price_per_gib_wei":"123""#) {
            break;
        }
        assert!(Instant::now() < deadline, "provider never indexed: {body}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn bad_provider_config_names_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_provider_config(dir.path(), "cheap");
    let out = Command::new(BIN)
        .args(["provider", "--config", config.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("offer.price_per_gib_wei"), "{stderr}");
}

/// `--log-format json` (what the packaged units can use for journald/Loki):
/// the fullnode's standard error is one JSON object per line, with its own
/// events at info; standard output keeps its plain readiness lines.
#[test]
fn json_logs_are_one_object_per_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = format!("sqlite://{}", dir.path().join("index.db").display());
    let key = dir.path().join("fullnode.key");
    let process = Proc::start(
        dir.path(),
        "stderr",
        Command::new(BIN)
            .args(["--log-format", "json", "fullnode", "--listen"])
            .args(["/ip4/127.0.0.1/tcp/0", "--http", "127.0.0.1:0", "--db", &db])
            .arg("--identity")
            .arg(&key)
            .env_remove("RUST_LOG"),
    )
    .expect("spawn fullnode");
    process.wait_prefix("http ", WAIT).expect("http line");
    let log = process.log_path().to_path_buf();
    drop(process);
    let text = std::fs::read_to_string(&log).expect("read log");
    let events: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(
        events.iter().any(|e| e["level"] == "INFO"
            && e["target"]
                .as_str()
                .is_some_and(|t| t.starts_with("flowshield_market"))),
        "no info event from flowshield_market in:\n{text}"
    );
    assert!(events.iter().all(|e| e["level"] != "DEBUG"), "{text}");
}

#[test]
fn keys_creates_missing_key_files_once_and_prints_only_public_values() {
    let dir = tempfile::tempdir().unwrap();
    let identity = dir.path().join("etc/provider.key");
    let chain_key = dir.path().join("etc/chain.key");
    let run = || {
        let out = Command::new(BIN)
            .args(["keys", "--identity", identity.to_str().unwrap()])
            .args(["--chain-key", chain_key.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let first = run();
    let lines: Vec<&str> = first.lines().collect();
    assert_eq!(lines.len(), 2, "{first}");
    assert!(lines[0].starts_with("peer_id 12D3Koo"), "{first}");
    assert!(lines[1].starts_with("chain_address 0x"), "{first}");
    for path in [&identity, &chain_key] {
        let mode = std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", path.display());
    }
    let secret = std::fs::read_to_string(&chain_key).unwrap();
    assert!(!first.contains(secret.trim()), "printed the chain key");
    assert_eq!(run(), first, "keys changed on the second run");
}

/// A raw HTTP/1.1 `GET path` to `addr` naming `host`, with an optional
/// `Authorization` value, as a browser or script would send it: the status
/// and the whole answer.
fn raw_get(addr: &str, path: &str, host: &str, authorization: Option<&str>) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let auth = authorization
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\n{auth}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not HTTP: {answer}"));
    (status, answer)
}

/// `[dashboard] token_file` readable by others stops the provider at start,
/// naming the file. Made 0600, the dashboard answers its listen address
/// only with the token, and a DNS-rebinding `Host` not at all.
#[test]
fn the_dashboard_token_file_must_be_private_and_is_required() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_provider_config(dir.path(), "123");
    let token_file = dir.path().join("dashboard.token");
    let token = "cXVpdGUtYS1sb25nLWRhc2hib2FyZC10b2tlbg==";
    std::fs::write(&token_file, format!("{token}\n")).unwrap();
    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(&format!(
        "\n[dashboard]\nlisten = \"127.0.0.1:0\"\ntoken_file = \"{}\"\n",
        token_file.display()
    ));
    std::fs::write(&config, text).unwrap();

    let out = Command::new(BIN)
        .args(["provider", "--config", config.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success(), "started with a 0644 token file");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let named = format!(
        "dashboard.token_file: {}: readable by group or others (mode 644)",
        token_file.display()
    );
    assert!(stderr.contains(&named), "{stderr}");
    assert!(!stderr.contains(token), "the token was printed: {stderr}");

    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let provider = spawn(
        dir.path(),
        "provider",
        &["provider", "--config", config.to_str().unwrap()],
    );
    let url = provider.wait_prefix("dashboard ", WAIT).unwrap();
    let addr = url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let bearer = format!("Bearer {token}");
    let (status, answer) = raw_get(&addr, "/api/status", &addr, Some(&bearer));
    assert_eq!(status, 200, "{answer}");
    assert!(answer.contains("\"identity\""), "{answer}");
    for auth in [None, Some("Bearer wrong-token-wrong-token")] {
        let (status, answer) = raw_get(&addr, "/api/status", &addr, auth);
        assert_eq!(status, 401, "{auth:?}: {answer}");
        assert!(!answer.contains("\"identity\""), "{answer}");
    }
    let (status, answer) = raw_get(&addr, "/api/status", "evil.example", Some(&bearer));
    assert_eq!(status, 421, "{answer}");
    assert!(!answer.contains("\"identity\""), "{answer}");
    assert_eq!(raw_get(&addr, "/healthz", &addr, None).0, 200);
}
