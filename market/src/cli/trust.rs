//! Chain-backed trust settings from the command line: the DeCA registry,
//! the market contract, a provider's certificate chain file.

use anyhow::{Context, Result};
use flowshield_chain::alloy::primitives::Address;
use flowshield_chain::alloy::signers::local::PrivateKeySigner;
use flowshield_chain::{Deployment, MarketClient};
use flowshield_market::fullnode::certgate::CertPolicy;
use flowshield_market::fullnode::DecaConfig;
use std::path::Path;
use std::time::Duration;

pub fn deca(rpc: &str, registry: &str, require: bool, ttl_secs: u64) -> Result<DecaConfig> {
    let address: Address = registry
        .parse()
        .with_context(|| format!("--deca-registry: '{registry}' is not a 0x address"))?;
    // Reads only: any key will do.
    let registry =
        flowshield_ca::registry::ChainRegistry::connect(rpc, address, PrivateKeySigner::random())
            .context("--deca-rpc")?;
    Ok(DecaConfig {
        registry,
        policy: CertPolicy {
            require,
            ttl: Duration::from_secs(ttl_secs.max(1)),
        },
    })
}

/// Checks a deployment manifest against the chain at `rpc` (chain id, code).
pub async fn check_deployment(manifest: &Deployment, rpc: &str) -> Result<()> {
    let provider = flowshield_chain::rpc::connect_read_only(rpc)?;
    manifest.verify(&provider).await?;
    Ok(())
}

pub fn market(rpc: &str, market: &str) -> Result<MarketClient> {
    let address: Address = market
        .parse()
        .with_context(|| format!("--market: '{market}' is not a 0x address"))?;
    let provider = flowshield_chain::rpc::connect_read_only(rpc).context("--chain-rpc")?;
    Ok(MarketClient::at(address, provider))
}

/// A PEM chain file: the leaf, then the operator root.
pub fn read_chain(path: &Path) -> Result<Vec<Vec<u8>>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("--certificate {}", path.display()))?;
    let chain: Vec<Vec<u8>> = text
        .split_inclusive("-----END CERTIFICATE-----")
        .filter(|block| block.contains("-----BEGIN CERTIFICATE-----"))
        .map(flowshield_ca::authority::pem_decode)
        .collect::<Option<_>>()
        .with_context(|| format!("{}: not PEM certificates", path.display()))?;
    anyhow::ensure!(
        chain.len() == 2,
        "{}: expected 2 certificates (leaf, operator root), found {}",
        path.display(),
        chain.len()
    );
    Ok(chain)
}
