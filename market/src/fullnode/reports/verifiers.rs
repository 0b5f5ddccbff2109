//! What a fullnode asks the market contract about reports: whether a
//! signer is an admitted verifier (`isVerifier`, cached in a bounded LRU)
//! and which report periods are open now ([`PeriodClock`], synced from
//! `getParams().reportPeriod` and the latest block's time).

use super::period::{OutOfWindow, PeriodClock};
use super::ReportError;
use crate::net::MapGauges;
use crate::unix_ms;
use flowshield_chain::alloy::eips::BlockNumberOrTag;
use flowshield_chain::alloy::primitives::Address;
use flowshield_chain::alloy::providers::Provider as _;
use flowshield_chain::alloy::sol_types::Eip712Domain;
use flowshield_chain::{ChainError, MarketClient};
use lru::LruCache;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const VERIFIER_TTL: Duration = Duration::from_secs(300);
const NON_VERIFIER_TTL: Duration = Duration::from_secs(15);
/// Signers whose `isVerifier` answer is cached by default. Admitted
/// verifiers are few; the rest are strangers signing reports, evicted first.
pub const DEFAULT_MAX_VERIFIERS: usize = 10_000;

/// The verifier cache: answers and their age, least recently asked first out.
struct VerifierCache {
    answers: LruCache<Address, (bool, Instant)>,
    cap: usize,
    evictions: u64,
    gauges: Option<MapGauges>,
}

impl VerifierCache {
    fn new(cap: usize, gauges: Option<MapGauges>) -> Self {
        Self {
            answers: LruCache::unbounded(),
            cap: cap.max(1),
            evictions: 0,
            gauges,
        }
    }

    fn get(&mut self, verifier: &Address) -> Option<bool> {
        let (yes, at) = *self.answers.get(verifier)?;
        let ttl = if yes { VERIFIER_TTL } else { NON_VERIFIER_TTL };
        (at.elapsed() < ttl).then_some(yes)
    }

    fn put(&mut self, verifier: Address, yes: bool) {
        if !self.answers.contains(&verifier) && self.answers.len() >= self.cap {
            self.answers.pop_lru();
            self.evictions += 1;
        }
        self.answers.put(verifier, (yes, Instant::now()));
        if let Some(g) = &self.gauges {
            g.observe(self.answers.len(), self.evictions);
        }
    }
}

/// Whether an address is an admitted verifier, asked of the market contract
/// and cached (positive answers longer than negative ones, so a newly
/// admitted verifier is heard soon), and the market's report period.
pub struct VerifierRegistry {
    market: MarketClient,
    domain: Eip712Domain,
    cache: Mutex<VerifierCache>,
    clock: Mutex<PeriodClock>,
    /// One clock sync at a time.
    syncing: tokio::sync::Mutex<()>,
}

impl VerifierRegistry {
    /// Reads the market's EIP-712 domain (chain id from the RPC) and syncs
    /// the period clock; caches at most `max_verifiers` answers.
    pub async fn connect(
        market: MarketClient,
        max_verifiers: usize,
        gauges: Option<MapGauges>,
    ) -> Result<Self, ChainError> {
        let domain = market.eip712_domain().await?;
        let clock = sync_clock(&market).await?;
        Ok(Self {
            market,
            domain,
            cache: Mutex::new(VerifierCache::new(max_verifiers, gauges)),
            clock: Mutex::new(clock),
            syncing: tokio::sync::Mutex::new(()),
        })
    }

    pub fn domain(&self) -> &Eip712Domain {
        &self.domain
    }

    /// Signers with a cached answer, and answers evicted so far.
    pub fn cache_size(&self) -> (usize, u64) {
        self.cache
            .lock()
            .map(|c| (c.answers.len(), c.evictions))
            .unwrap_or_default()
    }

    /// Fails with [`ReportError::NotVerifier`] unless `verifier` is admitted.
    pub async fn check(&self, verifier: Address) -> Result<(), ReportError> {
        let cached = self.cache.lock().ok().and_then(|mut c| c.get(&verifier));
        let known = match cached {
            Some(yes) => yes,
            None => {
                // One retry: a pooled HTTP connection the node closed fails
                // the first request on it.
                let yes = match self.market.is_verifier(verifier).await {
                    Ok(yes) => yes,
                    Err(_) => {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        self.market
                            .is_verifier(verifier)
                            .await
                            .map_err(|e| ReportError::Chain {
                                verifier,
                                reason: e.to_string(),
                            })?
                    }
                };
                if let Ok(mut cache) = self.cache.lock() {
                    cache.put(verifier, yes);
                }
                yes
            }
        };
        if known {
            Ok(())
        } else {
            Err(ReportError::NotVerifier(verifier))
        }
    }

    /// Fails unless `period` is the market's current period or the one
    /// before. The clock is synced first when it is due, or when `period`
    /// looks future and the last sync is not too recent; a failed sync
    /// keeps the last clock.
    pub async fn check_period(&self, period: u64) -> Result<(), OutOfWindow> {
        let clock = |registry: &Self| registry.clock.lock().map(|c| *c).ok();
        let Some(mut current) = clock(self) else {
            return Ok(());
        };
        if current.should_resync_for(period, unix_ms()) {
            let _one = self.syncing.lock().await;
            // Another report may have synced it while this one waited.
            current = clock(self).unwrap_or(current);
            if current.should_resync_for(period, unix_ms()) {
                match sync_clock(&self.market).await {
                    Ok(fresh) => {
                        current = fresh;
                        if let Ok(mut c) = self.clock.lock() {
                            *c = fresh;
                        }
                    }
                    Err(e) => tracing::debug!(error = %e, "report period clock not synced"),
                }
            }
        }
        current.check(period, unix_ms())
    }
}

/// Reads `reportPeriod` and the latest block's time.
async fn sync_clock(market: &MarketClient) -> Result<PeriodClock, ChainError> {
    let params = market.params().await?;
    let block = market
        .instance()
        .provider()
        .get_block_by_number(BlockNumberOrTag::Latest)
        .await
        .map_err(|source| ChainError::Rpc {
            method: "eth_getBlockByNumber",
            source: Box::new(source),
        })?
        .ok_or_else(|| ChainError::UnexpectedValue("no latest block".into()))?;
    Ok(PeriodClock::synced(
        params.report_period,
        block.header.timestamp,
        unix_ms(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_verifier_cache_is_capped_and_counts_evictions() {
        let metrics = crate::fullnode::metrics::Metrics::new().unwrap();
        let mut cache = VerifierCache::new(3, Some(metrics.map_gauges("verifier_cache")));
        let admitted = Address::repeat_byte(0xaa);
        cache.put(admitted, true);
        for i in 0..10u8 {
            // The admitted verifier keeps reporting: it stays.
            assert_eq!(cache.get(&admitted), Some(true));
            cache.put(Address::repeat_byte(i), false);
        }
        assert_eq!((cache.answers.len(), cache.evictions), (3, 8));
        assert_eq!(cache.get(&admitted), Some(true));
        assert_eq!(cache.get(&Address::repeat_byte(9)), Some(false));
        assert_eq!(cache.get(&Address::repeat_byte(0)), None, "evicted");
        let text = metrics.render();
        assert!(text.contains("flowshield_tracked_peers{map=\"verifier_cache\"} 3"));
        assert!(text.contains("flowshield_evictions_total{map=\"verifier_cache\"} 8"));
    }
}
