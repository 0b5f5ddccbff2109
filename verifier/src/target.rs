//! What to probe: [`ProbeTarget`]s and the [`TargetSource`]s that list them.
//!
//! - [`StaticSource`]: the `[[targets]]` of the config file, as written.
//! - [`ChainSource`]: providers that are active on the market (registered, stake at
//!   least the minimum) and have at least one accepted open order, found from the
//!   market's `ProviderRegistered` events; the WireGuard key is the one the provider
//!   registered on chain. Until the market sidecar publishes offers (endpoint, tunnel
//!   addressing, advertised quality), those come from the config entry with the same
//!   provider address; a listed provider without one is skipped with a warning.

use alloy::primitives::Address;
use async_trait::async_trait;
use serde::Serialize;
use std::collections::BTreeSet;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use crate::error::Result;
use crate::stats::AdvertisedQuality;
use flowshield_chain::MarketClient;
use flowshield_tunnel::key::PublicKey;

/// An address with prefix length, e.g. `10.77.0.2/32`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Cidr {
    /// The address.
    pub addr: IpAddr,
    /// Prefix length.
    pub prefix: u8,
}

impl FromStr for Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (addr, prefix) = s
            .split_once('/')
            .ok_or_else(|| format!("'{s}' has no /prefix"))?;
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("'{addr}' is not a numeric IP address"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix: u8 = prefix
            .parse()
            .ok()
            .filter(|p| *p <= max)
            .ok_or_else(|| format!("'{prefix}' is not a prefix length (0-{max})"))?;
        Ok(Cidr { addr, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// One provider as the verifier probes it.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeTarget {
    /// Human name (config) or the provider address (chain without config name).
    pub name: String,
    /// The provider's chain address (what reports are about).
    pub provider: Address,
    /// The provider's WireGuard public key (`None` only in a config entry that expects
    /// the key from the chain).
    pub wg_public_key: Option<PublicKey>,
    /// The provider's WireGuard endpoint (numeric).
    pub endpoint: SocketAddr,
    /// The verifier's own address inside the tunnel (what the provider admits).
    pub tunnel_address: Cidr,
    /// An address of the provider reachable only through the tunnel: answers ICMP echo
    /// and runs the probe responder.
    pub probe_address: IpAddr,
    /// TCP port of the provider's probe responder on `probe_address`.
    pub responder_port: u16,
    /// The config's thresholds: judged against only when the provider registered no
    /// promise on chain, and then failures are never reported ([`crate::judge`]).
    pub config_quality: Option<AdvertisedQuality>,
}

impl ProbeTarget {
    /// Whether `who` names this target: its name, or its provider address (any case).
    pub fn matches(&self, who: &str) -> bool {
        self.name == who
            || who
                .parse::<Address>()
                .is_ok_and(|address| address == self.provider)
    }
}

/// Lists the targets of one probe round.
#[async_trait]
pub trait TargetSource: Send + Sync {
    /// The targets to probe now.
    async fn targets(&self) -> Result<Vec<ProbeTarget>>;
}

/// The config file's `[[targets]]`, as written.
#[derive(Debug, Clone)]
pub struct StaticSource {
    targets: Vec<ProbeTarget>,
}

impl StaticSource {
    /// A source listing `targets` (entries without a WireGuard key are skipped: they
    /// cannot be probed without the chain).
    pub fn new(targets: Vec<ProbeTarget>) -> Self {
        StaticSource { targets }
    }
}

#[async_trait]
impl TargetSource for StaticSource {
    async fn targets(&self) -> Result<Vec<ProbeTarget>> {
        Ok(self
            .targets
            .iter()
            .filter(|t| t.wg_public_key.is_some())
            .cloned()
            .collect())
    }
}

/// Providers with active orders on the market (see the module doc).
#[derive(Debug, Clone)]
pub struct ChainSource {
    market: MarketClient,
    configured: Vec<ProbeTarget>,
}

impl ChainSource {
    /// A source reading `market`, completing entries from `configured`.
    pub fn new(market: MarketClient, configured: Vec<ProbeTarget>) -> Self {
        ChainSource { market, configured }
    }

    /// Every address that ever registered as a provider (from `ProviderRegistered`).
    pub async fn registered_providers(&self) -> Result<BTreeSet<Address>> {
        let events = self
            .market
            .instance()
            .ProviderRegistered_filter()
            .from_block(0u64)
            .query()
            .await
            .map_err(|e| flowshield_chain::ChainError::Call {
                contract: "BandwidthMarket",
                function: "ProviderRegistered (logs)",
                source: Box::new(e),
            })?;
        Ok(events.into_iter().map(|(ev, _log)| ev.provider).collect())
    }
}

#[async_trait]
impl TargetSource for ChainSource {
    async fn targets(&self) -> Result<Vec<ProbeTarget>> {
        let mut out = Vec::new();
        for provider in self.registered_providers().await? {
            if !self.market.is_active_provider(provider).await?
                || self.market.active_orders(provider).await?.is_empty()
            {
                continue;
            }
            let record = self.market.provider_record(provider).await?;
            let chain_key = PublicKey(record.wgPublicKey.0);
            let Some(mut target) = self
                .configured
                .iter()
                .find(|t| t.provider == provider)
                .cloned()
            else {
                tracing::warn!(%provider, "provider has active orders but no endpoint in the config; skipped");
                continue;
            };
            if target.wg_public_key.is_some_and(|k| k != chain_key) {
                tracing::warn!(%provider, "config WireGuard key differs from the registered one; using the chain's");
            }
            target.wg_public_key = Some(chain_key);
            out.push(target);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_parsing() {
        let c: Cidr = "10.0.0.2/32".parse().expect("valid");
        assert_eq!(c.to_string(), "10.0.0.2/32");
        assert!("10.0.0.2".parse::<Cidr>().is_err());
        assert!("10.0.0.2/33".parse::<Cidr>().is_err());
        assert!("fd00::1/128".parse::<Cidr>().is_ok());
        assert!("host/24".parse::<Cidr>().is_err());
    }
}
