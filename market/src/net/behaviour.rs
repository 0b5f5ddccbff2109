//! The swarm's protocols and how the swarm is built.

use super::{MarketRequest, MarketResponse, NetConfig, NetError};
use flowshield_proto::{max_envelope_for, CertAnnouncement, PeerId, Region, Signable};
use futures::StreamExt;
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{gossipsub, identify, kad, noise, request_response, tcp, yamux};
use libp2p::{Multiaddr, StreamProtocol, Swarm};
use sha2::{Digest, Sha256};
use std::time::Duration;

/// The gossipsub topic of signed heartbeats.
pub const HEARTBEAT_TOPIC: &str = "flowshield/heartbeats/1";
/// The gossipsub topic of providers' signed certificate announcements.
pub const CERT_TOPIC: &str = "flowshield/certs/1";
/// The gossipsub topic of verifier reports (between fullnodes).
pub const REPORT_TOPIC: &str = "flowshield/reports/1";
/// The request-response protocol.
pub const MARKET_PROTOCOL: &str = "/flowshield/market/1";
/// Our own Kademlia protocol name, so the market DHT is separate from
/// the public IPFS one.
const KAD_PROTOCOL: &str = "/flowshield/kad/1.0.0";
const IDENTIFY_PROTOCOL: &str = "/flowshield/id/1.0.0";

/// Below this gossip score a peer is graylisted: everything it sends over
/// gossip is ignored. (Below -10 we stop gossiping to it, below -50 we stop
/// sending it what we publish.)
pub const GRAYLIST_THRESHOLD: f64 = -80.0;

/// How long to wait for listeners to come up.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(10);

/// The DHT key providers of `region` announce under:
/// `sha256("flowshield/providers/<region>")`.
pub fn region_key(region: &Region) -> kad::RecordKey {
    let digest = Sha256::digest(format!("flowshield/providers/{region}").as_bytes());
    let digest: [u8; 32] = digest.into();
    kad::RecordKey::new(&digest)
}

/// The DHT key of a provider's latest signed heartbeat:
/// `"/flowshield/heartbeat/" || peer id bytes`.
pub fn heartbeat_record_key(peer: &PeerId) -> kad::RecordKey {
    let mut key = b"/flowshield/heartbeat/".to_vec();
    key.extend_from_slice(&peer.to_bytes());
    kad::RecordKey::new(&key)
}

#[derive(NetworkBehaviour)]
pub(crate) struct MarketBehaviour {
    pub identify: identify::Behaviour,
    pub kad: kad::Behaviour<kad::store::MemoryStore>,
    pub gossipsub: gossipsub::Behaviour,
    pub rpc: request_response::json::Behaviour<MarketRequest, MarketResponse>,
}

fn behaviour(config: &NetConfig) -> Result<MarketBehaviour, NetError> {
    let keypair = &config.keypair;
    let peer_id = keypair.public().to_peer_id();
    let setup = |e: String| NetError::Setup(e);

    // Every payload on our topics carries its author's own signature
    // (heartbeats and certificate announcements: the provider's Ed25519 key;
    // reports: the verifier's EIP-712 signature), checked before forwarding.
    // Gossip's per-message signature would only name the publishing node and
    // cost a second Ed25519 verification per message (a tenth of a core at
    // 2000 heartbeats/s), so we still sign what we publish (older nodes
    // validate strictly) but do not verify it, and identify messages by the
    // hash of their content, so no one can suppress a message by sending
    // another one under its (source, seqno) id first.
    let gossip_config = gossipsub::ConfigBuilder::default()
        .validation_mode(gossipsub::ValidationMode::None)
        .message_id_fn(|message: &gossipsub::Message| {
            let digest = Sha256::digest(&message.data);
            gossipsub::MessageId::from(&digest[..20])
        })
        // Messages are forwarded only after our own checks pass.
        .validate_messages()
        .max_transmit_size(4 * max_envelope_for(CertAnnouncement::MAX_PAYLOAD))
        .heartbeat_interval(Duration::from_millis(500))
        .build()
        .map_err(|e| setup(e.to_string()))?;
    let mut gossipsub = gossipsub::Behaviour::new(
        gossipsub::MessageAuthenticity::Signed(keypair.clone()),
        gossip_config,
    )
    .map_err(|e| setup(e.to_string()))?;
    let mut topics = vec![HEARTBEAT_TOPIC];
    if config.fullnode_topics {
        topics.extend([CERT_TOPIC, REPORT_TOPIC]);
    }
    for topic in topics {
        gossipsub
            .subscribe(&gossipsub::IdentTopic::new(topic))
            .map_err(|e| setup(e.to_string()))?;
    }
    gossipsub
        .with_peer_score(peer_score_params(), peer_score_thresholds())
        .map_err(setup)?;

    let mut kad_config = kad::Config::new(StreamProtocol::new(KAD_PROTOCOL));
    kad_config
        .set_record_filtering(kad::StoreInserts::FilterBoth)
        .set_record_ttl(Some(config.record_ttl))
        .set_query_timeout(Duration::from_secs(20));
    let mut kad =
        kad::Behaviour::with_config(peer_id, kad::store::MemoryStore::new(peer_id), kad_config);
    // Answer DHT queries even without a confirmed public address: market
    // nodes are servers.
    kad.set_mode(Some(kad::Mode::Server));

    let identify = identify::Behaviour::new(identify::Config::new(
        IDENTIFY_PROTOCOL.to_string(),
        keypair.public(),
    ));

    let codec = request_response::json::codec::Codec::default()
        .set_request_size_maximum(4 * 1024)
        .set_response_size_maximum(64 * 1024);
    let rpc = request_response::Behaviour::with_codec(
        codec,
        [(
            StreamProtocol::new(MARKET_PROTOCOL),
            request_response::ProtocolSupport::Full,
        )],
        request_response::Config::default().with_request_timeout(Duration::from_secs(10)),
    );

    Ok(MarketBehaviour {
        identify,
        kad,
        gossipsub,
        rpc,
    })
}

/// Gossip peer scoring: what moves a peer's score is the messages we
/// refuse. Every topic's payload is signed by its author and checked before
/// it is forwarded, so an honest peer never relays a message we
/// `Reject` (late and duplicate copies are only `Ignore`d). Each refused
/// message counts against the peer squared (`-10 × n²`), decaying by 1% a
/// second: a few forgeries graylist it for minutes. The positive terms
/// (time in mesh, first deliveries) are capped low, so no peer can bank
/// credit before misbehaving. Delivery-rate penalties are off: providers
/// heartbeat every few seconds, far below any useful mesh delivery quota,
/// and IP colocation is not penalised because one host legitimately runs
/// many nodes (the benchmark's simulator, tests, NATed providers);
/// floods of PeerIds are bounded by the maps' caps instead.
pub(crate) fn peer_score_params() -> gossipsub::PeerScoreParams {
    let topic = gossipsub::TopicScoreParams {
        topic_weight: 1.0,
        time_in_mesh_weight: 0.01,
        time_in_mesh_quantum: Duration::from_secs(1),
        time_in_mesh_cap: 500.0,
        first_message_deliveries_weight: 0.5,
        first_message_deliveries_decay: 0.9,
        first_message_deliveries_cap: 10.0,
        mesh_message_deliveries_weight: 0.0,
        mesh_failure_penalty_weight: 0.0,
        invalid_message_deliveries_weight: -10.0,
        invalid_message_deliveries_decay: 0.99,
        ..gossipsub::TopicScoreParams::default()
    };
    let mut params = gossipsub::PeerScoreParams {
        topic_score_cap: 20.0,
        ip_colocation_factor_weight: 0.0,
        decay_to_zero: 0.01,
        ..gossipsub::PeerScoreParams::default()
    };
    for name in [HEARTBEAT_TOPIC, CERT_TOPIC, REPORT_TOPIC] {
        params
            .topics
            .insert(gossipsub::IdentTopic::new(name).hash(), topic.clone());
    }
    params
}

fn peer_score_thresholds() -> gossipsub::PeerScoreThresholds {
    gossipsub::PeerScoreThresholds {
        graylist_threshold: GRAYLIST_THRESHOLD,
        ..gossipsub::PeerScoreThresholds::default()
    }
}

/// Builds the swarm and starts every listener; returns once each has an
/// address, with `/p2p/<our id>` appended.
pub(crate) async fn build_swarm(
    config: &NetConfig,
) -> Result<(Swarm<MarketBehaviour>, Vec<Multiaddr>), NetError> {
    let behaviour = behaviour(config)?;
    let mut swarm = libp2p::SwarmBuilder::with_existing_identity(config.keypair.clone())
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .map_err(|e| NetError::Setup(e.to_string()))?
        .with_quic()
        .with_behaviour(|_| behaviour)
        .map_err(|e| NetError::Setup(e.to_string()))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(120)))
        .build();

    let mut pending = Vec::new();
    for addr in &config.listen {
        let id = swarm
            .listen_on(addr.clone())
            .map_err(|e| NetError::Listen {
                addr: addr.to_string(),
                reason: e.to_string(),
            })?;
        pending.push((id, addr.clone()));
    }
    let peer_id = *swarm.local_peer_id();
    let mut addrs = Vec::new();
    let wait = async {
        while !pending.is_empty() {
            match swarm.select_next_some().await {
                SwarmEvent::NewListenAddr {
                    listener_id,
                    address,
                } => {
                    pending.retain(|(id, _)| *id != listener_id);
                    addrs.push(address.with_p2p(peer_id).unwrap_or_else(|a| a));
                }
                SwarmEvent::ListenerClosed {
                    listener_id,
                    reason,
                    ..
                } => {
                    if let Some((_, addr)) = pending.iter().find(|(id, _)| *id == listener_id) {
                        return Err(NetError::Listen {
                            addr: addr.to_string(),
                            reason: format!("{reason:?}"),
                        });
                    }
                }
                _ => {}
            }
        }
        Ok(())
    };
    tokio::time::timeout(LISTEN_TIMEOUT, wait)
        .await
        .map_err(|_| NetError::Setup("listeners did not come up in time".into()))??;
    for addr in &addrs {
        tracing::info!(%addr, "listening");
    }
    Ok((swarm, addrs))
}
