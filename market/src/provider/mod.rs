//! The provider role: announce an offer and serve order sessions. Every heartbeat interval
//! it signs and gossips a heartbeat, and every few heartbeats it refreshes
//! its DHT presence (provider record for its region, latest heartbeat under
//! its PeerId) so clients can find it with no fullnode.
//!
//! Sequence numbers are `max(last + 1, now in ms)`, so they keep growing
//! across restarts without any state on disk.
//!
//! With a `[chain]` table the provider also sells: it registers on chain
//! (stake) if needed and answers session requests through
//! [`crate::provider::host::SessionHost`] — accept the order, allocate a
//! tunnel address ([`crate::session::pool`]), push the client's peer to the data
//! plane ([`crate::dataplane`]), redeem vouchers, settle and remove the peer.

pub mod dashboard;
pub mod host;
pub mod offer_keys;

use crate::chain::{ChainFile, ChainSetupError};
use crate::dataplane::DataPlane;
use crate::net::{self, MarketRequest, MarketResponse, NetConfig, NetError, NetEvent, NetHandle};
use crate::provider::host::{HostConfig, SessionHost};
use crate::provider::offer_keys;
use crate::session::pool::{PoolError, TunnelAddressPool};
use crate::session::pricing::Prices;
use crate::session::table::{SessionError, SessionPolicy};
use crate::unix_ms;
use crate::wire::session::{parse_u256, SessionResponse};
use flowshield_chain::alloy::primitives::{B256, U256};
use flowshield_chain::ProviderTerms;
use flowshield_proto::offer::u128_text;
use flowshield_proto::{Heartbeat, Keypair, Offer, ProtoError, Region, SignedMessage};
use libp2p::Multiaddr;
use serde::Deserialize;
use sha2::Digest;
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
    #[error(transparent)]
    Chain(#[from] ChainSetupError),
    #[error("registering on chain: {0}")]
    Register(String),
    #[error("sessions: {0}")]
    Session(#[from] SessionError),
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
/// endpoint = "203.0.113.7:51820"
/// wg_public_key = "base64..."      # optional: default, the data plane's (UAPI get)
/// chain_address = "0x..."          # optional with [chain]: default, chain.key_file's
///
/// [chain]                             # optional: sell (see crate::chain)
/// rpc_url = "http://10.250.0.1:8545"
/// market_address = "0x..."
/// key_file = "/var/lib/flowshield-market/chain.key"
///
/// [session]                           # optional, defaults shown
/// client_allowed_ips = []             # routes behind the provider, e.g. ["198.18.99.0/24"]
/// min_escrow_wei = "0"
/// stake_wei = "1000000000000000000"   # staked at start if not yet registered
/// keepalive_secs = 25
/// idle_timeout_secs = 30              # no voucher this long: settle, remove the peer
/// redeem_threshold_wei = "1000000000000000"
/// redeem_interval_secs = 60
///
/// [dashboard]                         # optional: the web dashboard (see crate::provider::dashboard)
/// listen = "127.0.0.1:8090"           # GET / (page), GET /api/status (JSON)
/// fullnode_url = "http://10.250.0.1:8080"   # optional: reputation from this fullnode
/// deca_registry = "0x..."             # optional: certificate status on chain (via chain.rpc_url)
/// refresh_secs = 5                    # page reload interval; 0: never
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
    pub chain: Option<ChainFile>,
    #[serde(default)]
    pub session: SessionFile,
    pub dashboard: Option<crate::provider::dashboard::DashboardFile>,
}

/// The `[session]` table (see [`ProviderFile`]).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionFile {
    pub client_allowed_ips: Vec<String>,
    pub min_escrow_wei: String,
    pub stake_wei: String,
    pub keepalive_secs: u16,
    pub idle_timeout_secs: u64,
    pub redeem_threshold_wei: String,
    pub redeem_interval_secs: u64,
}

impl Default for SessionFile {
    fn default() -> Self {
        Self {
            client_allowed_ips: Vec::new(),
            min_escrow_wei: "0".into(),
            stake_wei: "1000000000000000000".into(),
            keepalive_secs: 25,
            idle_timeout_secs: 30,
            redeem_threshold_wei: "1000000000000000".into(),
            redeem_interval_secs: 60,
        }
    }
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
    /// Omitted: derived from the data plane ([`crate::provider::offer_keys`]).
    #[serde(default)]
    pub wg_public_key: Option<String>,
    pub endpoint: String,
    /// Omitted: `chain.key_file`'s address ([`crate::provider::offer_keys`]).
    #[serde(default)]
    pub chain_address: Option<String>,
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
    /// Keys the file omits are looked up: the WireGuard key from the data
    /// plane over its UAPI socket (a short blocking call), the chain address
    /// from `chain.key_file` (see [`crate::provider::offer_keys`]).
    pub fn offer(&self, path: &Path, keypair: &Keypair) -> Result<Offer, ProviderError> {
        let field = |field: &'static str, reason: String| ProviderError::ConfigField {
            path: path.to_path_buf(),
            field,
            reason,
        };
        let o = &self.offer;
        let offer = Offer {
            provider_peer_id: keypair.public().to_peer_id(),
            chain_address: offer_keys::chain_address(
                o.chain_address.as_deref(),
                self.chain.as_ref(),
            )
            .map_err(|e| field("offer.chain_address", e))?,
            wg_public_key: offer_keys::wg_public_key(
                o.wg_public_key.as_deref(),
                &self.interface,
                flowshield_tunnel::uapi::client::get,
            )
            .map_err(|e| field("offer.wg_public_key", e))?,
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

impl ProviderFile {
    /// With a `[chain]` table: registers on chain if needed and returns the
    /// session host; without, `None` (the provider only announces).
    pub async fn session_host(
        &self,
        path: &Path,
        offer: &Offer,
    ) -> Result<Option<SessionHost>, ProviderError> {
        let Some(chain) = &self.chain else {
            return Ok(None);
        };
        let field = |field: &'static str, reason: String| ProviderError::ConfigField {
            path: path.to_path_buf(),
            field,
            reason,
        };
        let wei = |name: &'static str, text: &str| {
            parse_u256(name, text).map_err(|e| field(name, e.to_string()))
        };
        let s = &self.session;
        for cidr in &s.client_allowed_ips {
            flowshield_tunnel::uapi::set::parse_cidr(cidr)
                .map_err(|e| field("session.client_allowed_ips", e))?;
        }
        let (signer, market) = chain.connect()?;
        if signer.address().0 .0 != offer.chain_address.0 {
            return Err(field(
                "offer.chain_address",
                format!("differs from chain.key_file's address {}", signer.address()),
            ));
        }
        let prices = Prices {
            per_gib: U256::from(offer.price_per_gib_wei),
            per_hour: U256::from(offer.price_per_hour_wei),
        };
        let record = market
            .provider_record(signer.address())
            .await
            .map_err(|e| ProviderError::Register(e.to_string()))?;
        if !record.registered {
            let offer_json = serde_json::to_vec(offer).unwrap_or_default();
            let terms = ProviderTerms {
                price_per_gib: prices.per_gib,
                price_per_hour: prices.per_hour,
                metadata_hash: B256::from_slice(&sha2::Sha256::digest(&offer_json)),
                wg_public_key: offer.wg_public_key.0,
            };
            market
                .register(wei("session.stake_wei", &s.stake_wei)?, &terms)
                .await
                .map_err(|e| ProviderError::Register(e.to_string()))?;
            tracing::info!(address = %signer.address(), "registered on chain");
        }
        let policy = SessionPolicy {
            me: signer.address(),
            min_escrow: wei("session.min_escrow_wei", &s.min_escrow_wei)?,
            prices,
            idle_timeout_ms: s.idle_timeout_secs.max(1) * 1000,
            redeem_threshold: wei("session.redeem_threshold_wei", &s.redeem_threshold_wei)?,
            redeem_interval_ms: s.redeem_interval_secs.max(1) * 1000,
        };
        let host = SessionHost::new(HostConfig {
            peer_id: offer.provider_peer_id,
            market,
            dataplane: DataPlane::new(&self.interface),
            tunnel_subnet: self.tunnel_subnet.clone(),
            provider_wg_public_key: offer.wg_public_key,
            endpoint: offer.endpoint.to_string(),
            client_allowed_ips: s.client_allowed_ips.clone(),
            keepalive_secs: s.keepalive_secs,
            policy,
        })
        .await?;
        Ok(Some(host))
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
    /// Sells bandwidth when set (see [`ProviderFile::session_host`]).
    pub sessions: Option<SessionHost>,
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
    ticker: Option<JoinHandle<()>>,
}

/// How often the session host looks for sessions to end.
const SESSION_TICK: Duration = Duration::from_secs(1);

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
        let ticker = config.sessions.clone().map(|host| {
            tokio::spawn(async move {
                let mut every = tokio::time::interval(SESSION_TICK);
                loop {
                    every.tick().await;
                    host.tick().await;
                }
            })
        });
        let task = tokio::spawn(run(config, net.clone(), net_events, events.clone()));
        Ok(Self {
            net,
            pool,
            events,
            task,
            ticker,
        })
    }

    pub fn subscribe(&self) -> broadcast::Receiver<ProviderEvent> {
        self.events.subscribe()
    }

    pub async fn shutdown(self) {
        self.task.abort();
        if let Some(ticker) = self.ticker {
            ticker.abort();
        }
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
                    if let MarketRequest::Session(session) = request {
                        let net = net.clone();
                        let host = config.sessions.clone();
                        tokio::spawn(async move {
                            let response = match host {
                                Some(host) => host.handle(peer, session).await,
                                None => SessionResponse::Rejected {
                                    kind: "not_selling".into(),
                                    error: "this provider has no [chain] configuration".into(),
                                },
                            };
                            let _ = net.respond(channel, MarketResponse::Session(response)).await;
                        });
                        continue;
                    }
                    let response = match (request, &latest) {
                        (MarketRequest::GetHeartbeat, Some(signed)) => MarketResponse::Heartbeat(
                            String::from_utf8_lossy(&signed.to_bytes()).into_owned(),
                        ),
                        (MarketRequest::GetHeartbeat, None) => {
                            MarketResponse::Error("no heartbeat yet".into())
                        }
                        (MarketRequest::Session(_), _) => continue,
                    };
                    tracing::debug!(%peer, "answered heartbeat request");
                    let _ = net.respond(channel, response).await;
                }
            }
        }
    }
}
