//! `flowshield-ca`: run a DeCA operator, create its keys, and client helpers for nodes and
//! operators. Thin wiring over the `flowshield_ca` library.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use alloy::primitives::{Address, B256};
use alloy::signers::local::PrivateKeySigner;
use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use serde::Deserialize;

use flowshield_ca::authority::{pem_decode, Authority};
use flowshield_ca::client::CaClient;
use flowshield_ca::node::{NodeKeyFile, NodeKeys};
use flowshield_ca::registry::{ChainRegistry, Registry};
use flowshield_ca::service::{api, CaService, ServiceConfig};
use flowshield_ca::store::Store;
use flowshield_ca::{unix_now, verify, NodeBinding};

#[derive(Parser)]
#[command(
    name = "flowshield-ca",
    about = "FlowShield decentralized certificate authority"
)]
struct Cli {
    #[command(flatten)]
    log: flowshield_logging::LogArgs,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the operator service.
    Serve {
        /// TOML configuration file.
        #[arg(long)]
        config: PathBuf,
    },
    /// Create an operator: chain key (unless given), CA key and root cert, sample config.
    Init {
        /// Directory to write into (created).
        #[arg(long)]
        dir: PathBuf,
        /// Existing operator chain key file (hex secp256k1); generated if absent.
        #[arg(long)]
        operator_key: Option<PathBuf>,
    },
    /// Registry owner: register an operator's CA on chain.
    RegisterOperator {
        #[arg(long)]
        rpc_url: String,
        #[arg(long)]
        registry: Address,
        /// Owner key file (hex secp256k1).
        #[arg(long)]
        owner_key: PathBuf,
        #[arg(long)]
        operator: Address,
        /// The operator's root certificate (PEM).
        #[arg(long)]
        ca_cert: PathBuf,
        /// Public URL of the operator's API.
        #[arg(long)]
        url: String,
    },
    /// Node: obtain a certificate (creates the node key file if missing).
    Request {
        /// Operator API base URL.
        #[arg(long)]
        ca: String,
        /// Node key file (JSON, 0600).
        #[arg(long)]
        keys: PathBuf,
        /// Where to write chain.pem.
        #[arg(long)]
        out: PathBuf,
    },
    /// Verify a certificate chain against an expected binding.
    Verify {
        /// chain.pem: leaf then operator root.
        #[arg(long)]
        chain: PathBuf,
        /// Expected WireGuard key (base64).
        #[arg(long)]
        wg: String,
        /// Expected PeerId.
        #[arg(long)]
        peer: String,
        /// Expected chain address.
        #[arg(long)]
        eth: Address,
        /// RPC URL; without it only offline checks run.
        #[arg(long, requires = "registry")]
        rpc_url: Option<String>,
        #[arg(long)]
        registry: Option<Address>,
        /// Operator API to fetch an inclusion proof from (requires anchoring on chain).
        #[arg(long, requires = "rpc_url")]
        inclusion_from: Option<String>,
    },
}

/// `serve` configuration file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    listen: String,
    db: PathBuf,
    ca_key: PathBuf,
    ca_cert: PathBuf,
    operator_key: PathBuf,
    rpc_url: Option<String>,
    registry: Option<Address>,
    /// Deployment manifest (`flowshield-market deploy`) instead of `registry`;
    /// checked against `rpc_url` (chain id, contract code) at start.
    deployment: Option<PathBuf>,
    #[serde(default = "default_anchor")]
    anchor_interval_secs: u64,
    #[serde(default = "default_validity")]
    leaf_validity_secs: u64,
    admin_token_file: Option<PathBuf>,
}

fn default_anchor() -> u64 {
    300
}

fn default_validity() -> u64 {
    24 * 3600
}

#[tokio::main]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    cli.log.init()?;
    match cli.cmd {
        Cmd::Serve { config } => serve(&config).await,
        Cmd::Init { dir, operator_key } => init(&dir, operator_key.as_deref()),
        Cmd::RegisterOperator {
            rpc_url,
            registry,
            owner_key,
            operator,
            ca_cert,
            url,
        } => {
            let owner = read_signer(&owner_key)?;
            let reg = ChainRegistry::connect(&rpc_url, registry, owner)?;
            let der =
                pem_decode(&std::fs::read_to_string(&ca_cert)?).context("ca cert is not PEM")?;
            let hash = sha256(&der);
            reg.client().register_operator(operator, hash, &url).await?;
            println!("registered {operator} with caCertHash {hash}");
            Ok(())
        }
        Cmd::Request { ca, keys, out } => request(&ca, &keys, &out).await,
        Cmd::Verify {
            chain,
            wg,
            peer,
            eth,
            rpc_url,
            registry,
            inclusion_from,
        } => {
            let pem = std::fs::read_to_string(&chain)
                .with_context(|| format!("reading {}", chain.display()))?;
            let ders = split_pem(&pem);
            let expected = NodeBinding {
                wg_pubkey: flowshield_ca::binding::key_from_b64(&wg)
                    .context("--wg: expected base64 of 32 bytes")?,
                peer_id: peer.parse().context("--peer: not a PeerId")?,
                chain_address: eth,
            };
            let facts = match (rpc_url, registry) {
                (Some(rpc), Some(reg)) => {
                    let registry = ChainRegistry::connect(&rpc, reg, PrivateKeySigner::random())?;
                    let facts = verify::inspect_chain(&ders, unix_now())?;
                    let evidence = match inclusion_from {
                        Some(ca) => {
                            let anchored = registry.latest_root(facts.operator).await?;
                            let proof = CaClient::new(ca)
                                .inclusion(&hex::encode(facts.cert_hash), Some(anchored.tree_size))
                                .await?;
                            Some(proof.evidence())
                        }
                        None => None,
                    };
                    let require = evidence.is_some();
                    verify::verify_node_cert(
                        &registry,
                        &ders,
                        &expected,
                        evidence.as_ref(),
                        require,
                        unix_now(),
                    )
                    .await?
                }
                _ => {
                    let facts = verify::inspect_chain(&ders, unix_now())?;
                    if let Some(field) = facts.binding.first_mismatch(&expected) {
                        bail!("binding mismatch in {field}");
                    }
                    eprintln!("offline checks only (no --rpc-url): operator registration, revocation and log not checked");
                    facts
                }
            };
            println!(
                "OK serial={} operator={} not_after={}",
                hex::encode(&facts.serial),
                facts.operator,
                facts.not_after
            );
            Ok(())
        }
    }
}

async fn serve(path: &Path) -> Result<()> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let cfg: Config =
        toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    let operator = read_signer(&cfg.operator_key)?;
    let key_pem = std::fs::read_to_string(&cfg.ca_key)
        .with_context(|| format!("reading {}", cfg.ca_key.display()))?;
    let cert_der = pem_decode(&std::fs::read_to_string(&cfg.ca_cert)?)
        .with_context(|| format!("{} is not PEM", cfg.ca_cert.display()))?;
    let authority = Authority::load(&key_pem, &cert_der, operator.address())?;
    let store = Store::open(&cfg.db.to_string_lossy()).await?;
    let registry_address = match (&cfg.rpc_url, cfg.registry, &cfg.deployment) {
        (Some(_), Some(addr), None) => Some(addr),
        (Some(rpc), None, Some(path)) => {
            let manifest = flowshield_chain::Deployment::load(path).context("deployment")?;
            let reader = flowshield_chain::rpc::connect_read_only(rpc).context("rpc_url")?;
            manifest.verify(&reader).await.context("deployment")?;
            Some(manifest.contracts.deca_registry.address)
        }
        (None, None, None) => None,
        _ => bail!("rpc_url and one of registry/deployment must be set together"),
    };
    let registry: Option<Arc<dyn Registry>> = match (&cfg.rpc_url, registry_address) {
        (Some(rpc), Some(addr)) => Some(Arc::new(ChainRegistry::connect(rpc, addr, operator)?)),
        _ => None,
    };
    let admin_token = match &cfg.admin_token_file {
        Some(p) => Some(std::fs::read_to_string(p)?.trim().to_string()),
        None => None,
    };
    let has_chain = registry.is_some();
    let svc = CaService::new(
        authority,
        store,
        registry,
        ServiceConfig {
            leaf_validity_secs: cfg.leaf_validity_secs,
            admin_token,
            ..ServiceConfig::default()
        },
    )
    .await?;
    if has_chain {
        svc.spawn_anchor_task(Duration::from_secs(cfg.anchor_interval_secs.max(1)));
    }
    let listener = tokio::net::TcpListener::bind(&cfg.listen)
        .await
        .with_context(|| format!("binding {}", cfg.listen))?;
    tracing::info!(addr = %listener.local_addr()?, operator = %svc.authority().operator(), "serving");
    axum::serve(listener, api::router(svc))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}

fn init(dir: &Path, operator_key: Option<&Path>) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let signer = match operator_key {
        Some(p) => read_signer(p)?,
        None => {
            let s = PrivateKeySigner::random();
            write_private(&dir.join("operator.key"), &hex::encode(s.to_bytes()))?;
            s
        }
    };
    let ca = Authority::create(signer.address(), unix_now())?;
    write_private(&dir.join("ca-key.pem"), ca.key_pem())?;
    std::fs::write(dir.join("ca-cert.pem"), ca.cert_pem())?;
    let operator_key_path = operator_key
        .map(Path::to_path_buf)
        .unwrap_or_else(|| dir.join("operator.key"));
    let config = format!(
        "listen = \"127.0.0.1:8443\"\ndb = {:?}\nca_key = {:?}\nca_cert = {:?}\noperator_key = {:?}\n\
         # rpc_url = \"http://127.0.0.1:8545\"\n# registry = \"0x...\"\n# deployment = \"/etc/flowshield/deployment.json\"  # instead of registry\nanchor_interval_secs = 300\n\
         leaf_validity_secs = 86400\n",
        dir.join("ca.db"),
        dir.join("ca-key.pem"),
        dir.join("ca-cert.pem"),
        operator_key_path,
    );
    std::fs::write(dir.join("config.toml"), config)?;
    println!("operator {}", signer.address());
    println!("caCertHash {}", B256::from(ca.ca_cert_hash()));
    Ok(())
}

async fn request(ca: &str, keys_path: &Path, out: &Path) -> Result<()> {
    let keys = if keys_path.exists() {
        let file: NodeKeyFile = serde_json::from_str(&std::fs::read_to_string(keys_path)?)
            .with_context(|| format!("parsing {}", keys_path.display()))?;
        NodeKeys::from_file(&file)?
    } else {
        let k = NodeKeys::generate();
        write_private(keys_path, &serde_json::to_string_pretty(&k.to_file())?)?;
        k
    };
    let issued = CaClient::new(ca).request_certificate(&keys).await?;
    std::fs::write(out, &issued.chain_pem)?;
    println!("{}", serde_json::to_string_pretty(&keys.binding())?);
    println!("serial {} valid until {}", issued.serial, issued.not_after);
    Ok(())
}

fn split_pem(pem: &str) -> Vec<Vec<u8>> {
    pem.split_inclusive("-----END CERTIFICATE-----")
        .filter_map(pem_decode)
        .collect()
}

fn sha256(der: &[u8]) -> B256 {
    use sha2::Digest;
    B256::from(<[u8; 32]>::from(sha2::Sha256::digest(der)))
}

fn read_signer(path: &Path) -> Result<PrivateKeySigner> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let raw = hex::decode(text.trim().trim_start_matches("0x"))
        .with_context(|| format!("{} is not hex", path.display()))?;
    PrivateKeySigner::from_slice(&raw).with_context(|| format!("{} is not a key", path.display()))
}

/// Writes a secret file readable by the owner only; refuses to overwrite.
fn write_private(path: &Path, contents: &str) -> Result<()> {
    Ok(flowshield_keyfile::create_private(
        path,
        contents.as_bytes(),
    )?)
}
