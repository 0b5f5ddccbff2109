//! The provider role: announce an offer and serve order sessions. Every
//! heartbeat interval it signs and gossips a heartbeat, and every few
//! heartbeats it refreshes its DHT presence (provider record for its
//! region, latest heartbeat under its PeerId) so clients can find it with
//! no fullnode ([`announce`]).
//!
//! - [`config`]: the configuration file, raw TOML → validated offer;
//! - [`register`]: registration on chain and the session host;
//! - [`host`]: the session driver; [`offer_keys`]: keys the file omits;
//! - [`store`]: the durable session state (SQLite or Postgres), and
//!   [`recover`]: reconciling it with the chain and the data plane at start;
//! - [`dashboard`]: the operator's web page;
//! - [`egress`]: the nftables filter on what clients reach through this host;
//! - [`shaping`]: per-client rate limits (tc) at the offer's capacity.
//!
//! With a `[chain]` table the provider also sells: it registers on chain
//! (stake) if needed and answers session requests through
//! [`crate::provider::host::SessionHost`] — accept the order, allocate a
//! tunnel address ([`crate::session::pool`]), push the client's peer to the data
//! plane ([`crate::dataplane`]), redeem vouchers, settle and remove the peer.

mod announce;
mod config;
pub mod dashboard;
pub mod egress;
mod error;
pub mod host;
pub mod offer_keys;
pub mod recover;
mod register;
pub mod shaping;
pub mod store;

pub use config::{OfferFile, ProviderFile, SessionFile};
pub use error::ProviderError;

use crate::net::{self, MarketRequest, MarketResponse, NetConfig, NetEvent, NetHandle};
use crate::unix_ms;
use crate::wire::raw::RawSessionResponse;
use crate::wire::session::{RejectKind, SessionResponse};
use flowshield_proto::{Heartbeat, Keypair, Offer, ProtoError, SignedMessage};
use host::SessionHost;
use libp2p::Multiaddr;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};
use tokio::task::{JoinHandle, JoinSet};

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
    /// Sells bandwidth when set (see [`ProviderFile::session_host`]).
    pub sessions: Option<SessionHost>,
    /// The DeCA certificate chain (leaf, operator root) to gossip to
    /// fullnodes, every `cert_announce_every`.
    pub certificate: Option<Vec<Vec<u8>>>,
    pub cert_announce_every: Duration,
    /// The egress filter, applied at start and removed at shutdown
    /// (`None`: none, as `[egress] enabled = false` gives).
    pub egress: Option<egress::EgressPolicy>,
    /// Where `nft` (and `tc`) act: this namespace unless the data plane is
    /// in another one.
    pub net_tools: egress::NetTools,
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
    events: broadcast::Sender<ProviderEvent>,
    /// The heartbeat and request loop, the session ticker, the certificate
    /// announcer: all stopped by [`Provider::shutdown`].
    tasks: Vec<JoinHandle<()>>,
    /// The applied egress filter, removed by [`Provider::shutdown`].
    egress: Option<egress::Egress>,
    /// Sessions, whose peers [`Provider::shutdown`] takes off the data
    /// plane.
    sessions: Option<SessionHost>,
}

/// How often the session host weighs each session's traffic against its
/// vouchers (credit limit; one UAPI `get`)...
const CREDIT_TICK: Duration = Duration::from_millis(250);
/// ...and every how many of those it looks for sessions to end (chain reads).
const SESSION_TICK_EVERY: u32 = 4;

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
        // Before any client can be served: the filter goes up first.
        let egress = match config.egress.clone() {
            Some(policy) => Some(egress::Egress::apply(policy, config.net_tools.clone())?),
            None if config.sessions.is_some() => {
                tracing::warn!(
                    "egress filter disabled: clients reach everything this host reaches"
                );
                None
            }
            None => None,
        };
        let mut net_config = NetConfig::new(config.keypair.clone());
        net_config.listen = config.listen.clone();
        net_config.bootstrap = config.bootstrap.clone();
        let (net, net_events) = match net::spawn(net_config).await {
            Ok(spawned) => spawned,
            Err(e) => {
                if let Some(egress) = &egress {
                    let _ = egress.remove();
                }
                return Err(e.into());
            }
        };
        tracing::info!(peer_id = %net.peer_id(), region = %config.offer.region, "provider started");
        let (events, _) = broadcast::channel(256);
        let mut tasks = Vec::new();
        if let Some(host) = config.sessions.clone() {
            tasks.push(tokio::spawn(async move {
                let mut every = tokio::time::interval(CREDIT_TICK);
                every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                let mut n = 0u32;
                loop {
                    every.tick().await;
                    host.enforce_credit().await;
                    if n % SESSION_TICK_EVERY == 0 {
                        host.tick().await;
                    }
                    n = n.wrapping_add(1);
                }
            }));
        }
        if let Some(chain) = config.certificate.clone() {
            tasks.push(tokio::spawn(announce::certificate(
                net.clone(),
                config.keypair.clone(),
                chain,
                config.cert_announce_every,
            )));
        }
        let sessions = config.sessions.clone();
        tasks.push(tokio::spawn(run(
            config,
            net.clone(),
            net_events,
            events.clone(),
        )));
        Ok(Self {
            net,
            events,
            tasks,
            egress,
            sessions,
        })
    }

    /// The egress filter in force, if any (for the log and the dashboard).
    pub fn egress(&self) -> Option<&egress::Egress> {
        self.egress.as_ref()
    }

    pub fn subscribe(&self) -> broadcast::Receiver<ProviderEvent> {
        self.events.subscribe()
    }

    /// Stops: no more requests or credit checks, clients' peers off the
    /// data plane ([`SessionHost::park`]), the network, then the egress
    /// filter — in that order, so no client is forwarded unfiltered.
    pub async fn shutdown(self) {
        for task in &self.tasks {
            task.abort();
        }
        for task in self.tasks {
            // Cancelled at its next await: no request is half served below.
            let _ = task.await;
        }
        if let Some(host) = &self.sessions {
            host.park().await;
        }
        self.net.shutdown().await;
        if let Some(egress) = &self.egress {
            if let Err(e) = egress.remove() {
                tracing::error!(error = %e, "cannot remove the egress filter");
            }
        }
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
    let mut heartbeats =
        announce::HeartbeatSigner::new(config.offer.clone(), config.keypair.clone());
    let mut ticks = 0u32;
    let mut latest: Option<SignedMessage<Heartbeat>> = None;
    // DHT refreshes and session requests run beside the loop; owned here,
    // so they stop with it.
    let mut children = JoinSet::new();
    loop {
        tokio::select! {
            _ = ticker.tick() => {
                let (seq, signed) = match heartbeats.next(unix_ms()) {
                    Ok(next) => next,
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
                    let offer = config.offer.clone();
                    let record = signed.clone();
                    children.spawn(async move { announce::refresh_dht(net, &offer, record).await });
                }
                ticks = ticks.wrapping_add(1);
                latest = Some(signed);
                let _ = events.send(event);
            }
            Some(_) = children.join_next(), if !children.is_empty() => {}
            event = net_events.recv() => {
                let Some(event) = event else { break };
                if let NetEvent::InboundRequest { peer, request, channel } = event {
                    if let MarketRequest::Session(session) = request {
                        let net = net.clone();
                        let host = config.sessions.clone();
                        children.spawn(async move {
                            let response = match host {
                                Some(host) => host.handle_raw(peer, &session).await,
                                None => SessionResponse::Rejected {
                                    kind: RejectKind::NotSelling,
                                    error: "this provider has no [chain] configuration".into(),
                                },
                            };
                            let response = match RawSessionResponse::encode(&response) {
                                Ok(raw) => MarketResponse::Session(raw),
                                Err(e) => MarketResponse::Error(e.to_string()),
                            };
                            let _ = net.respond(channel, response).await;
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
