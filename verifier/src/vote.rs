//! This verifier's on-chain votes: one per (provider, period), sent from its own key
//! with `submitReport` (never as a relayable signature).
//!
//! - A failing vote at the K-th consecutive failing probe of a period
//!   ([`Verifier::report_failure`], from the probe path).
//! - A passing vote once the period is over, inside its challenge window, for every
//!   period in which this verifier probed the provider, saw it pass and saw no K-run of
//!   failures ([`Verifier::cast_closing_votes`], [`crate::judge::vote_pass_after`]).
//!   Each round starts with it, and `run` also wakes just after each period's end
//!   ([`Verifier::until_closing_votes`]), so the vote lands even when rounds are rarer
//!   than the challenge window is long.
//!
//! Every vote is reserved in the local `chain_reports` table first, then checked with
//! `hasReported`; the contract's `DuplicateReport` is the last line. A vote bonds
//! `reportBond` of the verifier's stake until the period is finalized and claimed:
//! [`Verifier::claim_past_votes`] does both once the challenge window has closed, so
//! the bonds of right votes come back to the stake without anyone else's help.

use std::time::Duration;

use alloy::primitives::{Address, B256};

use crate::error::Result;
use crate::judge;
use crate::verifier::{is_duplicate, ChainOutcome, Verifier};
use flowshield_chain::bindings::BandwidthMarket::BandwidthMarketErrors;
use flowshield_chain::voucher::Report;

/// A closing (pass) vote and what happened to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClosingVote {
    /// The provider voted on.
    pub provider: Address,
    /// The ended period.
    pub period: u64,
    /// What happened on chain.
    pub outcome: ChainOutcome,
}

impl Verifier {
    /// Cast a pass vote for every ended period (challenge window still open) in which
    /// this verifier probed a provider, saw it pass and saw no K-run of failures.
    pub async fn cast_closing_votes(&self) -> Result<Vec<ClosingVote>> {
        let Some(c) = self.chain() else {
            return Ok(Vec::new());
        };
        let params = c.market.params().await?;
        let current = c.market.current_period().await?;
        let k = judge::fail_streak(self.fail_streak_config(), Some(params.fail_streak.into()));
        // Periods whose challenge window may still be open.
        let lookback = params.challenge_window / params.report_period.max(1) + 1;
        let pending = self
            .store()
            .unvoted_periods(current.saturating_sub(lookback), current)
            .await?;
        let mut votes = Vec::new();
        for p in pending {
            let Ok(provider) = p.provider.parse::<Address>() else {
                tracing::warn!(provider = %p.provider, "stored provider address unreadable; skipped");
                continue;
            };
            let results = self.store().period_results(provider, p.period).await?;
            if !judge::vote_pass_after(k, &results) {
                continue;
            }
            let report = Report {
                provider,
                period: p.period,
                passed: true,
                metricsHash: p
                    .pass_metrics_hash
                    .as_deref()
                    .and_then(|h| h.parse::<B256>().ok())
                    .unwrap_or_default(),
            };
            let outcome = self.cast_vote(&report, p.last_probe_id).await?;
            tracing::info!(%provider, period = p.period, ?outcome, "closing pass vote");
            votes.push(ClosingVote {
                provider,
                period: p.period,
                outcome,
            });
        }
        Ok(votes)
    }

    /// For each recorded vote whose period's challenge window has closed: `finalize`
    /// the period if nobody has, then `claimReport` (bond back if the vote was right,
    /// reward credited). Returns the (provider, period) pairs settled. Failures are
    /// logged and retried next time.
    pub async fn claim_past_votes(&self) -> Result<Vec<(Address, u64)>> {
        let Some(c) = self.chain() else {
            return Ok(Vec::new());
        };
        let params = c.market.params().await?;
        let current = c.market.current_period().await?;
        // Before this period every challenge window has closed.
        let lookback = params.challenge_window / params.report_period.max(1) + 1;
        let me = c.signer.address();
        let mut settled = Vec::new();
        for (stored, period) in self
            .store()
            .unclaimed_votes(current.saturating_sub(lookback))
            .await?
        {
            let Ok(provider) = stored.parse::<Address>() else {
                tracing::warn!(provider = %stored, "stored provider address unreadable; skipped");
                continue;
            };
            if !c.market.tally(provider, period).await?.finalized {
                match c.market.finalize(provider, period).await {
                    Ok(_) => {}
                    Err(e) if settled_already(&e) => {}
                    Err(e) => {
                        tracing::warn!(%provider, period, error = %e, "finalize failed; will retry");
                        continue;
                    }
                }
            }
            match c.market.claim_report(me, provider, period).await {
                Ok(_) => {}
                Err(e) if settled_already(&e) => {}
                Err(e) => {
                    tracing::warn!(%provider, period, error = %e, "claim failed; will retry");
                    continue;
                }
            }
            self.store().mark_claimed(&stored, period).await?;
            tracing::info!(%provider, period, "vote settled");
            settled.push((provider, period));
        }
        Ok(settled)
    }

    /// How long until the closing votes of the period running now can be cast (a
    /// margin after its end, well inside the challenge window), by the wall clock.
    pub async fn until_closing_votes(&self) -> Result<Option<Duration>> {
        let Some(c) = self.chain() else {
            return Ok(None);
        };
        let params = c.market.params().await?;
        let now = u64::try_from(chrono::Utc::now().timestamp()).unwrap_or_default();
        let period = params.report_period.max(1);
        let margin = (params.challenge_window / 4).min(60);
        let at = (now / period + 1) * period + margin;
        Ok(Some(Duration::from_secs(at.saturating_sub(now))))
    }

    /// Send `report` as this verifier's vote, at most once per (provider, period):
    /// local reservation (pointing at `probe_id`), then `hasReported`, then
    /// `submitReport`.
    pub(crate) async fn cast_vote(&self, report: &Report, probe_id: i64) -> Result<ChainOutcome> {
        let Some(c) = self.chain() else {
            return Ok(ChainOutcome::NoChain);
        };
        let (provider, period) = (report.provider, report.period);
        if !self
            .store()
            .reserve_chain_report(provider, period, probe_id)
            .await?
        {
            return Ok(ChainOutcome::AlreadyReportedLocally);
        }
        let me = c.signer.address();
        if c.market.has_reported(me, provider, period).await? {
            // Keep the reservation: the chain has it, so the slot is used.
            return Ok(ChainOutcome::AlreadyOnChain);
        }
        match c.market.submit_report(report).await {
            Ok(receipt) => {
                let tx = receipt.transaction_hash.to_string();
                self.store()
                    .confirm_chain_report(provider, period, &tx)
                    .await?;
                Ok(ChainOutcome::Submitted(tx))
            }
            Err(e) if is_duplicate(&e) => Ok(ChainOutcome::AlreadyOnChain),
            Err(e) if is_too_late(&e) => {
                // The window closed: keep the reservation, the vote can never land.
                tracing::warn!(error = %e, "vote too late for its period");
                Ok(ChainOutcome::Failed(e.to_string()))
            }
            Err(e) => {
                tracing::warn!(error = %e, "vote submission failed; will retry next round");
                self.store().release_chain_report(provider, period).await?;
                Ok(ChainOutcome::Failed(e.to_string()))
            }
        }
    }
}

/// Reverts meaning "nothing left to do": finalized by someone else, no vote of ours
/// (a reservation whose vote never landed), or already claimed.
fn settled_already(e: &flowshield_chain::ChainError) -> bool {
    matches!(
        e.market_error(),
        Some(
            BandwidthMarketErrors::AlreadyFinalized(_)
                | BandwidthMarketErrors::NoReports(_)
                | BandwidthMarketErrors::NothingToClaim(_)
        )
    )
}

/// Whether `e` is the contract's `PeriodOutOfRange` revert (challenge window closed).
fn is_too_late(e: &flowshield_chain::ChainError) -> bool {
    matches!(
        e.market_error(),
        Some(BandwidthMarketErrors::PeriodOutOfRange(_))
    )
}
