//! The task that owns the swarm: it turns commands into swarm calls and
//! swarm events into [`NetEvent`]s, and validates gossip and DHT records on
//! the way in (DHT records in [`dht`]).

mod dht;
mod heartbeats;

use super::behaviour::{
    heartbeat_record_key, region_key, MarketBehaviour, MarketBehaviourEvent, CERT_TOPIC,
    HEARTBEAT_TOPIC, REPORT_TOPIC,
};
use super::{Command, MapGauges, MarketResponse, NetError, NetEvent};
use crate::unix_ms;
use flowshield_proto::{
    verify_batch, CertAnnouncement, Heartbeat, PeerId, ProtoError, ReplayGuard, ReplayPolicy,
    SignedMessage, SignerKeys,
};
use futures::StreamExt;
use heartbeats::{HeartbeatBatch, Waiting};
use libp2p::gossipsub::{self, IdentTopic, MessageAcceptance};
use libp2p::request_response::{self, OutboundRequestId};
use libp2p::swarm::dial_opts::DialOpts;
use libp2p::swarm::{ConnectionId, SwarmEvent};
use libp2p::{identify, kad, Multiaddr, Swarm};
use std::collections::{HashMap, HashSet};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

type Reply<T> = oneshot::Sender<Result<T, NetError>>;

enum Pending {
    StartProviding(Reply<()>),
    PutRecord(Reply<()>),
    FindProviders {
        found: HashSet<PeerId>,
        reply: Reply<HashSet<PeerId>>,
    },
    FindPeer {
        peer: PeerId,
        addrs: Vec<Multiaddr>,
        reply: Reply<Vec<Multiaddr>>,
    },
    GetHeartbeat {
        peer: PeerId,
        reply: Option<Reply<Heartbeat>>,
        last_error: Option<NetError>,
    },
}

pub(crate) struct Driver {
    swarm: Swarm<MarketBehaviour>,
    commands: mpsc::Receiver<Command>,
    events: mpsc::Sender<NetEvent>,
    topic: IdentTopic,
    cert_topic: IdentTopic,
    report_topic: IdentTopic,
    replay: ReplayGuard,
    replay_gauges: Option<MapGauges>,
    /// Decoded keys of the providers heard recently (as many as the
    /// replay guard tracks): each heartbeat's key is decoded once, not
    /// every few seconds.
    signer_keys: SignerKeys,
    /// Heartbeats waiting for their signatures to be checked together.
    heartbeats: HeartbeatBatch,
    /// Heartbeats that pass are forwarded only once the owner says so.
    defer_heartbeats: bool,
    queries: HashMap<kad::QueryId, Pending>,
    requests: HashMap<OutboundRequestId, Reply<MarketResponse>>,
    dials: HashMap<ConnectionId, Reply<()>>,
    bootstrap: Vec<Multiaddr>,
}

/// How often a node with no connection at all dials its bootstrap peers again.
const REDIAL_INTERVAL: Duration = Duration::from_secs(10);

impl Driver {
    pub fn new(
        swarm: Swarm<MarketBehaviour>,
        commands: mpsc::Receiver<Command>,
        events: mpsc::Sender<NetEvent>,
        policy: ReplayPolicy,
        replay_gauges: Option<MapGauges>,
        bootstrap: Vec<Multiaddr>,
        defer_heartbeats: bool,
    ) -> Self {
        Self {
            swarm,
            commands,
            events,
            topic: IdentTopic::new(HEARTBEAT_TOPIC),
            cert_topic: IdentTopic::new(CERT_TOPIC),
            report_topic: IdentTopic::new(REPORT_TOPIC),
            replay: ReplayGuard::new(policy),
            replay_gauges,
            signer_keys: SignerKeys::new(policy.max_tracked),
            heartbeats: HeartbeatBatch::new(),
            defer_heartbeats,
            queries: HashMap::new(),
            requests: HashMap::new(),
            dials: HashMap::new(),
            bootstrap,
        }
    }

    pub async fn run(mut self) {
        let mut prune = tokio::time::interval(Duration::from_secs(30));
        let mut redial = tokio::time::interval_at(
            tokio::time::Instant::now() + REDIAL_INTERVAL,
            REDIAL_INTERVAL,
        );
        loop {
            tokio::select! {
                command = self.commands.recv() => match command {
                    Some(Command::Shutdown) | None => break,
                    Some(command) => self.handle_command(command),
                },
                event = self.swarm.select_next_some() => self.handle_swarm_event(event).await,
                _ = self.heartbeats.due(), if self.heartbeats.is_open() => {
                    self.check_heartbeats().await
                }
                _ = prune.tick() => {
                    self.replay.prune(unix_ms());
                    self.observe_replay();
                }
                _ = redial.tick() => self.redial_if_alone(),
            }
        }
        tracing::debug!("network task stopped");
    }

    fn observe_replay(&self) {
        if let Some(gauges) = &self.replay_gauges {
            gauges.observe(self.replay.len(), self.replay.evictions());
        }
    }

    fn redial_if_alone(&mut self) {
        if self.swarm.connected_peers().next().is_some() {
            return;
        }
        for addr in self.bootstrap.clone() {
            tracing::debug!(%addr, "no peers: dialing bootstrap again");
            if let Err(e) = self.swarm.dial(addr.clone()) {
                tracing::debug!(%addr, error = %e, "bootstrap dial failed");
            }
        }
    }

    fn handle_command(&mut self, command: Command) {
        let behaviour = self.swarm.behaviour_mut();
        match command {
            Command::Publish {
                topic,
                payload,
                reply,
            } => {
                let result = behaviour
                    .gossipsub
                    .publish(IdentTopic::new(topic), payload)
                    .map(|_| ())
                    .map_err(|e| NetError::Publish(e.to_string()));
                let _ = reply.send(result);
            }
            Command::Dial { addr, reply } => {
                if let Some(libp2p::multiaddr::Protocol::P2p(peer)) = addr.iter().last() {
                    behaviour.kad.add_address(&peer, addr.clone());
                }
                let opts = DialOpts::from(addr.clone());
                let connection = opts.connection_id();
                match self.swarm.dial(opts) {
                    Ok(()) => {
                        // Answered when this connection is up or has failed.
                        self.dials.insert(connection, reply);
                    }
                    Err(e) => {
                        let _ = reply.send(Err(NetError::Dial {
                            addr: addr.to_string(),
                            reason: e.to_string(),
                        }));
                    }
                }
            }
            Command::StartProviding { region, reply } => {
                match behaviour.kad.start_providing(region_key(&region)) {
                    Ok(id) => {
                        self.queries.insert(id, Pending::StartProviding(reply));
                    }
                    Err(e) => {
                        let _ = reply.send(Err(NetError::Dht {
                            what: "start_providing",
                            reason: e.to_string(),
                        }));
                    }
                }
            }
            Command::PutHeartbeat { signed, reply } => {
                let record = kad::Record::new(
                    heartbeat_record_key(&self.swarm.local_peer_id().clone()),
                    signed.to_bytes(),
                );
                match self
                    .swarm
                    .behaviour_mut()
                    .kad
                    .put_record(record, kad::Quorum::One)
                {
                    Ok(id) => {
                        self.queries.insert(id, Pending::PutRecord(reply));
                    }
                    Err(e) => {
                        let _ = reply.send(Err(NetError::Dht {
                            what: "put_record",
                            reason: e.to_string(),
                        }));
                    }
                }
            }
            Command::FindProviders { region, reply } => {
                let id = behaviour.kad.get_providers(region_key(&region));
                self.queries.insert(
                    id,
                    Pending::FindProviders {
                        found: HashSet::new(),
                        reply,
                    },
                );
            }
            Command::GetHeartbeat { peer, reply } => {
                let id = behaviour.kad.get_record(heartbeat_record_key(&peer));
                self.queries.insert(
                    id,
                    Pending::GetHeartbeat {
                        peer,
                        reply: Some(reply),
                        last_error: None,
                    },
                );
            }
            Command::FindPeer { peer, reply } => {
                let id = behaviour.kad.get_closest_peers(peer);
                self.queries.insert(
                    id,
                    Pending::FindPeer {
                        peer,
                        addrs: Vec::new(),
                        reply,
                    },
                );
            }
            Command::Request {
                peer,
                request,
                reply,
            } => {
                let id = behaviour.rpc.send_request(&peer, request);
                self.requests.insert(id, reply);
            }
            Command::Respond { channel, response } => {
                if behaviour.rpc.send_response(channel, response).is_err() {
                    tracing::debug!("response not sent: the requester went away");
                }
            }
            Command::Validate {
                message_id,
                via,
                acceptance,
            } => {
                behaviour
                    .gossipsub
                    .report_message_validation_result(&message_id, &via, acceptance);
            }
            Command::ConnectedPeers { reply } => {
                let _ = reply.send(self.swarm.connected_peers().copied().collect());
            }
            Command::PeerScore { peer, reply } => {
                let _ = reply.send(behaviour.gossipsub.peer_score(&peer));
            }
            Command::Shutdown => {}
        }
    }

    async fn handle_swarm_event(&mut self, event: SwarmEvent<MarketBehaviourEvent>) {
        match event {
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                ..
            } => {
                tracing::debug!(peer = %peer_id, "connected");
                if let Some(reply) = self.dials.remove(&connection_id) {
                    let _ = reply.send(Ok(()));
                }
                emit(&self.events, NetEvent::Connected { peer: peer_id }).await;
            }
            SwarmEvent::OutgoingConnectionError {
                peer_id,
                connection_id,
                error,
            } => {
                tracing::debug!(peer = ?peer_id, %error, "dial failed");
                if let Some(reply) = self.dials.remove(&connection_id) {
                    let _ = reply.send(Err(NetError::Dial {
                        addr: format!("{peer_id:?}"),
                        reason: error.to_string(),
                    }));
                }
            }
            SwarmEvent::Behaviour(MarketBehaviourEvent::Identify(identify::Event::Received {
                peer_id,
                info,
                ..
            })) => {
                for addr in info.listen_addrs {
                    self.swarm.behaviour_mut().kad.add_address(&peer_id, addr);
                }
            }
            SwarmEvent::Behaviour(MarketBehaviourEvent::Gossipsub(event)) => {
                self.handle_gossip(event).await
            }
            SwarmEvent::Behaviour(MarketBehaviourEvent::Kad(event)) => self.handle_kad(event),
            SwarmEvent::Behaviour(MarketBehaviourEvent::Rpc(event)) => self.handle_rpc(event).await,
            _ => {}
        }
    }

    async fn handle_gossip(&mut self, event: gossipsub::Event) {
        match event {
            gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            } if message.topic == self.cert_topic.hash() => {
                self.handle_cert(propagation_source, message_id, &message.data)
                    .await
            }
            gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            } if message.topic == self.report_topic.hash() => {
                // Checked by the fullnode (it needs the chain), which then
                // calls `validate_gossip`.
                let event = NetEvent::Report {
                    data: message.data,
                    message_id,
                    via: propagation_source,
                };
                emit(&self.events, event).await;
            }
            gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            } if message.topic == self.topic.hash() => {
                match SignedMessage::<Heartbeat>::from_bytes(&message.data) {
                    Ok(signed) => {
                        let waiting = Waiting {
                            signed,
                            data: message.data,
                            message_id,
                            via: propagation_source,
                        };
                        if self.heartbeats.push(waiting) {
                            self.check_heartbeats().await;
                        }
                    }
                    Err(error) => {
                        self.settle_heartbeat(Err(error), message_id, propagation_source)
                            .await
                    }
                }
            }
            gossipsub::Event::Subscribed { peer_id, topic } if topic == self.topic.hash() => {
                emit(&self.events, NetEvent::PeerSubscribed { peer: peer_id }).await;
            }
            _ => {}
        }
    }

    /// Checks the open batch of heartbeats and settles each, in the
    /// order they arrived.
    async fn check_heartbeats(&mut self) {
        let batch = self.heartbeats.take();
        // A batch is milliseconds of curve arithmetic: on a blocking
        // thread, so the other tasks of this runtime (a fullnode's HTTP
        // API among them) are not stalled behind it. Nothing else uses
        // the key cache meanwhile: this task waits for it.
        let mut keys = std::mem::replace(&mut self.signer_keys, SignerKeys::new(1));
        let checked = tokio::task::spawn_blocking(move || {
            let signed: Vec<&SignedMessage<Heartbeat>> = batch.iter().map(|w| &w.signed).collect();
            let verdicts = verify_batch(&signed, &mut keys);
            (batch, verdicts, keys)
        })
        .await;
        let (batch, verdicts, keys) = match checked {
            Ok(checked) => checked,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            // The runtime is shutting down.
            Err(_) => return,
        };
        self.signer_keys = keys;
        let now = unix_ms();
        for (waiting, verdict) in batch.into_iter().zip(verdicts) {
            let verdict = verdict.and_then(|heartbeat| {
                self.replay.check_and_record(&heartbeat, now)?;
                Ok((heartbeat, waiting.signed.envelope_text(waiting.data)))
            });
            self.settle_heartbeat(verdict, waiting.message_id, waiting.via)
                .await;
        }
        self.observe_replay();
    }

    /// Tells gossip what became of a heartbeat (or leaves that to the
    /// owner when it defers) and passes the verdict on.
    async fn settle_heartbeat(
        &mut self,
        verdict: Result<(Heartbeat, String), ProtoError>,
        message_id: gossipsub::MessageId,
        propagation_source: PeerId,
    ) {
        let acceptance = match &verdict {
            Ok(_) if self.defer_heartbeats => None,
            Ok(_) => Some(MessageAcceptance::Accept),
            // Late or duplicate copies can reach honest relays; drop
            // them without penalizing the forwarder.
            Err(
                ProtoError::Replayed { .. }
                | ProtoError::Stale { .. }
                | ProtoError::FromFuture { .. },
            ) => Some(MessageAcceptance::Ignore),
            Err(_) => Some(MessageAcceptance::Reject),
        };
        let deferred = match acceptance {
            Some(acceptance) => {
                self.swarm
                    .behaviour_mut()
                    .gossipsub
                    .report_message_validation_result(&message_id, &propagation_source, acceptance);
                None
            }
            None => Some(message_id),
        };
        let event = match verdict {
            Ok((heartbeat, envelope)) => {
                tracing::debug!(provider = %heartbeat.offer.provider_peer_id, seq = heartbeat.seq, "heartbeat accepted");
                NetEvent::HeartbeatAccepted {
                    heartbeat: Box::new(heartbeat),
                    envelope,
                    via: propagation_source,
                    message_id: deferred,
                }
            }
            Err(error) => {
                tracing::info!(via = %propagation_source, %error, "heartbeat refused");
                NetEvent::HeartbeatRejected {
                    error,
                    via: propagation_source,
                }
            }
        };
        emit(&self.events, event).await;
    }

    async fn handle_cert(&mut self, via: PeerId, message_id: gossipsub::MessageId, data: &[u8]) {
        let now = unix_ms();
        let policy = self.replay.policy();
        let verdict = SignedMessage::<CertAnnouncement>::from_bytes(data)
            .and_then(|signed| signed.verify())
            .and_then(|ann| {
                if ann.timestamp_ms > now.saturating_add(policy.max_future_ms) {
                    return Err(ProtoError::FromFuture {
                        ahead_ms: ann.timestamp_ms - now,
                    });
                }
                let age_ms = now.saturating_sub(ann.timestamp_ms);
                if age_ms > policy.max_age_ms {
                    return Err(ProtoError::Stale { age_ms });
                }
                Ok(ann)
            });
        let acceptance = match &verdict {
            Ok(_) => MessageAcceptance::Accept,
            Err(ProtoError::Stale { .. } | ProtoError::FromFuture { .. }) => {
                MessageAcceptance::Ignore
            }
            Err(_) => MessageAcceptance::Reject,
        };
        self.swarm
            .behaviour_mut()
            .gossipsub
            .report_message_validation_result(&message_id, &via, acceptance);
        let event = match verdict {
            Ok(announcement) => NetEvent::CertAnnounced {
                announcement: Box::new(announcement),
                via,
            },
            Err(error) => {
                tracing::info!(%via, %error, "certificate announcement refused");
                NetEvent::CertRejected { error, via }
            }
        };
        emit(&self.events, event).await;
    }

    async fn handle_rpc(
        &mut self,
        event: request_response::Event<super::MarketRequest, MarketResponse>,
    ) {
        match event {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request {
                    request, channel, ..
                } => {
                    emit(
                        &self.events,
                        NetEvent::InboundRequest {
                            peer,
                            request,
                            channel,
                        },
                    )
                    .await;
                }
                request_response::Message::Response {
                    request_id,
                    response,
                } => {
                    if let Some(reply) = self.requests.remove(&request_id) {
                        let _ = reply.send(Ok(response));
                    }
                }
            },
            request_response::Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                if let Some(reply) = self.requests.remove(&request_id) {
                    let _ = reply.send(Err(NetError::Request {
                        peer,
                        reason: error.to_string(),
                    }));
                }
            }
            _ => {}
        }
    }
}

async fn emit(events: &mpsc::Sender<NetEvent>, event: NetEvent) {
    // A dropped receiver means the owner no longer listens; not an error.
    let _ = events.send(event).await;
}
