//! `MarketClient` methods for the verifier side of `BandwidthMarket`: staking as a
//! verifier, reports (direct and EIP-712 signed), finalizing a period after its challenge
//! window, and pulling bonds, rewards and clients' slash shares.

use alloy::primitives::{Address, Bytes, B256, U256};
use alloy::rpc::types::TransactionReceipt;

use crate::bindings::VerifierQuorum;
use crate::market::{MarketClient, KIND};
use crate::tx;
use crate::voucher::Report;

/// A verifier's stake record (`VerifierQuorum.Verifier`).
pub type VerifierRecord = VerifierQuorum::Verifier;
/// The reports on one provider for one period and, once finalized, the outcome
/// (`VerifierQuorum.Tally`).
pub type Tally = VerifierQuorum::Tally;

impl MarketClient {
    // ------------------------------------------------------------- views

    /// Whether `account` has at least the minimum verifier stake (may report).
    pub async fn is_verifier(&self, account: Address) -> crate::Result<bool> {
        tx::call(KIND, "isVerifier", self.instance().isVerifier(account)).await
    }

    /// Verifier stake record (all zero if unknown).
    pub async fn verifier_record(&self, account: Address) -> crate::Result<VerifierRecord> {
        tx::call(KIND, "getVerifier", self.instance().getVerifier(account)).await
    }

    /// Current report period (`block.timestamp / reportPeriod`).
    pub async fn current_period(&self) -> crate::Result<u64> {
        tx::call(KIND, "currentPeriod", self.instance().currentPeriod()).await
    }

    /// Unix time at which reports for `period` close and `finalize` opens.
    pub async fn challenge_closes_at(&self, period: u64) -> crate::Result<u64> {
        let call = self.instance().challengeClosesAt(period);
        let t = tx::call(KIND, "challengeClosesAt", call).await?;
        Ok(t.saturating_to())
    }

    /// Whether `verifier` already reported on `provider` for `period`.
    pub async fn has_reported(
        &self,
        verifier: Address,
        provider: Address,
        period: u64,
    ) -> crate::Result<bool> {
        let call = self.instance().hasReported(verifier, provider, period);
        tx::call(KIND, "hasReported", call).await
    }

    /// Number of failing reports on `provider` for `period`.
    pub async fn fail_reports(&self, provider: Address, period: u64) -> crate::Result<u64> {
        let call = self.instance().failReports(provider, period);
        let n = tx::call(KIND, "failReports", call).await?;
        Ok(n.saturating_to())
    }

    /// Reports and outcome for `provider` and `period`.
    pub async fn tally(&self, provider: Address, period: u64) -> crate::Result<Tally> {
        tx::call(KIND, "getTally", self.instance().getTally(provider, period)).await
    }

    /// Whether `provider` was slashed for `period` (set by `finalize`).
    pub async fn slashed(&self, provider: Address, period: u64) -> crate::Result<bool> {
        tx::call(KIND, "slashed", self.instance().slashed(provider, period)).await
    }

    /// Slash proceeds owed to the order's client and not yet credited.
    pub async fn pending_slash_share(&self, order_id: U256) -> crate::Result<U256> {
        let call = self.instance().pendingSlashShare(order_id);
        tx::call(KIND, "pendingSlashShare", call).await
    }

    /// The contract's own report digest.
    pub async fn report_digest_on_chain(&self, r: &Report) -> crate::Result<B256> {
        let call = self
            .instance()
            .reportDigest(r.provider, r.period, r.passed, r.metricsHash);
        tx::call(KIND, "reportDigest", call).await
    }

    // ------------------------------------------------------------- staking

    /// Stake `amount` as a verifier (the first stake must reach the minimum). Reverts
    /// `ZeroAmount`, `InsufficientStake`, `EnforcedPause`.
    pub async fn join_verifiers(&self, amount: U256) -> crate::Result<TransactionReceipt> {
        let call = self.instance().joinVerifiers().value(amount);
        tx::send(KIND, "joinVerifiers", call).await
    }

    /// Start unbonding `amount` of verifier stake. Reverts `ZeroAmount`,
    /// `AmountExceedsStake`, `StakeBelowMinimum`.
    pub async fn request_verifier_unstake(
        &self,
        amount: U256,
    ) -> crate::Result<TransactionReceipt> {
        let call = self.instance().requestVerifierUnstake(amount);
        tx::send(KIND, "requestVerifierUnstake", call).await
    }

    /// Withdraw unbonded verifier stake after the delay. Reverts `NothingToWithdraw`,
    /// `UnbondingLocked`, `TransferFailed`.
    pub async fn withdraw_verifier_stake(&self) -> crate::Result<TransactionReceipt> {
        let call = self.instance().withdrawVerifierStake();
        tx::send(KIND, "withdrawVerifierStake", call).await
    }

    // ------------------------------------------------------------- reports

    /// Verifier reports on `provider` for `period` (running, or ended with its challenge
    /// window open); locks one report bond. Reverts `NotVerifier`, `NotRegistered`,
    /// `PeriodOutOfRange`, `DuplicateReport`, `BondExceedsStake`.
    pub async fn submit_report(&self, report: &Report) -> crate::Result<TransactionReceipt> {
        let call = self.instance().submitReport(
            report.provider,
            report.period,
            report.passed,
            report.metricsHash,
        );
        tx::send(KIND, "submitReport", call).await
    }

    /// Relay a report signed by a verifier ([`crate::voucher::sign_report`]). Same
    /// reverts as [`Self::submit_report`] plus `InvalidSignature`.
    pub async fn submit_signed_report(
        &self,
        report: &Report,
        signature: Bytes,
    ) -> crate::Result<TransactionReceipt> {
        let call = self.instance().submitSignedReport(
            report.provider,
            report.period,
            report.passed,
            report.metricsHash,
            signature,
        );
        tx::send(KIND, "submitSignedReport", call).await
    }

    /// Anyone, after the challenge window: judge `provider`'s `period`, slash it if the
    /// quorum failed it. Reverts `ChallengeWindowOpen`, `AlreadyFinalized`, `NoReports`.
    pub async fn finalize(
        &self,
        provider: Address,
        period: u64,
    ) -> crate::Result<TransactionReceipt> {
        tx::send(KIND, "finalize", self.instance().finalize(provider, period)).await
    }

    /// Anyone, after finalize: return `verifier`'s bond if it was right and credit its
    /// reward. Reverts `NotFinalized`, `NothingToClaim`.
    pub async fn claim_report(
        &self,
        verifier: Address,
        provider: Address,
        period: u64,
    ) -> crate::Result<TransactionReceipt> {
        let call = self.instance().claimReport(verifier, provider, period);
        tx::send(KIND, "claimReport", call).await
    }

    /// Anyone: credit the order's client with its escrow-weighted slash share so far.
    /// Reverts `UnknownOrder`.
    pub async fn claim_slash_share(&self, order_id: U256) -> crate::Result<TransactionReceipt> {
        let call = self.instance().claimSlashShare(order_id);
        tx::send(KIND, "claimSlashShare", call).await
    }
}
