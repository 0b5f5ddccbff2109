//! The fullnode role: listens to gossiped heartbeats, keeps the provider
//! index (SQL, written in batches) and the live offers (memory), expires
//! silent providers, admits only providers staked on chain (with a market
//! contract) and optionally by DeCA certificate, takes verifier reports
//! and serves the HTTP API.
//!
//! Two fullnodes stay in sync without talking to each other directly: both
//! subscribe to the same gossip topics and index what they verify.

pub mod api;
pub mod certgate;
pub mod chainwatch;
pub mod index;
mod ingest;
pub mod live;
pub mod matching;
pub mod metrics;
pub mod reports;
pub mod reputation;
pub mod stakegate;

use crate::fullnode::index::{IndexError, ProviderIndex, ProviderQuery};
pub use crate::fullnode::ingest::FullnodeEvent;
use crate::fullnode::ingest::{Deca, Ingest, Stake};
use crate::fullnode::live::{LiveEntry, LiveOffers, SharedLive};
use crate::fullnode::metrics::Metrics;
use crate::fullnode::reports::{ReportError, ReportService, ReportStore, VerifierRegistry};
use crate::fullnode::reputation::{ReputationBook, SharedReputation};
use crate::net::{self, NetConfig, NetError, NetHandle};
use api::{ApiLimits, ApiState};
use certgate::{CertGate, CertPolicy, GateGauges, GateLimits};
use flowshield_ca::registry::ChainRegistry;
use flowshield_chain::MarketClient;
use flowshield_proto::{Keypair, ReplayPolicy};
use libp2p::Multiaddr;
use stakegate::{StakeGate, StakeGauges, StakeLimits, StakePolicy};
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

/// Why the fullnode could not start.
#[derive(Debug, thiserror::Error)]
pub enum FullnodeError {
    #[error(transparent)]
    Net(#[from] NetError),
    #[error(transparent)]
    Index(#[from] IndexError),
    #[error("HTTP listener on {addr}: {source}")]
    Http {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error("market contract: {0}")]
    Market(#[from] flowshield_chain::ChainError),
    #[error("loading verifier reports: {0}")]
    Reports(#[from] ReportError),
}

/// DeCA admission settings: the registry on chain and the policy.
#[derive(Debug, Clone)]
pub struct DecaConfig {
    pub registry: ChainRegistry,
    pub policy: CertPolicy,
}

/// How to run a fullnode.
#[derive(Debug, Clone)]
pub struct FullnodeConfig {
    pub keypair: Keypair,
    pub listen: Vec<Multiaddr>,
    pub bootstrap: Vec<Multiaddr>,
    pub http: SocketAddr,
    /// `sqlite://FILE` or `postgres://...`.
    pub db_url: String,
    /// A provider silent this long is dropped from the index.
    pub expire_after: Duration,
    pub replay_policy: ReplayPolicy,
    /// How often accepted heartbeats are written to SQL, in one batch.
    pub flush_interval: Duration,
    /// Admit providers by DeCA certificate (off: certificates are ignored).
    pub deca: Option<DecaConfig>,
    /// The market contract: turns on stake admission (a heartbeat is
    /// indexed only if the chain vouches for its provider, see
    /// [`stakegate`]) and `/v1/reports` (its EIP-712 domain and
    /// `isVerifier`). Without it any correctly signed provider is indexed
    /// and reports are refused with 503.
    pub market: Option<MarketClient>,
    /// How long stake records are trusted (with `market`).
    pub stake_policy: StakePolicy,
    /// How much stake state is kept (with `market`).
    pub stake_limits: StakeLimits,
    /// How often the market's provider events are read (with `market`).
    pub chain_poll_interval: Duration,
    /// Per-client rate and body-size limits of the HTTP API's POSTs.
    pub api_limits: ApiLimits,
    /// How much certificate state is kept (with `deca`).
    pub cert_limits: GateLimits,
    /// Most providers kept live (in memory) at once; beyond it the least
    /// recently heard is evicted.
    pub max_live_providers: usize,
}

impl FullnodeConfig {
    pub fn new(keypair: Keypair, db_url: impl Into<String>) -> Self {
        Self {
            keypair,
            listen: Vec::new(),
            bootstrap: Vec::new(),
            http: SocketAddr::from(([127, 0, 0, 1], 0)),
            db_url: db_url.into(),
            expire_after: Duration::from_secs(30),
            replay_policy: ReplayPolicy::default(),
            flush_interval: Duration::from_millis(200),
            deca: None,
            market: None,
            stake_policy: StakePolicy::default(),
            stake_limits: StakeLimits::default(),
            chain_poll_interval: Duration::from_secs(2),
            api_limits: ApiLimits::default(),
            cert_limits: GateLimits::default(),
            max_live_providers: live::DEFAULT_MAX_LIVE,
        }
    }
}

/// A running fullnode.
pub struct Fullnode {
    pub net: NetHandle,
    pub http_addr: SocketAddr,
    pub metrics: Metrics,
    pub live: SharedLive,
    pub reputation: SharedReputation,
    events: broadcast::Sender<FullnodeEvent>,
    tasks: Vec<JoinHandle<()>>,
}

impl Fullnode {
    /// Opens the index, joins the network and starts serving HTTP.
    pub async fn start(config: FullnodeConfig) -> Result<Self, FullnodeError> {
        let index = ProviderIndex::connect(&config.db_url).await?;
        let metrics = Metrics::new()?;
        metrics.precreate(&certgate::REFUSAL_REASONS, &ReportError::RESULTS);
        for reason in stakegate::REFUSAL_REASONS {
            metrics.heartbeats.with_label_values(&[reason]);
        }
        let live = load_live(
            &index,
            config.max_live_providers,
            metrics.map_gauges("live_offers"),
        )
        .await?;
        metrics
            .providers_indexed
            .set(live.read().map(|l| l.len() as i64).unwrap_or(0));
        let store = ReportStore::new(index.clone());
        let reputation: SharedReputation = Arc::new(RwLock::new(ReputationBook::with_cap(
            reputation::DEFAULT_MAX_PROVIDERS,
            Some(metrics.map_gauges("reputation")),
        )));
        let tallies = store.tallies().await?;
        if let Ok(mut book) = reputation.write() {
            for (provider, period, passed) in tallies {
                book.record(provider, period, passed);
            }
        }
        let verifiers = match config.market.clone() {
            Some(market) => Some(
                VerifierRegistry::connect(
                    market,
                    reports::DEFAULT_MAX_VERIFIERS,
                    Some(metrics.map_gauges("verifier_cache")),
                )
                .await?,
            ),
            None => None,
        };

        let mut net_config = NetConfig::new(config.keypair.clone());
        net_config.listen = config.listen.clone();
        net_config.bootstrap = config.bootstrap.clone();
        net_config.replay_policy = config.replay_policy;
        net_config.fullnode_topics = true;
        net_config.replay_gauges = Some(metrics.map_gauges("replay_guard"));
        // A gating fullnode forwards only the heartbeats it admitted.
        net_config.defer_heartbeat_validation = config.market.is_some() || config.deca.is_some();
        let (net, net_events) = net::spawn(net_config).await?;

        let reports = verifiers.map(|registry| {
            Arc::new(ReportService {
                registry,
                store: store.clone(),
                reputation: reputation.clone(),
                metrics: metrics.clone(),
                net: net.clone(),
            })
        });
        let (listener, http_addr) =
            crate::bind_tcp(config.http)
                .await
                .map_err(|source| FullnodeError::Http {
                    addr: config.http,
                    source,
                })?;
        tracing::info!(%http_addr, peer_id = %net.peer_id(), "fullnode serving");
        let app = api::router(ApiState {
            index: index.clone(),
            metrics: metrics.clone(),
            live: live.clone(),
            reputation: reputation.clone(),
            reports: reports.clone(),
            store,
        });
        let (app, forget_clients) = api::limits::apply(
            app,
            &config.api_limits,
            Some(metrics.map_gauges("api_clients")),
        );
        // The rate limiter keys on the client's address.
        let app = app.into_make_service_with_connect_info::<SocketAddr>();
        let http = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "HTTP server stopped");
            }
        });

        let (events, _) = broadcast::channel(4096);
        let deca = config.deca.map(|deca| Deca {
            gate: CertGate::with_limits(
                deca.policy,
                config.cert_limits,
                Some(GateGauges {
                    announced: metrics.map_gauges("cert_announcements"),
                    verdicts: metrics.map_gauges("cert_verdicts"),
                    running: metrics.map_gauges("cert_checks_running"),
                }),
            ),
            registry: Arc::new(deca.registry),
        });
        let mut tasks = vec![http, forget_clients];
        let stake = match config.market.clone() {
            Some(market) => {
                let (changed_tx, changed) = tokio::sync::mpsc::channel(64);
                tasks.push(tokio::spawn(chainwatch::watch(
                    market.clone(),
                    config.chain_poll_interval,
                    config.stake_policy.lookup_timeout,
                    changed_tx,
                )));
                Some(Stake {
                    gate: StakeGate::new(
                        config.stake_policy,
                        config.stake_limits,
                        Some(StakeGauges {
                            records: metrics.map_gauges("stake_records"),
                            running: metrics.map_gauges("stake_lookups_running"),
                            queued: metrics.map_gauges("stake_lookups_queued"),
                        }),
                    ),
                    market,
                    lookup_timeout: config.stake_policy.lookup_timeout,
                    changed,
                })
            }
            None => {
                tracing::warn!(
                    "no market contract (--chain-rpc/--market): admitting providers the chain has not vouched for"
                );
                None
            }
        };
        let ingest = Ingest {
            net: net.clone(),
            index,
            live: live.clone(),
            metrics: metrics.clone(),
            events: events.clone(),
            expire_after: config.expire_after,
            flush_interval: config.flush_interval,
            stake,
            deca,
            reports,
        };
        tasks.push(tokio::spawn(ingest.run(net_events)));
        Ok(Self {
            net,
            http_addr,
            metrics,
            live,
            reputation,
            events,
            tasks,
        })
    }

    /// Observes what happens to heartbeats from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<FullnodeEvent> {
        self.events.subscribe()
    }

    /// Stops serving and leaves the network.
    pub async fn shutdown(self) {
        self.net.shutdown().await;
        for task in self.tasks {
            task.abort();
        }
    }
}

/// The live offers as the index holds them at start (expiry then drops the
/// silent ones on its first round).
async fn load_live(
    index: &ProviderIndex,
    max_live: usize,
    gauges: net::MapGauges,
) -> Result<SharedLive, IndexError> {
    let rows = index
        .query(&ProviderQuery {
            limit: u32::MAX,
            ..ProviderQuery::default()
        })
        .await?;
    let mut live = LiveOffers::with_cap(max_live, Some(gauges));
    for row in rows {
        live.upsert(LiveEntry::from(row));
    }
    Ok(Arc::new(RwLock::new(live)))
}
