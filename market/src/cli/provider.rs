//! `flowshield-market provider`: announce an offer and, with a `[chain]`
//! table, sell sessions; optionally serve the dashboard.

use super::{parse_addrs, terminated, trust};
use anyhow::{Context, Result};
use flowshield_market::identity;
use flowshield_market::provider::dashboard::exit::{AppliedEgress, ExitInput};
use flowshield_market::provider::dashboard::view::Panel;
use flowshield_market::provider::dashboard::Dashboard;
use flowshield_market::provider::egress::NetTools;
use flowshield_market::provider::{Provider, ProviderConfig, ProviderFile};
use libp2p::Multiaddr;
use std::path::PathBuf;
use std::time::Duration;

/// How often a provider gossips its certificate (fullnodes cache verdicts
/// for longer; a new fullnode hears it within this long).
const CERT_ANNOUNCE_EVERY: Duration = Duration::from_secs(60);

#[derive(clap::Args)]
pub struct ProviderArgs {
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
}

pub async fn run(args: ProviderArgs) -> Result<()> {
    let path = args.config;
    let file = ProviderFile::load(&path)?;
    let keypair = identity::load_or_create(&file.identity_file)?;
    let offer = file.offer(&path, &keypair)?;
    let mut bootstrap = parse_addrs(&file.bootstrap, "bootstrap")?;
    bootstrap.extend(args.bootstrap);
    let listen = if file.listen.is_empty() {
        vec![
            "/ip4/0.0.0.0/tcp/0".parse()?,
            "/ip4/0.0.0.0/udp/0/quic-v1".parse()?,
        ]
    } else {
        parse_addrs(&file.listen, "listen")?
    };
    let sessions = file
        .session_host(&path, &offer)
        .await
        .context("setting up order sessions")?;
    let certificate = args
        .certificate
        .as_deref()
        .map(trust::read_chain)
        .transpose()?;
    // The filter guards clients' traffic: a provider that does not sell
    // has none to guard.
    let egress = match &sessions {
        Some(_) => file.egress_policy(&path)?,
        None => None,
    };
    let sessions_on = sessions.is_some();
    let credit_limit = sessions.as_ref().map(|host| host.policy().credit_limit);
    let config = ProviderConfig {
        keypair,
        offer: offer.clone(),
        listen,
        bootstrap,
        heartbeat_interval: Duration::from_secs(
            args.heartbeat_secs.unwrap_or(file.heartbeat_secs).max(1),
        ),
        dht_refresh_every: 6,
        sessions: sessions.clone(),
        certificate: certificate.clone(),
        cert_announce_every: CERT_ANNOUNCE_EVERY,
        egress,
        net_tools: NetTools::here(),
    };
    // Checked before the provider starts (a bad table stops it), served
    // after: the exit panel shows the filter as applied (uplink found).
    let dashboard_config = match &file.dashboard {
        Some(table) => Some(table.config(
            &path,
            file.chain.as_ref(),
            &file.interface,
            &offer,
            sessions.clone(),
            certificate,
        )?),
        None => None,
    };
    let node = Provider::start(config)
        .await
        .context("starting the provider")?;
    match node.egress() {
        Some(egress) => println!("{} (uplink {})", egress.policy(), egress.uplink()),
        None if sessions_on => println!("egress filter disabled ([egress] enabled = false)"),
        None => {}
    }
    if let Some(limit) = credit_limit {
        // What a client may owe past its best voucher before forwarding
        // stops for it (checked against the data plane every 250 ms).
        println!("credit limit {limit} wei");
    }
    let dashboard = match dashboard_config {
        Some(mut dashboard_config) => {
            if let Some(host) = &sessions {
                dashboard_config.sources.exit = Panel::ok(ExitInput {
                    egress: node.egress().map(|e| AppliedEgress {
                        policy: e.policy().clone(),
                        uplink: e.uplink().to_string(),
                    }),
                    shaping: host.shaping().cloned(),
                });
            }
            match Dashboard::start(dashboard_config).await {
                Ok(dashboard) => Some(dashboard),
                Err(e) => {
                    // Leave no filter behind when refusing to run.
                    node.shutdown().await;
                    return Err(e.into());
                }
            }
        }
        None => None,
    };
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
    Ok(())
}
