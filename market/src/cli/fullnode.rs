//! `flowshield-market fullnode`: index providers from gossip and serve the
//! HTTP API.

use super::{terminated, trust};
use anyhow::{Context, Result};
use flowshield_chain::Deployment;
use flowshield_market::fullnode::api::ApiLimits;
use flowshield_market::fullnode::certgate::GateLimits;
use flowshield_market::fullnode::live;
use flowshield_market::fullnode::{Fullnode, FullnodeConfig};
use flowshield_market::identity;
use libp2p::Multiaddr;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(clap::Args)]
pub struct FullnodeArgs {
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
    /// certificate checks of providers (with --deca-registry or --deployment).
    #[arg(long)]
    deca_rpc: Option<String>,
    /// DecaRegistry contract address.
    #[arg(long, requires = "deca_rpc", conflicts_with = "deployment")]
    deca_registry: Option<String>,
    /// Deployment manifest (`flowshield-market deploy`): the market and DeCA
    /// registry addresses, checked against the chain of --chain-rpc/--deca-rpc
    /// (chain id, contract code) instead of --market/--deca-registry.
    #[arg(long)]
    deployment: Option<PathBuf>,
    /// Refuse providers that announce no certificate.
    #[arg(long, requires = "deca_rpc")]
    require_cert: bool,
    /// Re-check a valid certificate on chain after this many seconds.
    #[arg(long, default_value_t = 600)]
    cert_ttl_secs: u64,
    /// JSON-RPC of the chain holding the market: turns on stake admission
    /// (only providers registered and staked there, with the PeerId and
    /// WireGuard key they registered, are indexed) and /v1/reports.
    /// Without it every correctly signed provider is indexed.
    #[arg(long)]
    chain_rpc: Option<String>,
    /// BandwidthMarket contract address (stakes, EIP-712 domain, isVerifier).
    #[arg(long, requires = "chain_rpc", conflicts_with = "deployment")]
    market: Option<String>,
    /// Sustained POST requests per second per client address (IPv6: /64).
    #[arg(long, default_value_t = ApiLimits::default().per_second)]
    api_rate: u32,
    /// POST requests a client may send at once before the rate applies.
    #[arg(long, default_value_t = ApiLimits::default().burst)]
    api_burst: u32,
    /// Largest HTTP request body in bytes.
    #[arg(long, default_value_t = ApiLimits::default().max_body_bytes)]
    api_max_body: usize,
    /// Most providers tracked by the replay guard, the certificate gate and
    /// the stake gate (each); beyond it the least recently heard is evicted.
    #[arg(long, default_value_t = GateLimits::default().max_providers)]
    max_tracked_peers: usize,
    /// Most providers kept live (matchable) at once; beyond it the least
    /// recently heard is evicted until its next heartbeat.
    #[arg(long, default_value_t = live::DEFAULT_MAX_LIVE)]
    max_live_providers: usize,
    /// Runtime threads. Ingest (gossip, checks, index) is one pipeline,
    /// and a second thread mostly adds a cross-thread wakeup per message:
    /// at 2000 heartbeats/s one thread used 33 % of a core against 40 %
    /// for two, match latency unchanged. Raise it for heavy API traffic.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
    threads: u16,
}

impl FullnodeArgs {
    /// Worker threads for the fullnode's runtime (`--threads`).
    pub fn runtime_threads(&self) -> usize {
        usize::from(self.threads)
    }
}

pub async fn run(args: FullnodeArgs) -> Result<()> {
    let keypair = identity::load_or_create(&args.identity)?;
    let mut config = FullnodeConfig::new(keypair, args.db);
    config.listen = args.listen;
    config.bootstrap = args.bootstrap;
    config.http = args.http;
    config.expire_after = Duration::from_secs(args.expire_secs.max(1));
    config.api_limits = ApiLimits {
        per_second: args.api_rate.max(1),
        burst: args.api_burst.max(1),
        max_body_bytes: args.api_max_body,
    };
    config.replay_policy.max_tracked = args.max_tracked_peers.max(1);
    config.cert_limits.max_providers = args.max_tracked_peers.max(1);
    config.max_live_providers = args.max_live_providers.max(1);
    config.stake_limits.max_providers = args.max_tracked_peers.max(1);
    let manifest = args
        .deployment
        .as_deref()
        .map(Deployment::load)
        .transpose()
        .context("--deployment")?;
    anyhow::ensure!(
        manifest.is_none() || args.chain_rpc.is_some() || args.deca_rpc.is_some(),
        "--deployment needs --chain-rpc and/or --deca-rpc"
    );
    if let Some(rpc) = args.deca_rpc {
        let registry = match (&args.deca_registry, &manifest) {
            (Some(text), _) => text.clone(),
            (None, Some(m)) => {
                trust::check_deployment(m, &rpc)
                    .await
                    .context("--deca-rpc")?;
                m.contracts.deca_registry.address.to_string()
            }
            (None, None) => anyhow::bail!("--deca-rpc needs --deca-registry or --deployment"),
        };
        config.deca = Some(trust::deca(
            &rpc,
            &registry,
            args.require_cert,
            args.cert_ttl_secs,
        )?);
    }
    if let Some(rpc) = args.chain_rpc {
        let market = match (&args.market, &manifest) {
            (Some(text), _) => text.clone(),
            (None, Some(m)) => {
                trust::check_deployment(m, &rpc)
                    .await
                    .context("--chain-rpc")?;
                m.contracts.market.address.to_string()
            }
            (None, None) => anyhow::bail!("--chain-rpc needs --market or --deployment"),
        };
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
    Ok(())
}
