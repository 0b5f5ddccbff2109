//! `flowshield-market deploy` against two EVM node implementations — the local
//! Hardhat EDR node and Foundry's anvil (pinned in contracts/package.json) — so that
//! nothing depends on one node's quirks: deploy with a 0600 key file, read the
//! manifest back, and trade through it (register + stake, open, accept, redeem a
//! voucher and settle, withdraw). The manifest is refused, naming the field, on another
//! chain or when the code at an address is not what was deployed.

use std::io::BufRead;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use flowshield_chain::alloy::primitives::{Address, B256, U256};
use flowshield_chain::alloy::providers::{DynProvider, Provider as _};
use flowshield_chain::alloy::signers::local::PrivateKeySigner;
use flowshield_chain::{
    rpc, voucher, Deployment, DeploymentError, LocalChain, MarketParams, OrderStatus, ProviderTerms,
};
use flowshield_market::chain::write_key_file;

fn eth_milli(n: u64) -> U256 {
    U256::from(n) * U256::from(10u64).pow(U256::from(15u64))
}

/// Foundry's anvil on a free loopback port; killed on drop (also when the test fails).
struct Anvil {
    child: Child,
    rpc_url: String,
}

impl Anvil {
    /// The native binary of `@foundry-rs/anvil` (its platform package), or
    /// `FLOWSHIELD_ANVIL`.
    fn binary() -> PathBuf {
        if let Some(p) = std::env::var_os("FLOWSHIELD_ANVIL") {
            return PathBuf::from(p);
        }
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            other => other,
        };
        Path::new(env!("CARGO_MANIFEST_DIR")).join(format!(
            "../contracts/node_modules/@foundry-rs/anvil-linux-{arch}/bin/anvil"
        ))
    }

    fn start() -> anyhow::Result<Self> {
        let bin = Self::binary();
        anyhow::ensure!(
            bin.exists(),
            "{} missing: run contracts/scripts/setup.sh",
            bin.display()
        );
        // Port 0: anvil picks a free one and says which. Its dev account gets no
        // balance: the test funds its own keys.
        let mut child = Command::new(&bin)
            .args(["--host", "127.0.0.1", "--port", "0", "--chain-id", "31338"])
            .args(["--accounts", "1", "--balance", "0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let stdout = child.stdout.take();
        let mut guard = Anvil {
            child,
            rpc_url: String::new(),
        };
        // Ready once it printed "Listening on 127.0.0.1:PORT"; keep draining stdout so
        // the node never blocks on a full pipe (its lines are never shown: they hold
        // its dev key).
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let Some(out) = stdout else { return };
            for line in std::io::BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if let Some(addr) = line.strip_prefix("Listening on ") {
                    let _ = tx.send(addr.trim().to_string());
                }
            }
        });
        let addr = rx.recv_timeout(Duration::from_secs(30))?;
        guard.rpc_url = format!("http://{addr}");
        Ok(guard)
    }
}

impl Drop for Anvil {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A node, and how to fund an account on it (`hardhat_setBalance`/`anvil_setBalance`).
struct Node<'a> {
    rpc_url: &'a str,
    set_balance: &'static str,
}

impl Node<'_> {
    async fn funded(&self) -> PrivateKeySigner {
        let signer = PrivateKeySigner::random();
        let reader = rpc::connect_read_only(self.rpc_url).expect("reader");
        let wei = U256::from(100u64) * eth_milli(1000);
        let _: serde_json::Value = reader
            .raw_request(self.set_balance.into(), (signer.address(), wei))
            .await
            .expect("fund account");
        signer
    }
}

/// Run `flowshield-market deploy`; returns (status success, stdout, stderr).
fn deploy_cli(rpc_url: &str, key: &Path, out: &Path) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_flowshield-market"))
        .args(["deploy", "--rpc-url", rpc_url, "--key-file"])
        .arg(key)
        .arg("--out")
        .arg(out)
        .args([
            "--min-stake",
            "500000000000000000",
            "--timelock-delay",
            "3600",
        ])
        .args(["--accept-timeout", "120", "--close-grace", "5"])
        .output()
        .expect("run flowshield-market deploy");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Deploy on `node` with the CLI, then trade through the manifest alone.
async fn deploy_and_trade(node: &Node<'_>, chain_id: u64) -> Deployment {
    let dir = tempfile::tempdir().expect("tempdir");
    let deployer = node.funded().await;
    let key = dir.path().join("deployer.key");
    write_key_file(&key, &deployer).expect("key file");
    let key_hex = hex::encode(deployer.to_bytes());
    let manifest_path = dir.path().join("deployment.json");

    // A key file others can read is refused, naming it; nothing is deployed.
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let (ok, _, stderr) = deploy_cli(node.rpc_url, &key, &manifest_path);
    assert!(!ok, "deployed with a 0644 key file");
    assert!(stderr.contains("--key-file"), "{stderr}");
    assert!(stderr.contains(&key.display().to_string()), "{stderr}");
    assert!(!manifest_path.exists());
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod");

    let (ok, stdout, stderr) = deploy_cli(node.rpc_url, &key, &manifest_path);
    assert!(ok, "deploy failed: {stderr}");
    assert!(
        !stdout.contains(&key_hex) && !stderr.contains(&key_hex),
        "the key was printed"
    );
    // Never overwrites a manifest.
    let (again, _, stderr) = deploy_cli(node.rpc_url, &key, &manifest_path);
    assert!(!again && stderr.contains("exists"), "{stderr}");

    let m = Deployment::load(&manifest_path).expect("manifest");
    assert_eq!(m.chain_id, chain_id);
    assert_eq!(m.deployer, deployer.address());
    assert_eq!(m.timelock.min_delay, 3600);
    assert_eq!(m.timelock.proposers, vec![deployer.address()]);
    let expected = MarketParams {
        min_stake: eth_milli(500),
        accept_timeout: 120,
        close_grace: 5,
        ..MarketParams::default()
    };
    assert_eq!(m.market_params, expected);

    // Everything below knows the deployment only through the manifest.
    let as_ = |s: &PrivateKeySigner| -> DynProvider {
        rpc::connect(node.rpc_url, s.clone()).expect("provider")
    };
    let (provider, client) = (node.funded().await, node.funded().await);
    let p_market = m.market(as_(&provider)).await.expect("market via manifest");
    let c_market = m.market(as_(&client)).await.expect("market via manifest");
    assert_eq!(p_market.params().await.expect("params"), expected);
    assert_eq!(
        p_market.owner().await.expect("owner"),
        m.contracts.timelock.address
    );
    let terms = ProviderTerms {
        price_per_gib: eth_milli(1),
        price_per_hour: eth_milli(1),
        peer_id_hash: B256::repeat_byte(0x42),
        wg_public_key: [7u8; 32],
        quality: flowshield_chain::default_quality(),
    };
    p_market
        .register(eth_milli(500), &terms)
        .await
        .expect("register + stake");
    assert!(p_market
        .is_active_provider(provider.address())
        .await
        .expect("view"));
    let (order, _) = c_market
        .open_order(provider.address(), eth_milli(10))
        .await
        .expect("open order");
    p_market.accept_order(order).await.expect("accept");
    let domain = c_market.eip712_domain().await.expect("domain");
    let v = voucher::sign_voucher(&client, &domain, order, eth_milli(3)).expect("voucher");
    p_market
        .redeem_and_settle(&v)
        .await
        .expect("redeem + settle");
    assert_eq!(
        c_market.order_status(order).await.expect("status"),
        OrderStatus::Settled
    );
    assert_eq!(
        p_market
            .claimable(provider.address())
            .await
            .expect("claimable"),
        eth_milli(3)
    );
    assert_eq!(
        c_market.claimable(client.address()).await.expect("refund"),
        eth_milli(7)
    );
    p_market
        .withdraw()
        .await
        .expect("provider withdraws its pay");
    m
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_and_trade_on_the_hardhat_edr_node() {
    let chain = LocalChain::start().await.expect("local chain");
    let node = Node {
        rpc_url: chain.rpc_url(),
        set_balance: "hardhat_setBalance",
    };
    deploy_and_trade(&node, chain.chain_id()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_and_trade_on_anvil_and_refuse_a_mismatched_manifest() {
    let anvil = Anvil::start().expect("anvil");
    let node = Node {
        rpc_url: &anvil.rpc_url,
        set_balance: "anvil_setBalance",
    };
    let m = deploy_and_trade(&node, 31338).await;
    let reader = rpc::connect_read_only(&anvil.rpc_url).expect("reader");
    m.verify(&reader).await.expect("the manifest matches");

    // The same manifest claiming another chain: refused, naming chain_id.
    let mut other_chain = m.clone();
    other_chain.chain_id = 31337;
    let e = other_chain.verify(&reader).await.expect_err("wrong chain");
    assert!(matches!(e, DeploymentError::WrongChain { .. }), "{e}");
    assert!(e.to_string().starts_with("chain_id:"), "{e}");

    // An address with no code, and one whose code is another contract's.
    let mut empty = m.clone();
    empty.contracts.market.address = Address::repeat_byte(0x11);
    let e = empty.verify(&reader).await.expect_err("no code");
    assert!(
        e.to_string()
            .starts_with("contracts.market.address: no contract code"),
        "{e}"
    );
    let mut swapped = m.clone();
    swapped.contracts.deca_registry.address = m.contracts.timelock.address;
    let e = swapped.verify(&reader).await.expect_err("other code");
    assert!(
        e.to_string()
            .starts_with("contracts.deca_registry.address:"),
        "{e}"
    );
    assert!(e.to_string().contains("differs"), "{e}");
}
