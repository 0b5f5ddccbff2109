//! Inputs for the dashboard's unit tests: a node with real keys, a real
//! DeCA certificate for them, two sessions, counters and chain facts.

use super::view::*;
use crate::provider::host::{HostSnapshot, SettledTally};
use crate::session::table::SessionSnapshot;
use flowshield_ca::authority::Authority;
use flowshield_ca::node::NodeKeys;
use flowshield_chain::alloy::primitives::{Address, U256};
use flowshield_proto::{ChainAddress, Keypair, Offer, Region, WgPublicKey};
use std::net::Ipv4Addr;

pub const NOW_MS: u64 = 1_790_000_000_000;
pub const ETH: u64 = 1_000_000_000_000_000_000;

/// A node's keys and the offer that names them.
pub fn node() -> (NodeKeys, Offer) {
    let keys = NodeKeys::generate();
    let binding = keys.binding();
    let mut seed = hex::decode(keys.to_file().libp2p_secret).unwrap();
    let keypair = Keypair::ed25519_from_bytes(&mut seed).unwrap();
    let offer = Offer {
        provider_peer_id: keypair.public().to_peer_id(),
        chain_address: ChainAddress(binding.chain_address.into_array()),
        wg_public_key: WgPublicKey(binding.wg_pubkey),
        endpoint: "203.0.113.7:51820".parse().unwrap(),
        region: Region::new("eu-west").unwrap(),
        price_per_gib_wei: u128::from(ETH),
        price_per_hour_wei: 36_000_000_000_000,
        capacity_mbps: 100,
        max_clients: 10,
        tunnel_subnet: None,
    };
    (keys, offer)
}

/// `[leaf, root]` DER for `keys`, valid from `issued_at` (seconds) for `secs`.
pub fn certificate(keys: &NodeKeys, issued_at: u64, secs: u64) -> Vec<Vec<u8>> {
    let authority = Authority::create(Address::repeat_byte(0x0c), issued_at).unwrap();
    let csr = Authority::check_csr(&keys.csr_der().unwrap(), &keys.binding()).unwrap();
    let issued = authority
        .issue(csr, &keys.binding(), issued_at, secs)
        .unwrap();
    vec![issued.der, authority.cert_der().to_vec()]
}

pub fn session(order: u64, key: u8, redeemed: u64, cumulative: u64) -> SessionSnapshot {
    SessionSnapshot {
        order_id: U256::from(order),
        client: Address::repeat_byte(key),
        wg_key: WgPublicKey([key; 32]),
        address: Ipv4Addr::new(10, 77, 0, key),
        escrow: U256::from(ETH / 20),
        accepted_at_ms: NOW_MS - 120_000,
        last_voucher_ms: (cumulative > 0).then_some(NOW_MS - 2_000),
        vouchers_cumulative: U256::from(cumulative),
        redeemed: U256::from(redeemed),
    }
}

/// Everything available: sessions 7 (on the data plane) and 8 (missing
/// from it), one stray peer, chain, reputation, a valid certificate.
pub fn inputs() -> Inputs {
    let (keys, offer) = node();
    let chain = certificate(&keys, NOW_MS / 1000 - 600, 86_400);
    Inputs {
        now_ms: NOW_MS,
        interface: "flowshield0".into(),
        sessions: Panel::ok(HostSnapshot {
            sessions: vec![session(7, 2, 1_000, 1_500), session(8, 3, 0, 0)],
            settled: SettledTally {
                sessions: 2,
                paid: U256::from(40_000u64),
            },
        }),
        traffic: Panel::ok(vec![
            PeerTraffic {
                wg_key: WgPublicKey([2; 32]),
                rx_bytes: 300_000,
                tx_bytes: 4_500_000,
                last_handshake_ms: Some(NOW_MS - 5_000),
            },
            PeerTraffic {
                wg_key: WgPublicKey([9; 32]),
                rx_bytes: 1,
                tx_bytes: 2,
                last_handshake_ms: None,
            },
        ]),
        chain: Panel::ok(ChainFacts {
            registered: true,
            stake: U256::from(ETH),
            unbonding: U256::ZERO,
            unbonding_unlock_at: 0,
            min_stake: U256::from(ETH),
            claimable: U256::from(12_345u64),
        }),
        reputation: Panel::ok(ReputationFacts {
            fullnode: "http://10.250.0.1:8080".into(),
            reputation: 0.65,
            reports: 3,
            passed: 2,
            periods: 2,
            latest_period: Some(41),
        }),
        certificate: Panel::ok(CertInput {
            inspected: inspect_certificate(&chain, NOW_MS / 1000),
            expected: crate::wire::cert::binding_of(&offer).unwrap(),
            registry: Panel::ok(RegistryFacts {
                operator_registered: true,
                root_matches: true,
                revoked: false,
            }),
        }),
        exit: Panel::ok(super::exit::tests::input()),
        offer,
    }
}
