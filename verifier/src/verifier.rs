//! One verifier: probes targets, stores, signs, publishes and reports.
//!
//! Per probe (the judging itself is [`crate::judge`], sans IO): read the provider's
//! quality promise, the chain's current period and the market's `failStreak` (K);
//! measure ([`crate::probe`]); judge against the promise ([`crate::stats::verdict`]);
//! decide from this period's stored results ([`crate::judge::decide`]); store the probe.
//! - Passed: sign the report as a `PublishedReport` (not a vote: nobody can relay it
//!   on chain), publish it to every fullnode. The pass vote waits for the period's end
//!   (one vote per verifier and period, kept for a failure that may follow):
//!   [`crate::vote`], at the start of every round and just after each period ends.
//! - Failed, fewer than K consecutive failing probes this period, or no promise on
//!   chain: stored only, nothing signed.
//! - The K-th consecutive failing probe: sign and publish it, and vote fail on chain
//!   with `submitReport` from this verifier's key, at most once per (provider,
//!   period): the local `chain_reports` table is checked and reserved first, then
//!   `hasReported` on chain; the contract's `DuplicateReport` is the last line.

use std::sync::Arc;
use std::time::Duration;

use alloy::primitives::Address;
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::Eip712Domain;
use rand::Rng;
use tracing::Instrument;

use crate::config::{Config, MarketSource, SourceKind};
use crate::error::{ProbeError, Result, VerifierError};
use crate::judge::{self, Basis, Decision};
use crate::probe::{self, Stage};
use crate::publish::{Delivery, Publisher};
use crate::report::{self, ProbeRecord, SignedReport};
use crate::stats::{self, Metrics, Verdict};
use crate::store::Store;
use crate::target::{ChainSource, ProbeTarget, StaticSource, TargetSource};
use flowshield_chain::bindings::BandwidthMarket::BandwidthMarketErrors;
use flowshield_chain::{rpc, MarketClient};
use flowshield_tunnel::key::SecretKey;

/// What happened on chain for one probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainOutcome {
    /// No chain configured: nothing signed or sent.
    NoChain,
    /// The provider passed: nothing to send.
    NotNeeded,
    /// The probe failed, but fewer than K consecutive probes of the period did: nothing
    /// signed or sent yet.
    Waiting {
        /// Consecutive failing probes so far in the period.
        run: u32,
        /// K.
        needed: u32,
    },
    /// The probe failed, but the provider registered no quality promise: a failure is
    /// never reported.
    NoPromise,
    /// A failing report was mined in this transaction.
    Submitted(String),
    /// This verifier's local record already has a report for the provider and period.
    AlreadyReportedLocally,
    /// The chain already has this verifier's report for the provider and period.
    AlreadyOnChain,
    /// Submission failed (the slot was released for a later round).
    Failed(String),
}

/// The result of probing one target.
#[derive(Debug, Clone)]
pub struct ProbeResult {
    /// The target.
    pub target: ProbeTarget,
    /// Row id in the database.
    pub probe_id: i64,
    /// Measurements.
    pub metrics: Metrics,
    /// Verdict.
    pub verdict: Verdict,
    /// What the probe was judged against.
    pub basis: Basis,
    /// What the verdict and the period's earlier probes led to.
    pub decision: Decision,
    /// The signed report (chain configured, and the probe passed or completed a
    /// failing streak).
    pub signed: Option<SignedReport>,
    /// Deliveries to fullnodes.
    pub deliveries: Vec<Delivery>,
    /// On-chain outcome.
    pub chain: ChainOutcome,
}

/// The verifier's chain identity and market.
#[derive(Debug, Clone)]
pub struct ChainContext {
    /// The market, sending as the verifier.
    pub market: MarketClient,
    /// The verifier's chain key.
    pub signer: PrivateKeySigner,
    /// The EIP-712 domain of the market.
    pub domain: Eip712Domain,
}

/// A configured verifier.
pub struct Verifier {
    config: Config,
    wg_key: Arc<SecretKey>,
    store: Store,
    source: Box<dyn TargetSource>,
    chain: Option<ChainContext>,
    publisher: Publisher,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Keys are never printed.
        f.debug_struct("Verifier")
            .field("database", &self.config.database)
            .field("chain", &self.chain.as_ref().map(|c| c.signer.address()))
            .finish_non_exhaustive()
    }
}

impl Verifier {
    /// Load keys, open the database, connect to the chain (if configured).
    pub async fn new(config: Config) -> Result<Self> {
        let wg_key = Arc::new(crate::keys::load_wg_key(&config.wg_private_key_file)?);
        let store = Store::open(&config.database).await?;
        let chain = match &config.chain {
            Some(c) => {
                let signer = crate::keys::load_chain_key(&c.private_key_file)?;
                let provider = rpc::connect(&c.rpc_url, signer.clone())?;
                let market = match &c.market {
                    MarketSource::Address(address) => MarketClient::at(*address, provider),
                    MarketSource::Deployment(path) => {
                        flowshield_chain::Deployment::load(path)?
                            .market(provider)
                            .await?
                    }
                };
                let domain = market.eip712_domain().await?;
                Some(ChainContext {
                    market,
                    signer,
                    domain,
                })
            }
            None => None,
        };
        let source: Box<dyn TargetSource> = match (&config.chain, &chain) {
            (Some(c), Some(ctx)) if c.source == SourceKind::Chain => {
                Box::new(ChainSource::new(ctx.market.clone(), config.targets.clone()))
            }
            _ => Box::new(StaticSource::new(config.targets.clone())),
        };
        let publisher = Publisher::new(config.fullnodes.clone(), Duration::from_secs(5), 3)?;
        Ok(Verifier {
            config,
            wg_key,
            store,
            source,
            chain,
            publisher,
        })
    }

    /// The result database.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The chain context, if configured.
    pub fn chain(&self) -> Option<&ChainContext> {
        self.chain.as_ref()
    }

    /// The targets of a round now.
    pub async fn targets(&self) -> Result<Vec<ProbeTarget>> {
        self.source.targets().await
    }

    /// Probe every target once (one after the other: a verifier has one probe
    /// interface). A target whose probe cannot run is logged and skipped.
    pub async fn round(&self) -> Result<Vec<ProbeResult>> {
        Ok(self.round_report().await?.results)
    }

    /// [`Verifier::round`], also saying which targets could not be probed
    /// (`run --once` fails on those, so a timer unit shows the failure).
    pub async fn round_report(&self) -> Result<RoundReport> {
        let mut report = RoundReport::default();
        // Ended periods first: their challenge windows are closing.
        match self.cast_closing_votes().await {
            Ok(votes) => report.votes = votes,
            Err(e) => tracing::warn!(error = %e, "closing votes failed; will retry next round"),
        }
        if let Err(e) = self.claim_past_votes().await {
            tracing::warn!(error = %e, "claiming past votes failed; will retry next round");
        }
        let targets = self.targets().await?;
        tracing::info!(targets = targets.len(), "probe round");
        for target in targets {
            let span =
                tracing::info_span!("probe", target = %target.name, provider = %target.provider);
            match self.probe_target(&target, |_| {}).instrument(span).await {
                Ok(r) => {
                    tracing::info!(passed = r.verdict.passed, chain = ?r.chain, "probe done");
                    report.results.push(r);
                }
                Err(e) => {
                    tracing::warn!(target = %target.name, error = %e, "probe could not run");
                    report.not_run.push((target.name.clone(), e.to_string()));
                }
            }
        }
        Ok(report)
    }

    /// Probe the target named `who` (name or provider address) once.
    pub async fn probe_named(
        &self,
        who: &str,
        progress: impl FnMut(&Stage) + Send + 'static,
    ) -> Result<ProbeResult> {
        let targets = self.targets().await?;
        let target = targets
            .into_iter()
            .find(|t| t.matches(who))
            .ok_or_else(|| ProbeError::UnknownTarget(who.to_string()))?;
        self.probe_target(&target, progress).await
    }

    /// Measure only: bring up the tunnel, measure, tear down. Nothing stored or sent.
    pub async fn measure(
        &self,
        target: &ProbeTarget,
        mut progress: impl FnMut(&Stage) + Send + 'static,
    ) -> Result<Metrics> {
        let (settings, key, t) = (
            self.config.probe.clone(),
            self.wg_key.clone(),
            target.clone(),
        );
        let metrics =
            tokio::task::spawn_blocking(move || probe::probe(&settings, &key, &t, &mut progress))
                .await
                .map_err(|e| VerifierError::Task(e.to_string()))??;
        Ok(metrics.quantized())
    }

    /// Probe `target` and handle the result (see the module doc).
    pub async fn probe_target(
        &self,
        target: &ProbeTarget,
        progress: impl FnMut(&Stage) + Send + 'static,
    ) -> Result<ProbeResult> {
        let started_at_ms = chrono::Utc::now().timestamp_millis();
        let (basis, period, fail_streak) = self.yardstick(target).await?;
        let metrics = self.measure(target, progress).await?;
        let verdict = stats::verdict(&metrics, &basis.quality());
        let mut history = match period {
            Some(p) => self.store.period_results(target.provider, p).await?,
            None => Vec::new(),
        };
        history.push(verdict.passed);
        let decision = judge::decide(&basis, fail_streak, &history);
        let signed = match (&self.chain, period, decision) {
            (Some(c), Some(period), Decision::Pass | Decision::ReportFailure { .. }) => {
                Some(report::sign(
                    &c.signer,
                    &c.domain,
                    target.provider,
                    period,
                    &metrics,
                    &verdict,
                )?)
            }
            _ => None,
        };
        let record = ProbeRecord {
            started_at_ms,
            target: target.name.clone(),
            provider: target.provider,
            period,
            metrics: metrics.clone(),
            verdict: verdict.clone(),
            signed: signed.clone(),
        };
        let probe_id = self.store.insert_probe(&record).await?;
        let mut deliveries = Vec::new();
        if let Some(signed) = &signed {
            deliveries = self.publisher.publish(signed).await;
            for d in &deliveries {
                self.store
                    .record_publication(probe_id, &d.fullnode, d.delivered, d.attempts, &d.detail)
                    .await?;
            }
        }
        let chain = match (&signed, period, decision) {
            (_, None, _) => ChainOutcome::NoChain,
            (Some(s), Some(period), Decision::ReportFailure { .. }) => {
                self.report_failure(target.provider, period, probe_id, s)
                    .await?
            }
            (_, _, Decision::Failing { run, needed }) => ChainOutcome::Waiting { run, needed },
            (_, _, Decision::NoPromise) => ChainOutcome::NoPromise,
            _ => ChainOutcome::NotNeeded,
        };
        Ok(ProbeResult {
            target: target.clone(),
            probe_id,
            metrics,
            verdict,
            basis,
            decision,
            signed,
            deliveries,
            chain,
        })
    }

    /// What `target` is judged against, the chain's current period and K: the
    /// provider's promise read from chain (the config's thresholds only without one),
    /// the market's `failStreak` as the floor of `probe.fail_streak`.
    async fn yardstick(&self, target: &ProbeTarget) -> Result<(Basis, Option<u64>, u32)> {
        let Some(c) = &self.chain else {
            let basis = Basis::choose(None, target.config_quality);
            return Ok((
                basis,
                None,
                judge::fail_streak(self.config.fail_streak, None),
            ));
        };
        let record = c.market.provider_record(target.provider).await?;
        let promise = judge::promise_quality(&record.quality);
        if promise.is_none() {
            tracing::warn!(provider = %target.provider, "no quality promise on chain: failures will not be reported");
        }
        let market_k = u32::from(c.market.params().await?.fail_streak);
        let period = c.market.current_period().await?;
        Ok((
            Basis::choose(promise, target.config_quality),
            Some(period),
            judge::fail_streak(self.config.fail_streak, Some(market_k)),
        ))
    }

    /// Vote fail on chain once per (provider, period) ([`Verifier::cast_vote`]): local
    /// record, then `hasReported`, then `submitReport` from this verifier's key.
    pub async fn report_failure(
        &self,
        provider: Address,
        period: u64,
        probe_id: i64,
        signed: &SignedReport,
    ) -> Result<ChainOutcome> {
        let report = signed
            .to_report()
            .map_err(|e| flowshield_chain::ChainError::UnexpectedValue(e.to_string()))?;
        debug_assert_eq!((report.provider, report.period), (provider, period));
        self.cast_vote(&report, probe_id).await
    }

    /// `probe.fail_streak` of the config (K before the market's floor).
    pub(crate) fn fail_streak_config(&self) -> Option<u32> {
        self.config.fail_streak
    }

    /// Loop forever: sleep until the next scheduled (jittered) instant, run a round;
    /// also wake just after each report period ends to cast its closing votes.
    pub async fn run_forever(&self) -> Result<()> {
        let schedule = self.config.schedule.clone().ok_or_else(|| {
            crate::error::ConfigError::field("schedule", "`run` needs a [schedule] section")
        })?;
        loop {
            let unit: f64 = rand::thread_rng().gen();
            let Some(delay) = schedule.delay_from(chrono::Utc::now(), unit) else {
                tracing::warn!("the schedule has no future run; stopping");
                return Ok(());
            };
            tracing::info!(delay_secs = delay.as_secs(), "next round scheduled");
            let round_at = tokio::time::Instant::now() + delay;
            loop {
                let votes_in = match self.until_closing_votes().await {
                    Ok(d) => d,
                    Err(e) => {
                        tracing::warn!(error = %e, "period length unknown; votes wait for the round");
                        None
                    }
                };
                let vote_at = votes_in.map(|d| tokio::time::Instant::now() + d);
                match vote_at {
                    Some(at) if at < round_at => {
                        tokio::time::sleep_until(at).await;
                        if let Err(e) = self.cast_closing_votes().await {
                            tracing::warn!(error = %e, "closing votes failed");
                        }
                    }
                    _ => break,
                }
            }
            tokio::time::sleep_until(round_at).await;
            if let Err(e) = self.round().await {
                tracing::warn!(error = %e, "probe round failed");
            }
        }
    }
}

/// What one round did.
#[derive(Debug, Default)]
pub struct RoundReport {
    /// Targets measured (passed or failed).
    pub results: Vec<ProbeResult>,
    /// Targets whose probe could not run: (name, why).
    pub not_run: Vec<(String, String)>,
    /// Pass votes cast for ended periods at the start of the round.
    pub votes: Vec<crate::vote::ClosingVote>,
}

/// Send the report of `signed` as this verifier's own vote (`submitReport` from the
/// market client's key; the document's signature is for fullnodes and is not a vote);
/// returns the transaction hash. No local or on-chain duplicate check:
/// [`Verifier::cast_vote`] does those.
pub async fn submit(
    market: &MarketClient,
    signed: &SignedReport,
) -> Result<String, flowshield_chain::ChainError> {
    let report = signed
        .to_report()
        .map_err(|e| flowshield_chain::ChainError::UnexpectedValue(e.to_string()))?;
    let receipt = market.submit_report(&report).await?;
    Ok(receipt.transaction_hash.to_string())
}

/// Whether `e` is the contract's `DuplicateReport` revert.
pub fn is_duplicate(e: &flowshield_chain::ChainError) -> bool {
    matches!(
        e.market_error(),
        Some(BandwidthMarketErrors::DuplicateReport(_))
    )
}
