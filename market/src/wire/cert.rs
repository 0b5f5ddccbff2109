//! The DeCA binding a provider's offer claims: its WireGuard key, PeerId
//! and chain address, as a certificate must bind them. The certificate
//! itself travels in `flowshield_proto::CertAnnouncement`.

use flowshield_ca::NodeBinding;
use flowshield_chain::alloy::primitives::Address;
use flowshield_proto::Offer;

/// The binding a heartbeat claims: its wg key, PeerId and chain address.
pub fn binding_of(offer: &Offer) -> Result<NodeBinding, &'static str> {
    Ok(NodeBinding {
        wg_pubkey: offer.wg_public_key.0,
        // `flowshield-ca` has its own libp2p-identity version: go through text.
        peer_id: offer
            .provider_peer_id
            .to_base58()
            .parse()
            .map_err(|_| "cert_binding_malformed")?,
        chain_address: Address::from(offer.chain_address.0),
    })
}
