//! `flowshield-market`: the market sidecar's command line. Argument parsing
//! and wiring only; the roles live in the library.

use anyhow::{Context, Result};
mod cli;

use clap::{Parser, Subcommand};
use cli::devnet;
use flowshield_logging::LogArgs;
use flowshield_market::client::{self, config::ClientFile, control, Overrides};
use flowshield_market::fullnode::{Fullnode, FullnodeConfig};
use flowshield_market::identity;
use flowshield_market::provider::dashboard::Dashboard;
use flowshield_market::provider::{Provider, ProviderConfig, ProviderFile};
use flowshield_market::wire::session::parse_u256;
use libp2p::Multiaddr;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "flowshield-market",
    version,
    about = "FlowShield bandwidth market sidecar"
)]
struct Cli {
    #[command(flatten)]
    log: LogArgs,
    #[command(subcommand)]
    role: Role,
}

#[derive(Subcommand)]
enum Role {
    /// Index providers from gossip and serve the HTTP API.
    Fullnode {
        /// libp2p listen address (repeatable).
        #[arg(long, default_values_t = [
            "/ip4/0.0.0.0/tcp/4001".parse::<Multiaddr>().expect("valid"),
            "/ip4/0.0.0.0/udp/4001/quic-v1".parse::<Multiaddr>().expect("valid"),
        ])]
        listen: Vec<Multiaddr>,
        /// HTTP API address.
        #[arg(long, default_value = "127.0.0.1:8080")]
        http: SocketAddr,
        /// sqlite://FILE or postgres://USER@HOST/DB.
        #[arg(long, default_value = "sqlite:///var/lib/flowshield-market/index.db")]
        db: String,
        /// Peer to dial at start (repeatable).
        #[arg(long)]
        bootstrap: Vec<Multiaddr>,
        /// The node's key file (created 0600 if absent).
        #[arg(long, default_value = "/var/lib/flowshield-market/fullnode.key")]
        identity: PathBuf,
        /// Drop providers silent for this many seconds.
        #[arg(long, default_value_t = 30)]
        expire_secs: u64,
        /// JSON-RPC of the chain holding the DeCA registry: turns on
        /// certificate checks of providers.
        #[arg(long, requires = "deca_registry")]
        deca_rpc: Option<String>,
        /// DecaRegistry contract address.
        #[arg(long, requires = "deca_rpc")]
        deca_registry: Option<String>,
        /// Refuse providers that announce no certificate.
        #[arg(long, requires = "deca_rpc")]
        require_cert: bool,
        /// Re-check a valid certificate on chain after this many seconds.
        #[arg(long, default_value_t = 600)]
        cert_ttl_secs: u64,
        /// JSON-RPC of the chain holding the market: turns on /v1/reports.
        #[arg(long, requires = "market")]
        chain_rpc: Option<String>,
        /// BandwidthMarket contract address (EIP-712 domain, isVerifier).
        #[arg(long, requires = "chain_rpc")]
        market: Option<String>,
    },
    /// Announce an offer: signed heartbeats on gossip, presence in the DHT.
    Provider {
        /// TOML configuration (see the provider module's documentation).
        #[arg(long)]
        config: PathBuf,
        /// Peer to dial at start, besides those in the file (repeatable).
        #[arg(long)]
        bootstrap: Vec<Multiaddr>,
        /// Overrides heartbeat_secs from the file.
        #[arg(long)]
        heartbeat_secs: Option<u64>,
        /// DeCA chain.pem (leaf, then operator root) to announce to fullnodes.
        #[arg(long)]
        certificate: Option<PathBuf>,
    },
    /// Buy bandwidth: `connect` runs in the foreground, `disconnect` settles.
    Client {
        #[command(subcommand)]
        action: ClientAction,
    },
    /// Demo/test only: a local chain with the market deployed and funded
    /// key files, reachable on --listen. Runs until Ctrl-C/SIGTERM.
    DevChain {
        /// Where the chain's JSON-RPC is served (forwarded to the node).
        #[arg(long)]
        listen: SocketAddr,
        /// Directory for <name>.key files and chain.json.
        #[arg(long)]
        dir: PathBuf,
        /// Funded accounts to create (comma-separated names).
        #[arg(long, value_delimiter = ',')]
        keys: Vec<String>,
        /// Funded accounts the market owner also admits as verifiers.
        #[arg(long, value_delimiter = ',')]
        verifiers: Vec<String>,
    },
    /// Print the node's PeerId and chain address, creating the key files
    /// (mode 0600) that are absent. Never prints a private key.
    #[command(group(clap::ArgGroup::new("key_files").required(true).multiple(true)))]
    Keys {
        /// libp2p node key (a provider's `identity_file`).
        #[arg(long, group = "key_files")]
        identity: Option<PathBuf>,
        /// Chain key, hex secp256k1 (a provider's `chain.key_file`).
        #[arg(long, group = "key_files")]
        chain_key: Option<PathBuf>,
    },
    /// Print balances, claimable amounts and an order as JSON.
    ChainStatus {
        #[arg(long)]
        rpc: String,
        #[arg(long)]
        market: String,
        /// Account to report (repeatable).
        #[arg(long)]
        account: Vec<String>,
        #[arg(long)]
        order: Option<String>,
    },
}

#[derive(Subcommand)]
enum ClientAction {
    /// Find a provider, open an order, bring the tunnel up, pay as it flows.
    Connect {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        region: Option<String>,
        /// Highest price per GiB, decimal wei.
        #[arg(long)]
        max_price: Option<String>,
    },
    /// Ask the running client to disconnect; waits for settlement on chain.
    Disconnect {
        #[arg(long)]
        config: PathBuf,
        /// Seconds to wait for the answer.
        #[arg(long, default_value_t = 180)]
        timeout_secs: u64,
    },
}

async fn terminated() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

/// How often a provider gossips its certificate (fullnodes cache verdicts
/// for longer; a new fullnode hears it within this long).
const CERT_ANNOUNCE_EVERY: Duration = Duration::from_secs(60);

/// Chain-backed trust settings from the command line.
mod trust {
    use anyhow::{Context, Result};
    use flowshield_chain::alloy::primitives::Address;
    use flowshield_chain::alloy::signers::local::PrivateKeySigner;
    use flowshield_chain::MarketClient;
    use flowshield_market::fullnode::certgate::CertPolicy;
    use flowshield_market::fullnode::DecaConfig;
    use std::path::Path;
    use std::time::Duration;

    pub fn deca(rpc: &str, registry: &str, require: bool, ttl_secs: u64) -> Result<DecaConfig> {
        let address: Address = registry
            .parse()
            .with_context(|| format!("--deca-registry: '{registry}' is not a 0x address"))?;
        // Reads only: any key will do.
        let registry = flowshield_ca::registry::ChainRegistry::connect(
            rpc,
            address,
            PrivateKeySigner::random(),
        )
        .context("--deca-rpc")?;
        Ok(DecaConfig {
            registry,
            policy: CertPolicy {
                require,
                ttl: Duration::from_secs(ttl_secs.max(1)),
            },
        })
    }

    pub fn market(rpc: &str, market: &str) -> Result<MarketClient> {
        let address: Address = market
            .parse()
            .with_context(|| format!("--market: '{market}' is not a 0x address"))?;
        let provider = flowshield_chain::rpc::connect_read_only(rpc).context("--chain-rpc")?;
        Ok(MarketClient::at(address, provider))
    }

    /// A PEM chain file: the leaf, then the operator root.
    pub fn read_chain(path: &Path) -> Result<Vec<Vec<u8>>> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("--certificate {}", path.display()))?;
        let chain: Vec<Vec<u8>> = text
            .split_inclusive("-----END CERTIFICATE-----")
            .filter(|block| block.contains("-----BEGIN CERTIFICATE-----"))
            .map(flowshield_ca::authority::pem_decode)
            .collect::<Option<_>>()
            .with_context(|| format!("{}: not PEM certificates", path.display()))?;
        anyhow::ensure!(
            chain.len() == 2,
            "{}: expected 2 certificates (leaf, operator root), found {}",
            path.display(),
            chain.len()
        );
        Ok(chain)
    }
}

fn parse_addrs(texts: &[String], what: &str) -> Result<Vec<Multiaddr>> {
    texts
        .iter()
        .map(|t| {
            t.parse()
                .with_context(|| format!("{what}: '{t}' is not a multiaddr"))
        })
        .collect()
}

#[tokio::main]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    // stdout carries the client's JSON lines; logs go to stderr.
    cli.log.init()?;

    match cli.role {
        Role::Fullnode {
            listen,
            http,
            db,
            bootstrap,
            identity: key_file,
            expire_secs,
            deca_rpc,
            deca_registry,
            require_cert,
            cert_ttl_secs,
            chain_rpc,
            market,
        } => {
            let keypair = identity::load_or_create(&key_file)?;
            let mut config = FullnodeConfig::new(keypair, db);
            config.listen = listen;
            config.bootstrap = bootstrap;
            config.http = http;
            config.expire_after = Duration::from_secs(expire_secs.max(1));
            if let (Some(rpc), Some(registry)) = (deca_rpc, deca_registry) {
                config.deca = Some(trust::deca(&rpc, &registry, require_cert, cert_ttl_secs)?);
            }
            if let (Some(rpc), Some(market)) = (chain_rpc, market) {
                config.market = Some(trust::market(&rpc, &market)?);
            }
            let node = Fullnode::start(config)
                .await
                .context("starting the fullnode")?;
            for addr in node.net.listen_addrs() {
                println!("listening {addr}");
            }
            println!("http {}", node.http_addr);
            terminated().await;
            node.shutdown().await;
        }
        Role::Provider {
            config: path,
            bootstrap,
            heartbeat_secs,
            certificate,
        } => {
            let file = ProviderFile::load(&path)?;
            let keypair = identity::load_or_create(&file.identity_file)?;
            let offer = file.offer(&path, &keypair)?;
            let mut all_bootstrap = parse_addrs(&file.bootstrap, "bootstrap")?;
            all_bootstrap.extend(bootstrap);
            let listen = if file.listen.is_empty() {
                vec![
                    "/ip4/0.0.0.0/tcp/0".parse()?,
                    "/ip4/0.0.0.0/udp/0/quic-v1".parse()?,
                ]
            } else {
                parse_addrs(&file.listen, "listen")?
            };
            let keypair_for_cert = keypair.clone();
            let sessions = file
                .session_host(&path, &offer)
                .await
                .context("setting up order sessions")?;
            let config = ProviderConfig {
                keypair,
                offer: offer.clone(),
                listen,
                bootstrap: all_bootstrap,
                heartbeat_interval: Duration::from_secs(
                    heartbeat_secs.unwrap_or(file.heartbeat_secs).max(1),
                ),
                dht_refresh_every: 6,
                tunnel_subnet: file.tunnel_subnet.clone(),
                sessions: sessions.clone(),
            };
            let chain = certificate.as_deref().map(trust::read_chain).transpose()?;
            let dashboard = match &file.dashboard {
                Some(table) => {
                    let config = table.config(&path, &file, &offer, sessions, chain.clone())?;
                    Some(Dashboard::start(config).await?)
                }
                None => None,
            };
            let node = Provider::start(config)
                .await
                .context("starting the provider")?;
            if let Some(chain) = chain {
                flowshield_market::fullnode::certgate::spawn_announcer(
                    node.net.clone(),
                    keypair_for_cert,
                    chain,
                    CERT_ANNOUNCE_EVERY,
                );
            }
            for addr in node.net.listen_addrs() {
                println!("listening {addr}");
            }
            if let Some(dashboard) = &dashboard {
                println!("dashboard http://{}/", dashboard.addr());
            }
            terminated().await;
            if let Some(dashboard) = dashboard {
                dashboard.shutdown();
            }
            node.shutdown().await;
        }
        Role::Client { action } => return client_action(action).await,
        Role::DevChain {
            listen,
            dir,
            keys,
            verifiers,
        } => dev_chain(listen, dir, keys, verifiers).await?,
        Role::Keys {
            identity: key_file,
            chain_key,
        } => {
            if let Some(path) = key_file {
                let keypair = identity::load_or_create(&path)?;
                println!("peer_id {}", keypair.public().to_peer_id());
            }
            if let Some(path) = chain_key {
                let signer = flowshield_market::chain::load_or_create_key_file(&path)?;
                println!("chain_address {}", signer.address());
            }
        }
        Role::ChainStatus {
            rpc,
            market,
            account,
            order,
        } => chain_status(&rpc, &market, &account, order.as_deref()).await?,
    }
    Ok(())
}

async fn client_action(action: ClientAction) -> Result<()> {
    match action {
        ClientAction::Connect {
            config,
            region,
            max_price,
        } => {
            let file = ClientFile::load(&config)?;
            let overrides = Overrides {
                region,
                max_price_per_gib_wei: max_price,
            };
            let summary = client::run(file, overrides, terminated()).await?;
            if summary["event"] != "disconnected" {
                anyhow::bail!("disconnect failed: {summary}");
            }
        }
        ClientAction::Disconnect {
            config,
            timeout_secs,
        } => {
            let file = ClientFile::load(&config)?;
            let answer = control::request_disconnect(
                &file.control_socket(),
                Duration::from_secs(timeout_secs),
            )
            .await?;
            println!("{answer}");
            if answer["event"] != "disconnected" {
                anyhow::bail!("the client did not disconnect cleanly");
            }
        }
    }
    Ok(())
}

async fn dev_chain(
    listen: SocketAddr,
    dir: PathBuf,
    keys: Vec<String>,
    verifiers: Vec<String>,
) -> Result<()> {
    use flowshield_chain::LocalChain;
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let chain = LocalChain::start()
        .await
        .context("starting the local chain")?;
    let market = devnet::deploy(&chain, &devnet::demo_params()).await?;
    let mut accounts = devnet::funded_key_files(&chain, &dir, &keys).await?;
    let verifier_accounts = devnet::funded_key_files(&chain, &dir, &verifiers).await?;
    for (name, address) in &verifier_accounts {
        market
            .register_verifier(*address)
            .await
            .with_context(|| format!("admitting verifier {name}"))?;
    }
    accounts.extend(verifier_accounts);
    let target = devnet::url_addr(chain.rpc_url()).context("local chain URL")?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("listening on {listen}"))?;
    let _forward = devnet::forward(listener, target);
    let info = serde_json::json!({
        "rpc_url": format!("http://{listen}"),
        "market_address": market.address().to_string(),
        "chain_id": chain.chain_id(),
        "accounts": accounts.iter().map(|(n, a)| (n.clone(), a.to_string())).collect::<std::collections::BTreeMap<_, _>>(),
    });
    std::fs::write(dir.join("chain.json"), info.to_string())?;
    println!("ready {info}");
    terminated().await;
    drop(chain);
    Ok(())
}

async fn chain_status(
    rpc: &str,
    market: &str,
    accounts: &[String],
    order: Option<&str>,
) -> Result<()> {
    use flowshield_chain::alloy::primitives::Address;
    use flowshield_chain::alloy::providers::Provider as _;
    use flowshield_chain::{rpc as chain_rpc, MarketClient, OrderStatus};
    let reader = chain_rpc::connect_read_only(rpc)?;
    let market = MarketClient::at(
        market.parse::<Address>().context("--market")?,
        reader.clone(),
    );
    let mut out = serde_json::json!({"accounts": {}});
    for account in accounts {
        let address: Address = account
            .parse()
            .with_context(|| format!("--account {account}"))?;
        let balance = reader.get_balance(address).await?;
        let claimable = market.claimable(address).await?;
        out["accounts"][address.to_string()] = serde_json::json!({
            "balance_wei": balance.to_string(),
            "claimable_wei": claimable.to_string(),
        });
    }
    if let Some(order) = order {
        let id = parse_u256("order", order)?;
        let o = market.order(id).await?;
        out["order"] = serde_json::json!({
            "id": id.to_string(),
            "client": o.client.to_string(),
            "provider": o.provider.to_string(),
            "status": format!("{:?}", OrderStatus::from_u8(o.status).unwrap_or(OrderStatus::None)),
            "escrow_wei": o.escrow.to_string(),
            "redeemed_wei": o.redeemed.to_string(),
        });
    }
    println!("{out}");
    Ok(())
}
