//! Fixed keys and chain parameters of the market and CA targets.

use flowshield_chain::alloy::primitives::{Address, U256};
use flowshield_chain::alloy::signers::local::PrivateKeySigner;
use flowshield_chain::alloy::sol_types::Eip712Domain;
use flowshield_proto::{Keypair, Offer, Region, WgPublicKey};

/// The chain id of the fixtures' EIP-712 domain.
pub const CHAIN_ID: u64 = 31337;
/// The order every session seed is about.
pub const ORDER_ID: u64 = 7;
/// The order's escrow, in wei.
pub const ESCROW_WEI: u64 = 1_000_000_000_000_000_000;

/// The market contract of the fixtures' EIP-712 domain.
pub fn market() -> Address {
    Address::repeat_byte(0x42)
}

pub fn domain() -> Eip712Domain {
    flowshield_proto::market_domain(CHAIN_ID, market())
}

pub fn order_id() -> U256 {
    U256::from(ORDER_ID)
}

/// The client's chain key (pays vouchers, signs `connect`).
pub fn client_signer() -> PrivateKeySigner {
    PrivateKeySigner::from_slice(&[0x01; 32]).expect("fixed secp256k1 key")
}

/// The verifier's chain key (signs reports).
pub fn verifier_signer() -> PrivateKeySigner {
    PrivateKeySigner::from_slice(&[0x02; 32]).expect("fixed secp256k1 key")
}

/// The provider's libp2p key (signs heartbeats and certificate
/// announcements; the session's `connect` names its PeerId).
pub fn provider_keypair() -> Keypair {
    Keypair::ed25519_from_bytes([0x03; 32]).expect("fixed ed25519 key")
}

/// Unix seconds the CA targets run at (challenges and certificates are
/// valid then).
pub const CA_NOW: u64 = 1_800_000_000;

/// The node whose keys the CA seeds bind.
pub fn node_keys() -> flowshield_ca::node::NodeKeys {
    let file = flowshield_ca::node::NodeKeyFile {
        wg_secret: hex::encode([0x04; 32]),
        libp2p_secret: hex::encode([0x05; 32]),
        eth_secret: hex::encode([0x06; 32]),
    };
    flowshield_ca::node::NodeKeys::from_file(&file).expect("fixed node keys")
}

/// The CA's challenge for [`node_keys`], the same on every run.
pub fn challenge() -> (
    flowshield_ca::pop::Challenge,
    flowshield_ca::pop::ChallengeSecret,
) {
    use rand::SeedableRng;
    let mut rng = rand::rngs::StdRng::seed_from_u64(9);
    flowshield_ca::pop::Challenge::new(
        node_keys().binding(),
        flowshield_ca::pop::Purpose::Issue,
        CA_NOW,
        300,
        &mut rng,
    )
}

/// The provider's offer in the heartbeat seeds, and in the genuine
/// heartbeat the envelope target batches every input with.
pub fn offer() -> Offer {
    Offer {
        provider_peer_id: provider_keypair().public().to_peer_id(),
        chain_address: "0x00112233445566778899aabbccddeeff00112233"
            .parse()
            .expect("fixed address"),
        wg_public_key: WgPublicKey([7; 32]),
        endpoint: "192.0.2.10:51820".parse().expect("fixed endpoint"),
        region: Region::new("eu-west").expect("fixed region"),
        price_per_gib_wei: 1_000_000_000,
        price_per_hour_wei: 1_000,
        capacity_mbps: 500,
        max_clients: 10,
        tunnel_subnet: Some("10.77.0.0/16".parse().expect("fixed subnet")),
    }
}
