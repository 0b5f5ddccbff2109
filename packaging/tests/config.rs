//! The files the package ships, checked against the code that reads them:
//! the configurations parse with the real loaders, refuse their
//! placeholders and are valid once a site's values are filled in; the
//! changelog carries the workspace version. Runs as any user, no network.

use std::path::{Path, PathBuf};

fn shipped(path: &str) -> String {
    let full = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

/// Every `<placeholder>` in `text`.
fn placeholders(text: &str) -> Vec<String> {
    text.lines()
        .filter(|line| !line.trim_start().starts_with('#'))
        .flat_map(|line| {
            line.match_indices('<').filter_map(move |(start, _)| {
                line[start..]
                    .find('>')
                    .map(|end| line[start..start + end + 1].to_string())
            })
        })
        .collect()
}

/// `text` with each placeholder replaced; fails on a placeholder the test
/// does not know (a new site value must get an example here too).
fn fill(text: &str, values: &[(&str, String)]) -> String {
    let mut out = text.to_string();
    for found in placeholders(text) {
        let value = values
            .iter()
            .find(|(name, _)| *name == found)
            .unwrap_or_else(|| panic!("no example value for placeholder {found}"));
        out = out.replace(&found, &value.1);
    }
    assert!(placeholders(&out).is_empty(), "{out}");
    out
}

#[test]
fn provider_config_parses_and_needs_only_its_placeholders() {
    use flowshield_market::provider::ProviderFile;
    let text = shipped("config/provider.toml");
    assert_eq!(
        placeholders(&text),
        [
            "<multiaddr of a fullnode>",
            "<region>",
            "<public IPv4 address>",
            "<http://chain-rpc:8545>",
            "<0x market contract address>",
        ]
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("provider.toml");

    // As shipped: every key is known to the loader, and the offer refuses
    // the placeholders, naming the field.
    std::fs::write(&path, &text).unwrap();
    let file = ProviderFile::load(&path).unwrap();
    // The dashboard is on, on loopback only (it shows the host's business).
    let dashboard = file.dashboard.as_ref().expect("[dashboard] table");
    let listen: std::net::SocketAddr = dashboard.listen.parse().unwrap();
    assert!(listen.ip().is_loopback(), "dashboard on {listen}");
    let keypair = flowshield_proto::Keypair::generate_ed25519();
    let err = file.offer(&path, &keypair).unwrap_err().to_string();
    assert!(err.contains("offer."), "{err}");

    // Filled in, with the keys postinst creates: a valid offer, whose
    // chain address is the key file's.
    let key_file = dir.path().join("chain.key");
    let signer = flowshield_market::chain::load_or_create_key_file(&key_file).unwrap();
    let fullnode = flowshield_proto::Keypair::generate_ed25519()
        .public()
        .to_peer_id();
    let wg_key = flowshield_proto::WgPublicKey([9; 32]);
    let filled = fill(
        &text,
        &[
            (
                "<multiaddr of a fullnode>",
                format!("/ip4/203.0.113.5/tcp/4001/p2p/{fullnode}"),
            ),
            ("<region>", "eu-west".into()),
            ("<public IPv4 address>", "203.0.113.7".into()),
            ("<http://chain-rpc:8545>", "http://127.0.0.1:8545".into()),
            (
                "<0x market contract address>",
                "0x5FbDB2315678afecb367f032d93F642f64180aa3".into(),
            ),
        ],
    )
    .replace("/etc/flowshield/chain.key", key_file.to_str().unwrap())
    // The data plane is not running here: give its key as written.
    .replace(
        "# wg_public_key = \"<base64 public key>\"",
        &format!("wg_public_key = \"{wg_key}\""),
    );
    std::fs::write(&path, filled).unwrap();
    let file = ProviderFile::load(&path).unwrap();
    for addr in &file.bootstrap {
        addr.parse::<libp2p::Multiaddr>()
            .unwrap_or_else(|e| panic!("bootstrap {addr}: {e}"));
    }
    let offer = file.offer(&path, &keypair).unwrap();
    assert_eq!(offer.chain_address.0, signer.address().0 .0);
    assert_eq!(offer.wg_public_key, wg_key);
    assert_eq!(offer.endpoint.to_string(), "203.0.113.7:51820");
    assert_eq!(file.interface, "flowshield0");
    // The egress filter is on, SMTP blocked, uplink found at start.
    let egress = file.egress_policy(&path).unwrap().expect("[egress] on");
    assert_eq!(egress.blocked_ports, [25]);
    assert_eq!(
        egress.uplink,
        flowshield_market::provider::egress::Uplink::DefaultRoute
    );
    assert_eq!(
        file.identity_file,
        PathBuf::from("/etc/flowshield/provider.key")
    );
}

#[test]
fn verifier_config_is_valid_once_filled_in() {
    let text = shipped("config/verifier.toml");
    assert!(flowshield_verifier::Config::parse(&text).is_err());
    let filled = fill(
        &text,
        &[
            ("<http://fullnode:8080>", "http://192.0.2.10:8080".into()),
            ("<http://chain-rpc:8545>", "http://127.0.0.1:8545".into()),
            (
                "<0x market contract address>",
                "0x5FbDB2315678afecb367f032d93F642f64180aa3".into(),
            ),
            ("<name>", "alpha".into()),
            (
                "<0x provider address>",
                "0x70997970C51812dc3A010C7d01b50e0d17dc79C8".into(),
            ),
            (
                "<base64 public key>",
                flowshield_proto::WgPublicKey([9; 32]).to_string(),
            ),
            ("<IPv4 address>", "198.51.100.7".into()),
            ("<10.77.0.2/32>", "10.77.0.2/32".into()),
            ("<10.77.0.1>", "10.77.0.1".into()),
        ],
    );
    let config = flowshield_verifier::Config::parse(&filled)
        .unwrap_or_else(|e| panic!("shipped verifier.toml, filled in: {e}"));
    assert_eq!(config.targets.len(), 1);
    assert!(config.chain.is_some(), "`run` needs [chain]");
}

#[test]
fn changelog_version_is_the_workspace_version() {
    let changelog = shipped("debian/changelog");
    let first = changelog.lines().next().unwrap_or_default();
    let expected = format!("flowshield ({}-1) ", env!("CARGO_PKG_VERSION"));
    assert!(
        first.starts_with(&expected),
        "debian/changelog starts with '{first}', expected '{expected}…': add an entry for the new version"
    );
}
