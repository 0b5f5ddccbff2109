//! The `flowshield-ca` binary end to end on a real local chain: init, register-operator,
//! serve, request, verify (with an inclusion proof against the anchored root).

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use flowshield_ca::client::CaClient;
use flowshield_ca::node::{NodeKeyFile, NodeKeys};
use flowshield_chain::{DecaRegistryClient, LocalChain};

const BIN: &str = env!("CARGO_BIN_EXE_flowshield-ca");

fn run(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(BIN).args(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn value_after<'a>(text: &'a str, label: &str) -> &'a str {
    text.lines()
        .find_map(|l| l.strip_prefix(label))
        .unwrap_or_else(|| panic!("no {label} in {text}"))
        .trim()
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn cli_init_register_serve_request_verify() {
    let chain = LocalChain::start()
        .await
        .expect("run contracts/scripts/setup.sh");
    let owner =
        DecaRegistryClient::deploy(chain.provider_for(chain.dev_signer(0).unwrap()).unwrap())
            .await
            .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let op_dir = d.join("op");

    // init: keys 0600, prints the operator and the hash to register.
    let (ok, out, err) = run(&["init", "--dir", op_dir.to_str().unwrap()]);
    assert!(ok, "{err}");
    let operator: flowshield_chain::alloy::primitives::Address =
        value_after(&out, "operator ").parse().unwrap();
    assert_eq!(mode(&op_dir.join("ca-key.pem")), 0o600);
    assert_eq!(mode(&op_dir.join("operator.key")), 0o600);
    assert!(!out.contains("PRIVATE KEY") && !err.contains("PRIVATE KEY"));
    chain
        .set_balance(
            operator,
            flowshield_chain::alloy::primitives::U256::from(10u128.pow(20)),
        )
        .await
        .unwrap();

    // register-operator as the registry owner.
    let owner_key = d.join("owner.key");
    std::fs::write(&owner_key, hex::encode(chain.dev_private_keys()[0])).unwrap();
    let registry = owner.address().to_string();
    let (ok, _, err) = run(&[
        "register-operator",
        "--rpc-url",
        chain.rpc_url(),
        "--registry",
        &registry,
        "--owner-key",
        owner_key.to_str().unwrap(),
        "--operator",
        &operator.to_string(),
        "--ca-cert",
        op_dir.join("ca-cert.pem").to_str().unwrap(),
        "--url",
        "http://ca.example",
    ]);
    assert!(ok, "{err}");
    assert!(owner.is_operator(operator).await.unwrap());

    // serve: readiness is the "serving" log line carrying the bound address.
    let token_file = d.join("admin.token");
    std::fs::write(&token_file, "cli-admin").unwrap();
    let config = std::fs::read_to_string(op_dir.join("config.toml"))
        .unwrap()
        .replace("127.0.0.1:8443", "127.0.0.1:0")
        + &format!(
            "rpc_url = {:?}\nregistry = {:?}\nadmin_token_file = {:?}\n",
            chain.rpc_url(),
            registry,
            token_file
        );
    let config_path = op_dir.join("config.toml");
    std::fs::write(&config_path, config).unwrap();
    let mut child = Command::new(BIN)
        .args(["serve", "--config", config_path.to_str().unwrap()])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let _server = KillOnDrop(child);
    let mut lines = BufReader::new(stderr).lines();
    let addr = loop {
        let line = lines.next().expect("serve exited before serving").unwrap();
        if line.contains("serving") {
            let rest = line.split("addr=").nth(1).expect("addr field");
            break rest.split_whitespace().next().unwrap().to_string();
        }
    };
    // Keep draining the log so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    let base = format!("http://{addr}");
    // request: creates the node key file 0600 and writes the chain.
    let keys_path = d.join("node.json");
    let chain_pem = d.join("chain.pem");
    let (ok, out, err) = run(&[
        "request",
        "--ca",
        &base,
        "--keys",
        keys_path.to_str().unwrap(),
        "--out",
        chain_pem.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("serial "));
    assert_eq!(mode(&keys_path), 0o600);
    let file: NodeKeyFile =
        serde_json::from_str(&std::fs::read_to_string(&keys_path).unwrap()).unwrap();
    let binding = NodeKeys::from_file(&file).unwrap().binding();
    // Anchor now (the periodic task is covered in tests/onchain.rs).
    let anchored = CaClient::new(&base)
        .with_admin_token("cli-admin")
        .anchor_now()
        .await
        .unwrap();
    assert_eq!(anchored["anchored_tree_size"], 1);

    let wg = flowshield_ca::binding::b64(&binding.wg_pubkey);
    let peer = binding.peer_id.to_base58();
    let eth = binding.chain_address.to_string();
    let verify = |eth: &str| {
        run(&[
            "verify",
            "--chain",
            chain_pem.to_str().unwrap(),
            "--wg",
            &wg,
            "--peer",
            &peer,
            "--eth",
            eth,
            "--rpc-url",
            chain.rpc_url(),
            "--registry",
            &registry,
            "--inclusion-from",
            &base,
        ])
    };
    let (ok, out, err) = verify(&eth);
    assert!(ok, "{err}");
    assert!(out.starts_with("OK serial="), "{out}");
    let (ok, _, err) = verify("0x000000000000000000000000000000000000dEaD");
    assert!(!ok);
    assert!(err.contains("binding mismatch in chain_address"), "{err}");
}
