//! The fullnode role: listens to gossiped heartbeats, keeps the provider
//! index, expires silent providers and serves the HTTP API.
//!
//! Two fullnodes stay in sync without talking to each other directly: both
//! subscribe to the same gossip topic and index what they verify.

use crate::api::{self, ApiState};
use crate::index::{IndexError, ProviderIndex};
use crate::metrics::Metrics;
use crate::net::{self, MarketResponse, NetConfig, NetError, NetEvent, NetHandle};
use crate::unix_ms;
use flowshield_proto::{Keypair, PeerId, ReplayPolicy};
use libp2p::Multiaddr;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};
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
        }
    }
}

/// What the fullnode did with a heartbeat (for observers such as tests).
#[derive(Debug, Clone, PartialEq)]
pub enum FullnodeEvent {
    Indexed { provider: PeerId, seq: u64 },
    Rejected { reason: &'static str },
    Expired { count: u64 },
}

/// A running fullnode.
pub struct Fullnode {
    pub net: NetHandle,
    pub http_addr: SocketAddr,
    pub metrics: Metrics,
    events: broadcast::Sender<FullnodeEvent>,
    tasks: Vec<JoinHandle<()>>,
}

impl Fullnode {
    /// Opens the index, joins the network and starts serving HTTP.
    pub async fn start(config: FullnodeConfig) -> Result<Self, FullnodeError> {
        let index = ProviderIndex::connect(&config.db_url).await?;
        let metrics = Metrics::new()?;
        metrics.providers_indexed.set(index.count().await? as i64);

        let mut net_config = NetConfig::new(config.keypair.clone());
        net_config.listen = config.listen.clone();
        net_config.bootstrap = config.bootstrap.clone();
        net_config.replay_policy = config.replay_policy;
        let (net, net_events) = net::spawn(net_config).await?;

        let listener = tokio::net::TcpListener::bind(config.http)
            .await
            .map_err(|source| FullnodeError::Http {
                addr: config.http,
                source,
            })?;
        let http_addr = listener
            .local_addr()
            .map_err(|source| FullnodeError::Http {
                addr: config.http,
                source,
            })?;
        tracing::info!(%http_addr, peer_id = %net.peer_id(), "fullnode serving");
        let app = api::router(ApiState {
            index: index.clone(),
            metrics: metrics.clone(),
        });
        let http = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "HTTP server stopped");
            }
        });

        let (events, _) = broadcast::channel(1024);
        let ingest = tokio::spawn(ingest(
            net_events,
            net.clone(),
            index,
            metrics.clone(),
            events.clone(),
            config.expire_after,
        ));
        Ok(Self {
            net,
            http_addr,
            metrics,
            events,
            tasks: vec![http, ingest],
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

async fn ingest(
    mut net_events: mpsc::Receiver<NetEvent>,
    net: NetHandle,
    index: ProviderIndex,
    metrics: Metrics,
    events: broadcast::Sender<FullnodeEvent>,
    expire_after: Duration,
) {
    let mut expiry = tokio::time::interval((expire_after / 2).max(Duration::from_millis(100)));
    loop {
        tokio::select! {
            event = net_events.recv() => {
                let Some(event) = event else { break };
                handle_event(event, &net, &index, &metrics, &events).await;
            }
            _ = expiry.tick() => {
                let cutoff = unix_ms().saturating_sub(expire_after.as_millis() as u64);
                match index.expire(cutoff).await {
                    Ok(0) => {}
                    Ok(count) => {
                        tracing::info!(count, "expired silent providers");
                        let _ = events.send(FullnodeEvent::Expired { count });
                    }
                    Err(e) => tracing::error!(error = %e, "expiring providers"),
                }
                if let Ok(count) = index.count().await {
                    metrics.providers_indexed.set(count as i64);
                }
            }
        }
    }
}

async fn handle_event(
    event: NetEvent,
    net: &NetHandle,
    index: &ProviderIndex,
    metrics: &Metrics,
    events: &broadcast::Sender<FullnodeEvent>,
) {
    match event {
        NetEvent::HeartbeatAccepted {
            heartbeat, signed, ..
        } => {
            let provider = heartbeat.offer.provider_peer_id;
            if let Err(e) = index.upsert(&heartbeat, &signed, unix_ms()).await {
                tracing::error!(%provider, error = %e, "indexing heartbeat");
                return;
            }
            metrics.heartbeats.with_label_values(&["accepted"]).inc();
            if let Ok(count) = index.count().await {
                metrics.providers_indexed.set(count as i64);
            }
            let _ = events.send(FullnodeEvent::Indexed {
                provider,
                seq: heartbeat.seq,
            });
        }
        NetEvent::HeartbeatRejected { error, .. } => {
            metrics
                .heartbeats
                .with_label_values(&[error.reason()])
                .inc();
            let _ = events.send(FullnodeEvent::Rejected {
                reason: error.reason(),
            });
        }
        NetEvent::InboundRequest { channel, .. } => {
            let response = MarketResponse::Error("a fullnode answers over HTTP".into());
            let _ = net.respond(channel, response).await;
        }
        NetEvent::PeerSubscribed { .. } | NetEvent::Connected { .. } => {}
    }
}
