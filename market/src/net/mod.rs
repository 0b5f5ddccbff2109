//! The market's libp2p network: one swarm per process, driven by a tokio
//! task, used through a [`NetHandle`] (commands) and a stream of
//! [`NetEvent`]s.
//!
//! - **gossipsub** on [`HEARTBEAT_TOPIC`] carries signed heartbeats. Gossip's
//!   own message signing is on (strict mode), but what counts is the
//!   provider's signature inside the payload: every node validates each
//!   message with `flowshield-proto` (signature, signer, replay, staleness)
//!   before gossip forwards it, so forged messages die at the first hop.
//! - **Kademlia** lets providers be found without a fullnode: a provider
//!   announces itself under [`region_key`] and stores its latest signed
//!   heartbeat under [`heartbeat_record_key`]. Incoming records are verified
//!   before they are stored.
//! - **request-response** (JSON, `/flowshield/market/1`) for direct calls.
//! - gossip **peer scoring** is on: a peer that relays messages we refuse
//!   (forged, malformed) loses score until it is graylisted
//!   ([`GRAYLIST_THRESHOLD`]) and everything it gossips is ignored.
//! - **identify** tells peers our listen addresses, which feed Kademlia.
//! - transports: TCP (noise + yamux) and QUIC.

mod behaviour;
mod driver;

pub use crate::wire::request::{MarketRequest, MarketResponse};
use behaviour::build_swarm;
pub use behaviour::{
    heartbeat_record_key, region_key, CERT_TOPIC, GRAYLIST_THRESHOLD, HEARTBEAT_TOPIC,
    MARKET_PROTOCOL, REPORT_TOPIC,
};

use flowshield_proto::{
    CertAnnouncement, Heartbeat, Keypair, PeerId, ProtoError, Region, ReplayPolicy, SignedMessage,
};
use libp2p::gossipsub::{MessageAcceptance, MessageId};
use libp2p::request_response::ResponseChannel;
use libp2p::Multiaddr;
use std::collections::HashSet;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Why a network operation failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum NetError {
    #[error("cannot listen on {addr}: {reason}")]
    Listen { addr: String, reason: String },
    #[error("cannot dial {addr}: {reason}")]
    Dial { addr: String, reason: String },
    #[error("building the libp2p swarm: {0}")]
    Setup(String),
    #[error("publishing a heartbeat: {0}")]
    Publish(String),
    #[error("DHT {what}: {reason}")]
    Dht { what: &'static str, reason: String },
    #[error("request to {peer} failed: {reason}")]
    Request { peer: PeerId, reason: String },
    #[error("record from the DHT refused: {0}")]
    Record(#[from] ProtoError),
    #[error("the network task has stopped")]
    Stopped,
}

/// What the network reports to its owner.
#[derive(Debug)]
pub enum NetEvent {
    /// A gossiped heartbeat passed every check.
    HeartbeatAccepted {
        heartbeat: Box<Heartbeat>,
        /// The signed envelope as text, for storing and serving.
        envelope: String,
        /// The peer that forwarded it (not necessarily its author).
        via: PeerId,
        /// With [`NetConfig::defer_heartbeat_validation`]: gossip forwards
        /// it only once the owner answers [`NetHandle::validate_gossip`]
        /// (`None`: already accepted for forwarding).
        message_id: Option<MessageId>,
    },
    /// A gossiped heartbeat was refused.
    HeartbeatRejected { error: ProtoError, via: PeerId },
    /// A gossiped certificate announcement passed its signature and
    /// timestamp checks (the certificate itself is not yet checked).
    CertAnnounced {
        announcement: Box<CertAnnouncement>,
        via: PeerId,
    },
    /// A gossiped certificate announcement was refused.
    CertRejected { error: ProtoError, via: PeerId },
    /// A gossiped verifier report, not yet validated: answer with
    /// [`NetHandle::validate_gossip`] so gossip forwards it or not.
    Report {
        data: Vec<u8>,
        message_id: MessageId,
        via: PeerId,
    },
    /// A peer subscribed to the heartbeat topic.
    PeerSubscribed { peer: PeerId },
    /// A connection to a peer is up.
    Connected { peer: PeerId },
    /// A peer asked us something; answer with [`NetHandle::respond`].
    InboundRequest {
        peer: PeerId,
        request: MarketRequest,
        channel: ResponseChannel<MarketResponse>,
    },
}

/// The size gauge and eviction counter of one bounded per-peer map, so an
/// operator sees a flood fill it (`flowshield_tracked_peers{map}`,
/// `flowshield_evictions_total{map}` on a fullnode). Unset: not exported.
#[derive(Debug, Clone)]
pub struct MapGauges {
    pub tracked: prometheus::IntGauge,
    pub evictions: prometheus::IntCounter,
}

impl MapGauges {
    /// Records the map's size and how many evictions it has made in all.
    pub fn observe(&self, tracked: usize, evictions_total: u64) {
        self.tracked.set(tracked as i64);
        let seen = self.evictions.get();
        if evictions_total > seen {
            self.evictions.inc_by(evictions_total - seen);
        }
    }
}

/// How to start the network.
#[derive(Debug, Clone)]
pub struct NetConfig {
    pub keypair: Keypair,
    /// e.g. `/ip4/127.0.0.1/tcp/0`, `/ip4/127.0.0.1/udp/0/quic-v1`.
    pub listen: Vec<Multiaddr>,
    /// Peers to dial at start (and again whenever the node has no
    /// connection); with a `/p2p/<id>` suffix they also seed Kademlia.
    pub bootstrap: Vec<Multiaddr>,
    pub replay_policy: ReplayPolicy,
    /// How long published DHT records live on other nodes.
    pub record_ttl: Duration,
    /// Also subscribe to the certificate and report topics (fullnodes).
    pub fullnode_topics: bool,
    /// Where the replay guard reports its size and evictions.
    pub replay_gauges: Option<MapGauges>,
    /// Leave the forwarding verdict on heartbeats that pass the network's
    /// checks to the owner (a fullnode that admits only staked providers
    /// forwards only what it admitted).
    pub defer_heartbeat_validation: bool,
}

impl NetConfig {
    pub fn new(keypair: Keypair) -> Self {
        Self {
            keypair,
            listen: Vec::new(),
            bootstrap: Vec::new(),
            replay_policy: ReplayPolicy::default(),
            record_ttl: Duration::from_secs(120),
            fullnode_topics: false,
            replay_gauges: None,
            defer_heartbeat_validation: false,
        }
    }
}

pub(crate) enum Command {
    Publish {
        topic: &'static str,
        payload: Vec<u8>,
        reply: oneshot::Sender<Result<(), NetError>>,
    },
    Validate {
        message_id: MessageId,
        via: PeerId,
        acceptance: MessageAcceptance,
    },
    Dial {
        addr: Multiaddr,
        reply: oneshot::Sender<Result<(), NetError>>,
    },
    StartProviding {
        region: Region,
        reply: oneshot::Sender<Result<(), NetError>>,
    },
    PutHeartbeat {
        signed: Box<SignedMessage<Heartbeat>>,
        reply: oneshot::Sender<Result<(), NetError>>,
    },
    FindProviders {
        region: Region,
        reply: oneshot::Sender<Result<HashSet<PeerId>, NetError>>,
    },
    GetHeartbeat {
        peer: PeerId,
        reply: oneshot::Sender<Result<Heartbeat, NetError>>,
    },
    FindPeer {
        peer: PeerId,
        reply: oneshot::Sender<Result<Vec<Multiaddr>, NetError>>,
    },
    Request {
        peer: PeerId,
        request: MarketRequest,
        reply: oneshot::Sender<Result<MarketResponse, NetError>>,
    },
    Respond {
        channel: ResponseChannel<MarketResponse>,
        response: MarketResponse,
    },
    ConnectedPeers {
        reply: oneshot::Sender<Vec<PeerId>>,
    },
    PeerScore {
        peer: PeerId,
        reply: oneshot::Sender<Option<f64>>,
    },
    Shutdown,
}

/// The owner's end of the network task. Cheap to clone.
#[derive(Debug, Clone)]
pub struct NetHandle {
    peer_id: PeerId,
    listen_addrs: Vec<Multiaddr>,
    commands: mpsc::Sender<Command>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Command")
    }
}

/// Starts listening and spawns the network task. Returns once every
/// listener has an address.
pub async fn spawn(config: NetConfig) -> Result<(NetHandle, mpsc::Receiver<NetEvent>), NetError> {
    let (swarm, listen_addrs) = build_swarm(&config).await?;
    let peer_id = *swarm.local_peer_id();
    let (commands, command_rx) = mpsc::channel(256);
    let (events, event_rx) = mpsc::channel(1024);
    let driver = driver::Driver::new(
        swarm,
        command_rx,
        events,
        config.replay_policy,
        config.replay_gauges.clone(),
        config.bootstrap.clone(),
        config.defer_heartbeat_validation,
    );
    let span = tracing::info_span!("net", %peer_id);
    tokio::spawn(tracing::Instrument::instrument(driver.run(), span));
    // An unreachable bootstrap peer is not fatal: the driver dials the list
    // again while the node has no connection at all.
    for addr in config.bootstrap {
        let (reply, done) = oneshot::channel();
        commands
            .send(Command::Dial {
                addr: addr.clone(),
                reply,
            })
            .await
            .map_err(|_| NetError::Stopped)?;
        if let Err(e) = done.await.map_err(|_| NetError::Stopped)? {
            tracing::warn!(%addr, error = %e, "bootstrap peer unreachable for now");
        }
    }
    Ok((
        NetHandle {
            peer_id,
            listen_addrs,
            commands,
        },
        event_rx,
    ))
}

impl NetHandle {
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// Where this node listens, each with a `/p2p/<id>` suffix, ready to be
    /// another node's bootstrap address.
    pub fn listen_addrs(&self) -> &[Multiaddr] {
        &self.listen_addrs
    }

    async fn call<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, NetError>>) -> Command,
    ) -> Result<T, NetError> {
        let (reply, done) = oneshot::channel();
        self.commands
            .send(make(reply))
            .await
            .map_err(|_| NetError::Stopped)?;
        done.await.map_err(|_| NetError::Stopped)?
    }

    /// Gossips a signed heartbeat.
    pub async fn publish_heartbeat(
        &self,
        signed: &SignedMessage<Heartbeat>,
    ) -> Result<(), NetError> {
        self.publish_raw(signed.to_bytes()).await
    }

    /// Gossips arbitrary bytes on the heartbeat topic. Honest nodes use
    /// [`NetHandle::publish_heartbeat`]; this exists to test that peers
    /// refuse what a dishonest node can send.
    pub async fn publish_raw(&self, payload: Vec<u8>) -> Result<(), NetError> {
        self.publish_on(HEARTBEAT_TOPIC, payload).await
    }

    /// Gossips a signed certificate announcement.
    pub async fn publish_cert(
        &self,
        signed: &SignedMessage<CertAnnouncement>,
    ) -> Result<(), NetError> {
        self.publish_on(CERT_TOPIC, signed.to_bytes()).await
    }

    /// Gossips a verifier report (its JSON body as received).
    pub async fn publish_report(&self, body: Vec<u8>) -> Result<(), NetError> {
        self.publish_on(REPORT_TOPIC, body).await
    }

    async fn publish_on(&self, topic: &'static str, payload: Vec<u8>) -> Result<(), NetError> {
        self.call(|reply| Command::Publish {
            topic,
            payload,
            reply,
        })
        .await
    }

    /// Tells gossip what a [`NetEvent::Report`], or a heartbeat whose
    /// validation was deferred, turned out to be: `Accept` forwards it,
    /// `Ignore` drops it, `Reject` also penalizes the sender.
    pub async fn validate_gossip(
        &self,
        message_id: MessageId,
        via: PeerId,
        acceptance: MessageAcceptance,
    ) -> Result<(), NetError> {
        self.commands
            .send(Command::Validate {
                message_id,
                via,
                acceptance,
            })
            .await
            .map_err(|_| NetError::Stopped)
    }

    pub async fn dial(&self, addr: Multiaddr) -> Result<(), NetError> {
        self.call(|reply| Command::Dial { addr, reply }).await
    }

    /// Announces this node in the DHT as a provider for `region`.
    pub async fn start_providing(&self, region: Region) -> Result<(), NetError> {
        self.call(|reply| Command::StartProviding { region, reply })
            .await
    }

    /// Stores our latest signed heartbeat in the DHT under our PeerId.
    pub async fn put_heartbeat(&self, signed: SignedMessage<Heartbeat>) -> Result<(), NetError> {
        let signed = Box::new(signed);
        self.call(|reply| Command::PutHeartbeat { signed, reply })
            .await
    }

    /// Providers announced in the DHT for `region`.
    pub async fn find_providers(&self, region: Region) -> Result<HashSet<PeerId>, NetError> {
        self.call(|reply| Command::FindProviders { region, reply })
            .await
    }

    /// The verified heartbeat `peer` stored in the DHT.
    pub async fn get_heartbeat(&self, peer: PeerId) -> Result<Heartbeat, NetError> {
        self.call(|reply| Command::GetHeartbeat { peer, reply })
            .await
    }

    /// Looks `peer` up in the DHT and remembers its addresses, so a later
    /// [`NetHandle::request`] can dial it. Returns the addresses found.
    pub async fn find_peer(&self, peer: PeerId) -> Result<Vec<Multiaddr>, NetError> {
        self.call(|reply| Command::FindPeer { peer, reply }).await
    }

    /// Sends a direct request and waits for the answer.
    pub async fn request(
        &self,
        peer: PeerId,
        request: MarketRequest,
    ) -> Result<MarketResponse, NetError> {
        self.call(|reply| Command::Request {
            peer,
            request,
            reply,
        })
        .await
    }

    /// Answers a [`NetEvent::InboundRequest`].
    pub async fn respond(
        &self,
        channel: ResponseChannel<MarketResponse>,
        response: MarketResponse,
    ) -> Result<(), NetError> {
        self.commands
            .send(Command::Respond { channel, response })
            .await
            .map_err(|_| NetError::Stopped)
    }

    pub async fn connected_peers(&self) -> Result<Vec<PeerId>, NetError> {
        let (reply, done) = oneshot::channel();
        self.commands
            .send(Command::ConnectedPeers { reply })
            .await
            .map_err(|_| NetError::Stopped)?;
        done.await.map_err(|_| NetError::Stopped)
    }

    /// The gossip score we give `peer` (`None` if we do not know it); below
    /// [`GRAYLIST_THRESHOLD`] it is graylisted.
    pub async fn peer_score(&self, peer: PeerId) -> Result<Option<f64>, NetError> {
        let (reply, done) = oneshot::channel();
        self.commands
            .send(Command::PeerScore { peer, reply })
            .await
            .map_err(|_| NetError::Stopped)?;
        done.await.map_err(|_| NetError::Stopped)
    }

    /// Stops the network task (other handles then get [`NetError::Stopped`]).
    pub async fn shutdown(&self) {
        let _ = self.commands.send(Command::Shutdown).await;
    }
}
