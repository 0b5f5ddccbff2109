//! Watches the market contract for events that change what the chain says
//! about a provider (registered, updated, stake added, unstake requested,
//! stake withdrawn, slashed) and names those addresses to the stake gate,
//! which forgets their cached records ([`super::stakegate`]). A change is
//! so seen within one poll, not after the cache's TTL.
//!
//! Polls `eth_getLogs` from the block after the last one seen, every
//! `interval`; a chain that does not answer is asked again on the next
//! round, from the same block.

use flowshield_chain::alloy::primitives::B256;
use flowshield_chain::alloy::providers::Provider;
use flowshield_chain::alloy::rpc::types::{Filter, Log};
use flowshield_chain::alloy::sol_types::SolEvent;
use flowshield_chain::bindings::BandwidthMarket;
use flowshield_chain::MarketClient;
use flowshield_proto::ChainAddress;
use std::time::Duration;
use tokio::sync::mpsc;

/// Most blocks asked for in one `eth_getLogs`.
const MAX_BLOCKS_PER_QUERY: u64 = 2_000;

/// The events whose first indexed topic is a provider whose record changed.
pub fn provider_events() -> Vec<B256> {
    vec![
        BandwidthMarket::ProviderRegistered::SIGNATURE_HASH,
        BandwidthMarket::ProviderUpdated::SIGNATURE_HASH,
        BandwidthMarket::StakeAdded::SIGNATURE_HASH,
        BandwidthMarket::UnstakeRequested::SIGNATURE_HASH,
        BandwidthMarket::StakeWithdrawn::SIGNATURE_HASH,
        BandwidthMarket::ProviderSlashed::SIGNATURE_HASH,
    ]
}

/// The provider addresses named by `logs` (the first indexed topic of the
/// [`provider_events`]; other logs are ignored).
pub fn changed_providers(logs: &[Log]) -> Vec<ChainAddress> {
    let events = provider_events();
    let mut out: Vec<ChainAddress> = logs
        .iter()
        .filter_map(|log| {
            let topics = log.topics();
            let signature = topics.first()?;
            if !events.contains(signature) {
                return None;
            }
            let word = topics.get(1)?;
            let mut address = [0u8; 20];
            address.copy_from_slice(&word.0[12..]);
            Some(ChainAddress(address))
        })
        .collect();
    out.sort_by_key(|a| a.0);
    out.dedup();
    out
}

/// Polls the market's provider events every `interval` and sends the
/// changed addresses to `changed`, until its receiver is gone.
pub async fn watch(
    market: MarketClient,
    interval: Duration,
    timeout: Duration,
    changed: mpsc::Sender<Vec<ChainAddress>>,
) {
    let chain = market.instance().provider().clone();
    let mut ticks = tokio::time::interval(interval.max(Duration::from_millis(50)));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first block not yet read.
    let mut next: Option<u64> = None;
    let mut failing = false;
    loop {
        ticks.tick().await;
        let round = async {
            let latest = chain.get_block_number().await?;
            let Some(from) = next else {
                return Ok((latest + 1, Vec::new()));
            };
            if from > latest {
                return Ok((from, Vec::new()));
            }
            let to = latest.min(from + MAX_BLOCKS_PER_QUERY - 1);
            let filter = Filter::new()
                .address(market.address())
                .event_signature(provider_events())
                .from_block(from)
                .to_block(to);
            let logs = chain.get_logs(&filter).await?;
            Ok::<_, flowshield_chain::alloy::transports::TransportError>((to + 1, logs))
        };
        match tokio::time::timeout(timeout, round).await {
            Ok(Ok((after, logs))) => {
                if failing {
                    tracing::info!("market events readable again");
                    failing = false;
                }
                next = Some(after);
                let addresses = changed_providers(&logs);
                if !addresses.is_empty() && changed.send(addresses).await.is_err() {
                    return;
                }
            }
            outcome => {
                if !failing {
                    let error = match outcome {
                        Ok(Err(e)) => e.to_string(),
                        _ => format!("no answer within {timeout:?}"),
                    };
                    tracing::warn!(%error, "reading market events (cached stake verdicts stand)");
                    failing = true;
                }
                if changed.is_closed() {
                    return;
                }
            }
        }
    }
}
