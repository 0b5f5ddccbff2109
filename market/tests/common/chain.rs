//! Providers registered on a local chain the way `flowshield-market
//! provider` registers them: staked, with their PeerId hash and WireGuard
//! key, so a fullnode's stake gate admits them.

use flowshield_chain::alloy::primitives::{Address, U256};
use flowshield_chain::alloy::signers::local::PrivateKeySigner;
use flowshield_chain::{LocalChain, MarketClient, ProviderTerms};
use flowshield_proto::{peer_id_hash, ChainAddress, Keypair};

/// One ether in wei (the default `minStake`).
pub fn eth(n: u64) -> U256 {
    U256::from(n) * U256::from(10u64).pow(U256::from(18u64))
}

/// A funded account registered as a provider on `market` with `stake`,
/// `keypair`'s PeerId hash and WireGuard key `wg`; returns its signer and
/// the market as that signer sees it.
pub async fn register_provider(
    chain: &LocalChain,
    market: &MarketClient,
    keypair: &Keypair,
    wg: [u8; 32],
    stake: U256,
) -> (PrivateKeySigner, MarketClient) {
    let signer = chain
        .funded_signer()
        .await
        .expect("funded provider account");
    let as_provider = market.with_provider(
        chain
            .provider_for(signer.clone())
            .expect("signing provider"),
    );
    let terms = ProviderTerms {
        price_per_gib: U256::ZERO,
        price_per_hour: U256::ZERO,
        peer_id_hash: peer_id_hash(&keypair.public().to_peer_id()),
        wg_public_key: wg,
        quality: flowshield_chain::default_quality(),
    };
    as_provider
        .register(stake, &terms)
        .await
        .expect("register the provider");
    (signer, as_provider)
}

/// `address` as the offer's type.
pub fn chain_address(address: Address) -> ChainAddress {
    ChainAddress(address.into_array())
}
