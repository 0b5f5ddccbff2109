//! The DHT side of the driver: records reach the store only after they
//! verify, and query progress is turned into answers to commands.

use super::{Driver, Pending};
use crate::net::behaviour::heartbeat_record_key;
use crate::net::NetError;
use flowshield_proto::{Heartbeat, ProtoError, SignedMessage};
use libp2p::kad;

impl Driver {
    pub(super) fn handle_kad(&mut self, event: kad::Event) {
        match event {
            kad::Event::InboundRequest { request } => self.handle_kad_inbound(request),
            kad::Event::OutboundQueryProgressed {
                id, result, step, ..
            } => self.handle_kad_progress(id, result, step.last),
            _ => {}
        }
    }

    /// Records reach the store only through here (`StoreInserts::FilterBoth`).
    fn handle_kad_inbound(&mut self, request: kad::InboundRequest) {
        let kad = &mut self.swarm.behaviour_mut().kad;
        match request {
            kad::InboundRequest::PutRecord {
                source,
                record: Some(record),
                ..
            } => match verify_heartbeat_record(&record) {
                Ok(heartbeat) => {
                    let newer = kad::store::RecordStore::get(kad.store_mut(), &record.key)
                        .and_then(|old| SignedMessage::<Heartbeat>::from_bytes(&old.value).ok())
                        .and_then(|old| old.verify().ok())
                        .is_none_or(|old| old.seq < heartbeat.seq);
                    if newer {
                        if let Err(e) = kad::store::RecordStore::put(kad.store_mut(), record) {
                            tracing::warn!(%source, error = %e, "DHT store full");
                        }
                    }
                }
                Err(error) => tracing::info!(%source, %error, "DHT record refused"),
            },
            kad::InboundRequest::AddProvider {
                record: Some(record),
            } => {
                // Kademlia has checked that the announcer is the provider.
                if let Err(e) = kad::store::RecordStore::add_provider(kad.store_mut(), record) {
                    tracing::warn!(error = %e, "DHT provider store full");
                }
            }
            _ => {}
        }
    }

    fn handle_kad_progress(&mut self, id: kad::QueryId, result: kad::QueryResult, last: bool) {
        let Some(mut pending) = self.queries.remove(&id) else {
            return;
        };
        match (&mut pending, result) {
            (
                Pending::FindProviders { found, .. },
                kad::QueryResult::GetProviders(Ok(kad::GetProvidersOk::FoundProviders {
                    providers,
                    ..
                })),
            ) => found.extend(providers),
            (
                Pending::GetHeartbeat {
                    peer,
                    reply,
                    last_error,
                },
                kad::QueryResult::GetRecord(result),
            ) => match result {
                Ok(kad::GetRecordOk::FoundRecord(found)) => {
                    match verify_heartbeat_record(&found.record) {
                        Ok(heartbeat) if heartbeat.offer.provider_peer_id == *peer => {
                            if let Some(reply) = reply.take() {
                                let _ = reply.send(Ok(heartbeat));
                            }
                        }
                        Ok(_) => {
                            *last_error = Some(NetError::Dht {
                                what: "get_record",
                                reason: "record names another provider".into(),
                            })
                        }
                        Err(e) => *last_error = Some(NetError::Record(e)),
                    }
                }
                Ok(kad::GetRecordOk::FinishedWithNoAdditionalRecord { .. }) => {}
                Err(e) => {
                    *last_error = Some(NetError::Dht {
                        what: "get_record",
                        reason: e.to_string(),
                    })
                }
            },
            (Pending::FindPeer { peer, addrs, .. }, kad::QueryResult::GetClosestPeers(result)) => {
                let peers = match result {
                    Ok(ok) => ok.peers,
                    Err(kad::GetClosestPeersError::Timeout { peers, .. }) => peers,
                };
                for info in peers.into_iter().filter(|info| info.peer_id == *peer) {
                    for addr in info.addrs {
                        if !addrs.contains(&addr) {
                            // Known to Kademlia, a later request dials it.
                            self.swarm
                                .behaviour_mut()
                                .kad
                                .add_address(peer, addr.clone());
                            addrs.push(addr);
                        }
                    }
                }
            }
            (Pending::StartProviding(_), kad::QueryResult::StartProviding(result))
            | (Pending::StartProviding(_), kad::QueryResult::RepublishProvider(result)) => {
                if let Err(e) = result {
                    // The record is in our own store regardless; peers will
                    // get it on the next announce.
                    tracing::debug!(error = %e, "provider announcement reached no peer");
                }
            }
            (Pending::PutRecord(_), kad::QueryResult::PutRecord(Err(e))) => {
                tracing::debug!(error = %e, "heartbeat record reached no peer");
            }
            (Pending::FindProviders { .. }, kad::QueryResult::GetProviders(Err(e))) => {
                tracing::debug!(error = %e, "provider lookup ended early");
            }
            _ => {}
        }
        if !last {
            self.queries.insert(id, pending);
            return;
        }
        match pending {
            Pending::StartProviding(reply) | Pending::PutRecord(reply) => {
                let _ = reply.send(Ok(()));
            }
            Pending::FindProviders { found, reply } => {
                let _ = reply.send(Ok(found));
            }
            Pending::GetHeartbeat {
                reply: Some(reply),
                last_error,
                ..
            } => {
                let _ = reply.send(Err(last_error.unwrap_or(NetError::Dht {
                    what: "get_record",
                    reason: "not found".into(),
                })));
            }
            Pending::GetHeartbeat { reply: None, .. } => {}
            Pending::FindPeer { peer, addrs, reply } => {
                let _ = reply.send(if addrs.is_empty() {
                    Err(NetError::Dht {
                        what: "find_peer",
                        reason: format!("no address found for {peer}"),
                    })
                } else {
                    Ok(addrs)
                });
            }
        }
    }
}

/// A DHT heartbeat record is accepted if it verifies and sits under its
/// author's key. Staleness is not checked here: records outlive the gossip
/// window, and readers see the timestamp.
fn verify_heartbeat_record(record: &kad::Record) -> Result<Heartbeat, ProtoError> {
    let signed = SignedMessage::<Heartbeat>::from_bytes(&record.value)?;
    let heartbeat = signed.verify()?;
    if record.key != heartbeat_record_key(&heartbeat.offer.provider_peer_id) {
        return Err(ProtoError::Invalid {
            field: "record key",
            reason: "not the author's heartbeat key".into(),
        });
    }
    Ok(heartbeat)
}
