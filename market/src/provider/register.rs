//! Selling: with a `[chain]` table the provider registers on chain (stake,
//! its PeerId hash, WireGuard key and quality promise) if it is not yet,
//! updates them when they changed since (fullnodes admit its heartbeats
//! only when both match the chain), and builds its [`SessionHost`].

use super::config::ProviderFile;
use super::egress::NetTools;
use super::error::ProviderError;
use super::host::{HostConfig, SessionHost};
use super::recover;
use super::shaping::{Shaper, ShapingPlan};
use super::store::SessionStore;
use crate::session::pricing::Prices;
use crate::session::table::SessionPolicy;
use crate::wire::session::parse_u256;
use crate::wire::text::ip_net;
use flowshield_chain::alloy::primitives::{B256, U256};
use flowshield_chain::ProviderTerms;
use flowshield_proto::{peer_id_hash, Offer};
use std::path::Path;

impl ProviderFile {
    /// With a `[chain]` table: registers on chain if needed and returns the
    /// session host; without, `None` (the provider only announces).
    pub async fn session_host(
        &self,
        path: &Path,
        offer: &Offer,
    ) -> Result<Option<SessionHost>, ProviderError> {
        let Some(chain) = &self.chain else {
            return Ok(None);
        };
        let field = |field: &'static str, reason: String| ProviderError::ConfigField {
            path: path.to_path_buf(),
            field,
            reason,
        };
        let wei = |name: &'static str, text: &str| {
            parse_u256(name, text).map_err(|e| field(name, e.to_string()))
        };
        let s = &self.session;
        let client_allowed_ips = s
            .client_allowed_ips
            .iter()
            .map(|cidr| {
                ip_net::parse(cidr).ok_or_else(|| {
                    let shown: String = cidr.chars().take(64).collect();
                    field(
                        "session.client_allowed_ips",
                        format!("{shown:?} is not an IP network like 198.18.99.0/24"),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let (signer, market) = chain.connect().await?;
        if signer.address().0 .0 != offer.chain_address.0 {
            return Err(field(
                "offer.chain_address",
                format!("differs from chain.key_file's address {}", signer.address()),
            ));
        }
        let prices = Prices {
            per_gib: U256::from(offer.price_per_gib_wei),
            per_hour: U256::from(offer.price_per_hour_wei),
        };
        let record = market
            .provider_record(signer.address())
            .await
            .map_err(|e| ProviderError::Register(e.to_string()))?;
        let terms = ProviderTerms {
            price_per_gib: prices.per_gib,
            price_per_hour: prices.per_hour,
            peer_id_hash: peer_id_hash(&offer.provider_peer_id),
            wg_public_key: offer.wg_public_key.0,
            quality: self.promise.quality(),
        };
        if !record.registered {
            market
                .register(wei("session.stake_wei", &s.stake_wei)?, &terms)
                .await
                .map_err(|e| ProviderError::Register(e.to_string()))?;
            tracing::info!(address = %signer.address(), "registered on chain");
        } else if record.peerIdHash != terms.peer_id_hash
            || record.wgPublicKey != B256::from(terms.wg_public_key)
            || record.quality != terms.quality
        {
            // A restart with a new node key, WireGuard key or promise: fullnodes
            // admit heartbeats only when both keys match the chain, and
            // verifiers judge against the promise on chain.
            market
                .update_provider(&terms)
                .await
                .map_err(|e| ProviderError::Register(e.to_string()))?;
            tracing::info!(
                address = %signer.address(),
                "updated the PeerId and WireGuard key on chain"
            );
        }
        let policy = SessionPolicy {
            me: signer.address(),
            min_escrow: wei("session.min_escrow_wei", &s.min_escrow_wei)?,
            prices,
            idle_timeout_ms: s.idle_timeout_secs.max(1) * 1000,
            redeem_threshold: wei("session.redeem_threshold_wei", &s.redeem_threshold_wei)?,
            redeem_interval_ms: s.redeem_interval_secs.max(1) * 1000,
            credit_limit: match &s.credit_limit_wei {
                Some(text) => wei("session.credit_limit_wei", text)?,
                None => prices.default_credit_limit(offer.capacity_mbps),
            },
            max_clients: offer.max_clients,
            max_orders_per_client: s.max_orders_per_client,
        };
        if policy.max_orders_per_client == 0 {
            return Err(field(
                "session.max_orders_per_client",
                "must be at least 1".into(),
            ));
        }
        let store = SessionStore::connect(&self.session_store_url())
            .await
            .map_err(|e| field("session.store", e.to_string()))?;
        let dataplane = self.dataplane();
        tracing::info!(socket = %dataplane.socket().display(), "data plane UAPI socket");
        let shaper = if self.egress.shape_clients {
            let subnet = self
                .tunnel_subnet
                .parse()
                .map_err(|e: ipnet::AddrParseError| field("tunnel_subnet", e.to_string()))?;
            let plan = ShapingPlan::new(
                &self.interface,
                subnet,
                offer.capacity_mbps,
                offer.max_clients,
            )
            .map_err(|e| field("egress.shape_clients", e.to_string()))?;
            Some(Shaper::new(plan, NetTools::here()))
        } else {
            None
        };
        // Before answering anyone: take up what the last run left.
        let recovered = recover::reconcile(&store, &market, &dataplane, signer.address()).await?;
        tracing::info!(
            resumed = recovered.resumed.len(),
            settled = recovered.settled.len(),
            rejected = recovered.rejected.len(),
            forgotten = recovered.forgotten.len(),
            peers_removed = recovered.peers_removed,
            peers_left_alone = recovered.peers_left_alone,
            "sessions reconciled"
        );
        let host = SessionHost::new(HostConfig {
            peer_id: offer.provider_peer_id,
            market,
            store,
            dataplane,
            tunnel_subnet: self.tunnel_subnet.clone(),
            provider_wg_public_key: offer.wg_public_key,
            endpoint: offer.endpoint,
            client_allowed_ips,
            keepalive_secs: s.keepalive_secs,
            policy,
            shaper,
        })
        .await?;
        host.resume(&recovered.resumed).await;
        Ok(Some(host))
    }
}
