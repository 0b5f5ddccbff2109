//! Building alloy providers that sign with a local key.

use alloy::network::EthereumWallet;
use alloy::primitives::B256;
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::signers::local::PrivateKeySigner;
use alloy::transports::http::reqwest::Url;

use crate::error::{ChainError, Result};

/// Parse an HTTP JSON-RPC URL.
pub fn parse_url(rpc_url: &str) -> Result<Url> {
    rpc_url.parse::<Url>().map_err(|e| ChainError::InvalidUrl {
        url: rpc_url.to_string(),
        reason: e.to_string(),
    })
}

/// A provider over HTTP that fills nonce, gas and chain id and signs with `signer`.
///
/// The nonce is read from the node (`pending`) for every transaction instead of being
/// cached: a call that reverts at gas estimation must not burn a nonce, and several
/// providers may sign for the same account.
pub fn connect(rpc_url: &str, signer: PrivateKeySigner) -> Result<DynProvider> {
    let url = parse_url(rpc_url)?;
    Ok(ProviderBuilder::new()
        .disable_recommended_fillers()
        .with_simple_nonce_management()
        .with_gas_estimation()
        .fetch_chain_id()
        .wallet(EthereumWallet::from(signer))
        .connect_http(url)
        .erased())
}

/// A read-only provider (no wallet): for views and raw RPC.
pub fn connect_read_only(rpc_url: &str) -> Result<DynProvider> {
    let url = parse_url(rpc_url)?;
    Ok(ProviderBuilder::new().connect_http(url).erased())
}

/// Turn 32 raw bytes into a signer. The key itself never appears in the error.
pub fn signer_from_key(key: &B256) -> Result<PrivateKeySigner> {
    PrivateKeySigner::from_bytes(key)
        .map_err(|_| ChainError::InvalidKey("not a valid secp256k1 scalar".into()))
}
