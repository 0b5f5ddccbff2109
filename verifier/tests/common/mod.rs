//! Fixtures for the verifier's end-to-end tests: a provider (real `flowshield` daemon
//! in its own namespace, with the probe responder), verifier namespaces joined to it
//! by veth pairs, a real local chain with a market, and a recording fullnode.
//! Everything is removed by drop guards (namespaces, daemons, node, temp files).
#![allow(dead_code)]

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alloy::primitives::{Address, B256, U256};
use alloy::signers::local::PrivateKeySigner;
use flowshield_chain::{LocalChain, MarketClient, MarketParams, ProviderTerms};
use flowshield_e2e::netns::{Netns, VethPair};
use flowshield_e2e::site::{PeerSpec, Site};
use flowshield_e2e::wg::KeyPair;
use flowshield_verifier::report::SignedReport;
use flowshield_verifier::{Config, Verifier};

/// Provider tunnel address; the verifiers get .11, .12, ...
pub const PROVIDER_TUNNEL: &str = "10.77.0.1";
pub const PROVIDER_PORT: u16 = 51820;
pub const RESPONDER_PORT: u16 = 9909;

pub fn eth(n: u64) -> U256 {
    U256::from(n) * U256::from(10u64).pow(U256::from(18u64))
}

/// `flowshield-verifier responder` inside a namespace; killed on drop.
pub struct Responder {
    child: Child,
}

impl Responder {
    pub fn start(ns: &Netns, listen: &str) -> anyhow::Result<Self> {
        let mut child = ns
            .command(env!("CARGO_BIN_EXE_flowshield-verifier"))
            .args(["responder", "--listen", listen])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let stdout = child.stdout.take();
        let guard = Responder { child };
        // Ready once it printed its "listening on" line (bounded wait).
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            if let Some(out) = stdout {
                let _ = std::io::BufReader::new(out).read_line(&mut line);
            }
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(Duration::from_secs(15))?;
        anyhow::ensure!(line.starts_with("listening on"), "responder said {line:?}");
        Ok(guard)
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A provider: a flowshield daemon in its own namespace with tunnel address
/// 10.77.0.1/24, admitting the verifiers added with [`Provider::admit`].
pub struct Provider {
    pub responder: Option<Responder>,
    pub site: Site,
}

impl Provider {
    pub fn start(with_responder: bool) -> anyhow::Result<Self> {
        let mut site = Site::new("198.18.0.1", PROVIDER_TUNNEL, PROVIDER_PORT)?;
        site.start(flowshield_e2e::daemon::Implementation::Flowshield)?;
        site.wg_set(&[])?;
        site.link_up()?;
        let responder = if with_responder {
            Some(Responder::start(
                &site.ns,
                &format!("{PROVIDER_TUNNEL}:{RESPONDER_PORT}"),
            )?)
        } else {
            None
        };
        Ok(Provider { responder, site })
    }

    pub fn wg_public(&self) -> [u8; 32] {
        let hex = self.site.keys.public_hex();
        let mut out = [0u8; 32];
        hex::decode_to_slice(hex, &mut out).expect("hex key");
        out
    }

    /// Admit a verifier's key with its tunnel address (what the market will do).
    pub fn admit(&self, v: &VerifierNs) -> anyhow::Result<()> {
        let peer = PeerSpec {
            public_key: v.keys.public.clone(),
            allowed_ips: vec![format!("{}/32", v.tunnel)],
            endpoint: None,
            keepalive: None,
        };
        self.site.wg_set(&[peer])
    }

    /// Throttle what the provider sends to `v` (its veth egress) to `rate`.
    pub fn throttle(&self, v: &VerifierNs, rate: &str) -> anyhow::Result<()> {
        self.site.ns.run(&[
            "tc",
            "qdisc",
            "add",
            "dev",
            &v.provider_dev,
            "root",
            "tbf",
            "rate",
            rate,
            "burst",
            "16kbit",
            "latency",
            "400ms",
        ])?;
        Ok(())
    }
}

/// A verifier's namespace joined to the provider by its own veth pair
/// (198.18.N.2 ⇄ provider 198.18.N.1), with its own WireGuard key.
pub struct VerifierNs {
    pub ns: Netns,
    pub dev: String,
    pub provider_dev: String,
    pub keys: KeyPair,
    pub tunnel: String,
    pub endpoint: String,
    pub iface: String,
    pub dir: tempfile::TempDir,
}

impl VerifierNs {
    pub fn new(provider: &Provider, n: u8) -> anyhow::Result<Self> {
        let ns = Netns::new()?;
        let pair = VethPair::new(
            &provider.site.ns,
            &format!("198.18.{n}.1/24"),
            &ns,
            &format!("198.18.{n}.2/24"),
        )?;
        Ok(VerifierNs {
            ns,
            dev: pair.b_dev,
            provider_dev: pair.a_dev,
            keys: KeyPair::generate()?,
            tunnel: format!("10.77.0.{}", 10 + n),
            endpoint: format!("198.18.{n}.1:{PROVIDER_PORT}"),
            iface: flowshield_e2e::unique_iface(),
            dir: tempfile::Builder::new().prefix("fsverifier-").tempdir()?,
        })
    }

    /// A counter of the verifier's veth (`rx_bytes`, `tx_packets`...).
    pub fn counter(&self, name: &str) -> u64 {
        let path = format!("/sys/class/net/{}/statistics/{name}", self.dev);
        self.ns
            .run(&["cat", &path])
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(u64::MAX)
    }

    pub fn write_secret(&self, name: &str, text: &str) -> PathBuf {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let path = self.dir.path().join(name);
        std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .mode(0o600)
            .open(&path)
            .and_then(|mut f| f.write_all(text.as_bytes()))
            .expect("write key file");
        path
    }

    /// The config file text for this verifier; `chain` is the `[chain]` section (or
    /// empty), `target` the target's extra lines.
    pub fn config_text(&self, fullnodes: &[String], chain: &str, target: &str) -> String {
        let wg_key = self.write_secret("wg.key", &self.keys.private);
        let bin = flowshield_e2e::flowshield_bin().expect("flowshield binary");
        let nodes: Vec<String> = fullnodes.iter().map(|u| format!("\"{u}\"")).collect();
        format!(
            r#"database = "{db}"
fullnodes = [{nodes}]

[verifier]
wg_private_key_file = "{wg}"
flowshield_bin = "{bin}"
interface = "{iface}"
netns = "{ns}"

[probe]
ping_count = 5
ping_interval_ms = 200
transfer_bytes = 2097152
transfer_timeout_secs = 4
handshake_timeout_secs = 5
responder_port = {RESPONDER_PORT}

[schedule]
interval_secs = 300
jitter_secs = 10

{chain}

[[targets]]
name = "provider-a"
endpoint = "{endpoint}"
tunnel_address = "{tunnel}/32"
probe_address = "{PROVIDER_TUNNEL}"
min_throughput_mbps = 4
max_loss_pct = 20
max_rtt_ms = 200
{target}
"#,
            db = self.dir.path().join("results.db").display(),
            nodes = nodes.join(", "),
            wg = wg_key.display(),
            bin = bin.display(),
            iface = self.iface,
            ns = self.ns.name(),
            endpoint = self.endpoint,
            tunnel = self.tunnel,
        )
    }

    pub fn config(&self, fullnodes: &[String], chain: &str, target: &str) -> Config {
        let path = self.dir.path().join("verifier.toml");
        std::fs::write(&path, self.config_text(fullnodes, chain, target)).expect("write config");
        Config::load(&path).expect("valid config")
    }

    /// Whether the probe interface exists in the verifier namespace.
    pub fn has_iface(&self) -> bool {
        self.ns.ip(&["link", "show", "dev", &self.iface]).is_ok()
    }
}

/// Whether `iface` exists in the test process's own (host) namespace.
pub fn host_has_iface(iface: &str) -> bool {
    std::process::Command::new("ip")
        .args(["link", "show", "dev", iface])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(true)
}

/// A fullnode stand-in that records what it receives: an axum server on 127.0.0.1
/// answering 202, or always 503 when `broken`.
pub struct Fullnode {
    pub url: String,
    pub received: Arc<Mutex<Vec<SignedReport>>>,
    pub hits: Arc<Mutex<u32>>,
    task: tokio::task::JoinHandle<()>,
}

impl Fullnode {
    pub async fn start(broken: bool) -> Self {
        use axum::{extract::State, http::StatusCode, routing::post, Json, Router};
        type Shared = (Arc<Mutex<Vec<SignedReport>>>, Arc<Mutex<u32>>, bool);
        async fn handle(
            State((received, hits, broken)): State<Shared>,
            Json(report): Json<SignedReport>,
        ) -> StatusCode {
            *hits.lock().expect("lock") += 1;
            if broken {
                return StatusCode::SERVICE_UNAVAILABLE;
            }
            received.lock().expect("lock").push(report);
            StatusCode::ACCEPTED
        }
        let received = Arc::new(Mutex::new(Vec::new()));
        let hits = Arc::new(Mutex::new(0));
        let app = Router::new()
            .route("/v1/reports", post(handle))
            .with_state((received.clone(), hits.clone(), broken));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind fullnode");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Fullnode {
            url,
            received,
            hits,
            task,
        }
    }

    pub fn reports(&self) -> Vec<SignedReport> {
        self.received.lock().expect("lock").clone()
    }
}

impl Drop for Fullnode {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A local chain with a market (quorum 2), a registered provider with stake and one
/// accepted order, and `verifiers` registered verifier accounts.
pub struct Market {
    pub chain: LocalChain,
    pub owner: MarketClient,
    pub provider: PrivateKeySigner,
    pub verifiers: Vec<PrivateKeySigner>,
    pub stake: U256,
}

impl Market {
    pub async fn start(provider_wg: [u8; 32], verifiers: usize) -> Self {
        let chain = LocalChain::start().await.expect("local chain");
        let owner_signer = chain.dev_signer(0).expect("dev signer");
        let governance = owner_signer.address();
        let owner = MarketClient::deploy(
            chain.provider_for(owner_signer).expect("provider"),
            &MarketParams::default(),
            governance,
        )
        .await
        .expect("deploy market");
        let provider = chain.funded_signer().await.expect("provider account");
        let as_provider = owner.with_provider(chain.provider_for(provider.clone()).expect("p"));
        let stake = eth(2);
        let terms = ProviderTerms {
            price_per_gib: eth(1) / U256::from(1000),
            price_per_hour: eth(1) / U256::from(1000),
            peer_id_hash: B256::repeat_byte(0x42),
            wg_public_key: provider_wg,
            quality: flowshield_chain::default_quality(),
        };
        as_provider.register(stake, &terms).await.expect("register");
        let client = chain.funded_signer().await.expect("client account");
        let as_client = owner.with_provider(chain.provider_for(client).expect("c"));
        let (order, _) = as_client
            .open_order(provider.address(), eth(1))
            .await
            .expect("open order");
        as_provider.accept_order(order).await.expect("accept order");
        let mut vs = Vec::new();
        for _ in 0..verifiers {
            let v = chain.funded_signer().await.expect("verifier account");
            // Join by staking: the minimum plus 100 report bonds.
            let p = MarketParams::default();
            owner
                .with_provider(chain.provider_for(v.clone()).expect("v"))
                .join_verifiers(p.min_verifier_stake + p.report_bond * U256::from(100u64))
                .await
                .expect("join verifiers");
            vs.push(v);
        }
        // Start at the beginning of a report period, so that every report of the test
        // falls in the same one.
        let period = MarketParams::default().report_period;
        let now = chain.latest_timestamp().await.expect("timestamp");
        chain
            .increase_time(period - now % period + 1)
            .await
            .expect("align to a period");
        Market {
            chain,
            owner,
            provider,
            verifiers: vs,
            stake,
        }
    }

    pub fn provider_address(&self) -> Address {
        self.provider.address()
    }

    /// The `[chain]` section for verifier `i`, key file written into `v`'s dir.
    pub fn chain_section(&self, i: usize, v: &VerifierNs, source: &str) -> String {
        let key = v.write_secret("chain.key", &self.verifiers[i].to_bytes().to_string());
        format!(
            "[chain]\nrpc_url = \"{}\"\nmarket = \"{:#x}\"\nprivate_key_file = \"{}\"\nsource = \"{source}\"",
            self.chain.rpc_url(),
            self.owner.address(),
            key.display()
        )
    }
}

/// A verifier built from `config`.
pub async fn verifier(config: Config) -> Verifier {
    Verifier::new(config).await.expect("verifier")
}

pub fn path_exists(p: &Path) -> bool {
    p.exists()
}
