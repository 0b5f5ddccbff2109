//! What a provider tells the network about itself: signed heartbeats on
//! gossip (with its presence in the DHT refreshed now and then), and its
//! DeCA certificate chain for fullnodes that admit by certificate.
//!
//! Sequence numbers are `max(last + 1, now in ms)`, so they keep growing
//! across restarts without any state on disk.

use crate::net::NetHandle;
use crate::unix_ms;
use flowshield_proto::{CertAnnouncement, Heartbeat, Keypair, Offer, ProtoError, SignedMessage};
use std::time::Duration;

/// Signs the provider's heartbeats, numbering them (sans-IO: the caller
/// passes the time).
pub(super) struct HeartbeatSigner {
    offer: Offer,
    keypair: Keypair,
    seq: u64,
}

impl HeartbeatSigner {
    pub(super) fn new(offer: Offer, keypair: Keypair) -> Self {
        Self {
            offer,
            keypair,
            seq: 0,
        }
    }

    /// The next heartbeat at `now_ms` and its sequence number, which is
    /// above every earlier one and at least `now_ms` (so it survives a
    /// restart).
    pub(super) fn next(
        &mut self,
        now_ms: u64,
    ) -> Result<(u64, SignedMessage<Heartbeat>), ProtoError> {
        self.seq = (self.seq + 1).max(now_ms);
        let heartbeat = Heartbeat {
            offer: self.offer.clone(),
            seq: self.seq,
            timestamp_ms: now_ms,
        };
        Ok((self.seq, SignedMessage::sign(&heartbeat, &self.keypair)?))
    }
}

/// Refreshes the provider's DHT presence: a provider record under its
/// region, its newest signed heartbeat under its PeerId.
pub(super) async fn refresh_dht(net: NetHandle, offer: &Offer, record: SignedMessage<Heartbeat>) {
    if let Err(e) = net.start_providing(offer.region.clone()).await {
        tracing::warn!(error = %e, "DHT provider announcement failed");
    }
    if let Err(e) = net.put_heartbeat(record).await {
        tracing::warn!(error = %e, "DHT heartbeat record failed");
    }
}

/// Gossips the provider's certificate chain now and then every `every`,
/// until the task is aborted (by [`super::Provider::shutdown`]).
pub(super) async fn certificate(
    net: NetHandle,
    keypair: Keypair,
    chain: Vec<Vec<u8>>,
    every: Duration,
) {
    let mut tick = tokio::time::interval(every.max(Duration::from_millis(100)));
    loop {
        tick.tick().await;
        let announcement = CertAnnouncement {
            provider_peer_id: keypair.public().to_peer_id(),
            chain: chain.clone(),
            timestamp_ms: unix_ms(),
        };
        match SignedMessage::sign(&announcement, &keypair) {
            Ok(signed) => {
                if let Err(e) = net.publish_cert(&signed).await {
                    tracing::debug!(error = %e, "certificate not announced (no fullnode yet?)");
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot sign the certificate announcement");
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flowshield_proto::{ChainAddress, Region, WgPublicKey};

    #[test]
    fn heartbeats_are_signed_and_numbered_past_the_clock() {
        let keypair = Keypair::generate_ed25519();
        let offer = Offer {
            provider_peer_id: keypair.public().to_peer_id(),
            chain_address: ChainAddress([1; 20]),
            wg_public_key: WgPublicKey([2; 32]),
            endpoint: "127.0.0.1:51820".parse().unwrap(),
            region: Region::new("eu").unwrap(),
            price_per_gib_wei: 1,
            price_per_hour_wei: 0,
            capacity_mbps: 10,
            max_clients: 1,
            tunnel_subnet: None,
        };
        let mut signer = HeartbeatSigner::new(offer.clone(), keypair);
        let mut next = |now| {
            let (seq, signed) = signer.next(now).unwrap();
            let heartbeat = signed.verify().unwrap();
            assert_eq!(heartbeat.seq, seq);
            heartbeat
        };
        let first = next(1000);
        assert_eq!((first.seq, first.timestamp_ms), (1000, 1000));
        assert_eq!(first.offer, offer);
        // A clock that stands still or steps back never repeats a number.
        assert_eq!(next(1000).seq, 1001);
        assert_eq!(next(5).seq, 1002);
        assert_eq!(next(9000).seq, 9000);
    }
}
