//! The provider role (so far): announce an offer. Every heartbeat interval
//! it signs and gossips a heartbeat, and every few heartbeats it refreshes
//! its DHT presence (provider record for its region, latest heartbeat under
//! its PeerId) so clients can find it with no fullnode.
//!
//! Sequence numbers are `max(last + 1, now in ms)`, so they keep growing
//! across restarts without any state on disk.
//!
//! Not yet here: accepting orders, handing out tunnel addresses
//! ([`crate::pool`]) and pushing peers to the data plane
//! ([`crate::dataplane`]), redeeming vouchers.

use crate::net::{self, MarketRequest, MarketResponse, NetConfig, NetError, NetEvent, NetHandle};
use crate::pool::{PoolError, TunnelAddressPool};
use crate::unix_ms;
use flowshield_proto::offer::u128_text;
use flowshield_proto::{
    ChainAddress, Heartbeat, Keypair, Offer, ProtoError, Region, SignedMessage, WgPublicKey,
};
use libp2p::Multiaddr;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinHandle;

/// Why the provider could not start.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error("{path}: {reason}")]
    Config { path: PathBuf, reason: String },
    #[error("{path}: {field}: {reason}")]
    ConfigField {
        path: PathBuf,
        field: &'static str,
        reason: String,
    },
    #[error(transparent)]
    Net(#[from] NetError),
    #[error(transparent)]
    Proto(#[from] ProtoError),
    #[error(transparent)]
    Pool(#[from] PoolError),
}

/// The provider's configuration file (TOML).
///
/// ```toml
/// identity_file = "/var/lib/flowshield-market/provider.key"
/// listen = ["/ip4/0.0.0.0/tcp/4001", "/ip4/0.0.0.0/udp/4001/quic-v1"]
/// bootstrap = ["/ip4/203.0.113.5/tcp/4001/p2p/12D3Koo..."]
/// heartbeat_secs = 5
/// interface = "flowshield0"
/// tunnel_subnet = "10.77.0.0/16"
///
/// [offer]
/// region = "eu-west"
/// price_per_gib_wei = "1000000000000000"
/// price_per_hour_wei = "0"
/// capacity_mbps = 500
/// max_clients = 50
/// wg_public_key = "base64 of the data plane's public key"
/// endpoint = "203.0.113.7:51820"
/// chain_address = "0x..."
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderFile {
    pub identity_file: PathBuf,
    #[serde(default)]
    pub listen: Vec<String>,
    #[serde(default)]
    pub bootstrap: Vec<String>,
    #[serde(default = "default_heartbeat_secs")]
    pub heartbeat_secs: u64,
    #[serde(default = "default_interface")]
    pub interface: String,
    pub tunnel_subnet: String,
    pub offer: OfferFile,
}

fn default_heartbeat_secs() -> u64 {
    5
}

fn default_interface() -> String {
    "flowshield0".into()
}

/// The `[offer]` table; prices are decimal strings of wei.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OfferFile {
    pub region: String,
    pub price_per_gib_wei: String,
    pub price_per_hour_wei: String,
    pub capacity_mbps: u32,
    pub max_clients: u32,
    pub wg_public_key: String,
    pub endpoint: String,
    pub chain_address: String,
}

impl ProviderFile {
    pub fn load(path: &Path) -> Result<Self, ProviderError> {
        let text = std::fs::read_to_string(path).map_err(|e| ProviderError::Config {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        toml::from_str(&text).map_err(|e| ProviderError::Config {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
    }

    /// The offer this file describes, for the provider with `keypair`.
    pub fn offer(&self, path: &Path, keypair: &Keypair) -> Result<Offer, ProviderError> {
        let field = |field: &'static str, reason: String| ProviderError::ConfigField {
            path: path.to_path_buf(),
            field,
            reason,
        };
        let o = &self.offer;
        let offer = Offer {
            provider_peer_id: keypair.public().to_peer_id(),
            chain_address: o
                .chain_address
                .parse::<ChainAddress>()
                .map_err(|e| field("offer.chain_address", e.to_string()))?,
            wg_public_key: o
                .wg_public_key
                .parse::<WgPublicKey>()
                .map_err(|e| field("offer.wg_public_key", e.to_string()))?,
            endpoint: o
                .endpoint
                .parse::<SocketAddr>()
                .map_err(|e| field("offer.endpoint", e.to_string()))?,
            region: Region::new(&o.region).map_err(|e| field("offer.region", e.to_string()))?,
            price_per_gib_wei: u128_text::parse(&o.price_per_gib_wei)
                .map_err(|e| field("offer.price_per_gib_wei", e))?,
            price_per_hour_wei: u128_text::parse(&o.price_per_hour_wei)
                .map_err(|e| field("offer.price_per_hour_wei", e))?,
            capacity_mbps: o.capacity_mbps,
            max_clients: o.max_clients,
        };
        offer
            .validate()
            .map_err(|e| field("offer", e.to_string()))?;
        if self.heartbeat_secs == 0 {
            return Err(field("heartbeat_secs", "must be at least 1".into()));
        }
        Ok(offer)
    }
}

/// How to run a provider (already parsed and validated).
#[derive(Debug, Clone)]
pub struct ProviderConfig {
    pub keypair: Keypair,
    pub offer: Offer,
    pub listen: Vec<Multiaddr>,
    pub bootstrap: Vec<Multiaddr>,
    pub heartbeat_interval: Duration,
    /// Refresh DHT presence every this many heartbeats (the first
    /// heartbeat always does).
    pub dht_refresh_every: u32,
    pub tunnel_subnet: String,
}

/// What the provider did (for observers such as tests).
#[derive(Debug, Clone, PartialEq)]
pub enum ProviderEvent {
    /// A heartbeat went out on gossip.
    Published { seq: u64 },
    /// No peer listens yet; the heartbeat was dropped.
    Unheard { seq: u64 },
}

/// A running provider.
pub struct Provider {
    pub net: NetHandle,
    pub pool: TunnelAddressPool,
    events: broadcast::Sender<ProviderEvent>,
    task: JoinHandle<()>,
}

impl Provider {
    pub async fn start(config: ProviderConfig) -> Result<Self, ProviderError> {
        if config.offer.provider_peer_id != config.keypair.public().to_peer_id() {
            return Err(ProtoError::WrongSigner {
                expected: config.offer.provider_peer_id.to_base58(),
                got: config.keypair.public().to_peer_id().to_base58(),
            }
            .into());
        }
        config.offer.validate()?;
        let pool = TunnelAddressPool::new(&config.tunnel_subnet)?;
        let mut net_config = NetConfig::new(config.keypair.clone());
        net_config.listen = config.listen.clone();
        net_config.bootstrap = config.bootstrap.clone();
        let (net, net_events) = net::spawn(net_config).await?;
        tracing::info!(peer_id = %net.peer_id(), region = %config.offer.region, "provider started");
        let (events, _) = broadcast::channel(256);
        let task = tokio::spawn(run(config, net.clone(), net_events, events.clone()));
        Ok(Self {
            net,
            pool,
            events,
            task,
        })
    }

    pub fn subscribe(&self) -> broadcast::Receiver<ProviderEvent> {
        self.events.subscribe()
    }

    pub async fn shutdown(self) {
        self.task.abort();
        self.net.shutdown().await;
    }
}

async fn run(
    config: ProviderConfig,
    net: NetHandle,
    mut net_events: mpsc::Receiver<NetEvent>,
    events: broadcast::Sender<ProviderEvent>,
) {
    let mut ticker = tokio::time::interval(config.heartbeat_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut seq = 0u64;
    let mut ticks = 0u32;
    let mut latest: Option<SignedMessage<Heartbeat>> = None;
    loop {
        tokio::select! {
            _ = ticker.tick() => {
                seq = (seq + 1).max(unix_ms());
                let heartbeat = Heartbeat { offer: config.offer.clone(), seq, timestamp_ms: unix_ms() };
                let signed = match SignedMessage::sign(&heartbeat, &config.keypair) {
                    Ok(signed) => signed,
                    Err(e) => {
                        tracing::error!(error = %e, "cannot sign heartbeat");
                        continue;
                    }
                };
                let event = match net.publish_heartbeat(&signed).await {
                    Ok(()) => ProviderEvent::Published { seq },
                    Err(e) => {
                        tracing::debug!(error = %e, seq, "heartbeat not published");
                        ProviderEvent::Unheard { seq }
                    }
                };
                if ticks % config.dht_refresh_every.max(1) == 0 {
                    // DHT queries can take seconds; do not hold up heartbeats.
                    let net = net.clone();
                    let region = config.offer.region.clone();
                    let record = signed.clone();
                    tokio::spawn(async move {
                        if let Err(e) = net.start_providing(region).await {
                            tracing::warn!(error = %e, "DHT provider announcement failed");
                        }
                        if let Err(e) = net.put_heartbeat(record).await {
                            tracing::warn!(error = %e, "DHT heartbeat record failed");
                        }
                    });
                }
                ticks = ticks.wrapping_add(1);
                latest = Some(signed);
                let _ = events.send(event);
            }
            event = net_events.recv() => {
                let Some(event) = event else { break };
                if let NetEvent::InboundRequest { peer, request, channel } = event {
                    let response = match (request, &latest) {
                        (MarketRequest::GetHeartbeat, Some(signed)) => MarketResponse::Heartbeat(
                            String::from_utf8_lossy(&signed.to_bytes()).into_owned(),
                        ),
                        (MarketRequest::GetHeartbeat, None) => {
                            MarketResponse::Error("no heartbeat yet".into())
                        }
                    };
                    tracing::debug!(%peer, "answered heartbeat request");
                    let _ = net.respond(channel, response).await;
                }
            }
        }
    }
}
