//! Verifier reports: what `POST /v1/reports` accepts, how it is checked,
//! stored and turned into reputation.
//!
//! The body is the verifier's `SignedReport` JSON; its shape, domain,
//! metrics hash and strict signature are checked by
//! [`flowshield_proto::report::verify_report`] (sans-IO, the same code the
//! verifier signs against; each failure names its field). Whether
//! `verifier` is admitted on chain (`isVerifier`) is asked by
//! [`VerifierRegistry`], cached; the report's period must be the market's
//! current one or the one before ([`period`], as the contract requires).
//!
//! Reports attach to the provider's chain address (what the contract
//! slashes and the stake gate binds to a PeerId), never to a PeerId. The
//! SQL store and the in-memory [`crate::fullnode::reputation`] book hold the
//! same providers: when the book evicts one to stay under its cap, its
//! stored reports are deleted.

pub mod period;
mod verifiers;

use crate::fullnode::index::ProviderIndex;
use crate::fullnode::metrics::Metrics;
use crate::fullnode::reputation::SharedReputation;
use crate::net::NetHandle;
use crate::unix_ms;
use flowshield_chain::alloy::primitives::Address;
use flowshield_chain::alloy::sol_types::Eip712Domain;
use flowshield_proto::report::{verify_report, CheckedReport, InvalidReport};
use flowshield_proto::ChainAddress;
use libp2p::gossipsub::MessageAcceptance;
use period::OutOfWindow;
use sqlx::Row;

pub use flowshield_proto::report::MAX_REPORT_BODY;
pub use verifiers::{VerifierRegistry, DEFAULT_MAX_VERIFIERS};

/// Why a report was refused.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error("verifier {0} is not registered with the market")]
    NotVerifier(Address),
    #[error("asking the chain whether {verifier} is a verifier: {reason}")]
    Chain { verifier: Address, reason: String },
    #[error("period: {0}")]
    Period(#[from] OutOfWindow),
    #[error("report store: {0}")]
    Store(#[from] sqlx::Error),
}

impl ReportError {
    /// A short stable label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Invalid {
                field: "signature", ..
            } => "bad_signature",
            Self::Invalid { .. } => "invalid",
            Self::NotVerifier(_) => "not_verifier",
            Self::Chain { .. } => "chain_unavailable",
            Self::Period(e) => e.reason(),
            Self::Store(_) => "store_error",
        }
    }

    /// Every label [`ReportError::reason`] returns, plus `accepted` and
    /// `duplicate`.
    pub const RESULTS: [&'static str; 9] = [
        "accepted",
        "duplicate",
        "bad_signature",
        "invalid",
        "not_verifier",
        "future_period",
        "stale_period",
        "chain_unavailable",
        "store_error",
    ];
}

/// A report whose signature checked out (the verifier is not yet known to
/// be registered).
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedReport {
    pub provider: Address,
    pub period: u64,
    pub passed: bool,
    pub verifier: Address,
    /// The body exactly as received, for storage, listing and gossip.
    pub body: String,
}

impl VerifiedReport {
    pub fn provider_key(&self) -> ChainAddress {
        ChainAddress(self.provider.into_array())
    }
}

impl From<InvalidReport> for ReportError {
    fn from(e: InvalidReport) -> Self {
        ReportError::Invalid {
            field: e.field,
            reason: e.reason,
        }
    }
}

/// Parses a report body and checks its domain, metrics hash and signature.
pub fn parse_report(body: &[u8], domain: &Eip712Domain) -> Result<VerifiedReport, ReportError> {
    let CheckedReport { report, verifier } = verify_report(body, domain)?;
    Ok(VerifiedReport {
        provider: report.provider,
        period: report.period,
        passed: report.passed,
        verifier,
        // verify_report refused anything but UTF-8.
        body: String::from_utf8_lossy(body).into_owned(),
    })
}

/// Everything that handles reports: checks, storage, reputation, gossip.
pub struct ReportService {
    pub registry: VerifierRegistry,
    pub store: ReportStore,
    pub reputation: SharedReputation,
    pub metrics: Metrics,
    pub net: NetHandle,
}

impl ReportService {
    /// Checks and stores a report; `Ok(true)` if it was new (and now counts
    /// towards reputation), `Ok(false)` if it was already stored.
    async fn accept(&self, body: &[u8]) -> Result<(VerifiedReport, bool), ReportError> {
        let report = parse_report(body, self.registry.domain())?;
        self.registry.check(report.verifier).await?;
        self.registry.check_period(report.period).await?;
        let new = self.store.insert(&report, unix_ms()).await?;
        if new {
            let evicted = match self.reputation.write() {
                Ok(mut book) => book.record(report.provider_key(), report.period, report.passed),
                Err(_) => None,
            };
            if let Some(gone) = evicted {
                self.store.forget(&Address::from(gone.0)).await?;
            }
        }
        Ok((report, new))
    }

    fn count(&self, source: &str, result: &Result<(VerifiedReport, bool), ReportError>) {
        let label = match result {
            Ok((_, true)) => "accepted",
            Ok((_, false)) => "duplicate",
            Err(e) => e.reason(),
        };
        self.metrics
            .reports
            .with_label_values(&[source, label])
            .inc();
    }

    /// `POST /v1/reports`: a new report is also gossiped to other fullnodes.
    pub async fn accept_http(&self, body: &[u8]) -> Result<(VerifiedReport, bool), ReportError> {
        let result = self.accept(body).await;
        self.count("http", &result);
        if let Ok((report, true)) = &result {
            tracing::info!(provider = %report.provider, period = report.period,
                verifier = %report.verifier, passed = report.passed, "report accepted");
            if let Err(e) = self.net.publish_report(body.to_vec()).await {
                tracing::debug!(error = %e, "report not gossiped (no other fullnode?)");
            }
        }
        result
    }

    /// A report from gossip: forwarded only if it is new and valid.
    pub async fn accept_gossip(&self, data: &[u8]) -> MessageAcceptance {
        let result = self.accept(data).await;
        self.count("gossip", &result);
        match result {
            Ok((_, true)) => MessageAcceptance::Accept,
            // A relay's clock may put a report on the other side of a
            // period boundary: not a reason to penalise it.
            Ok((_, false))
            | Err(ReportError::Chain { .. } | ReportError::Store(_) | ReportError::Period(_)) => {
                MessageAcceptance::Ignore
            }
            Err(e) => {
                tracing::info!(error = %e, "gossiped report refused");
                MessageAcceptance::Reject
            }
        }
    }
}

/// Reports in SQL, next to the provider index.
#[derive(Debug, Clone)]
pub struct ReportStore {
    index: ProviderIndex,
}

/// One stored report, as listed.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredReport {
    pub provider: String,
    pub period: u64,
    pub verifier: String,
    pub passed: bool,
    pub received_ms: u64,
    pub body: String,
}

impl ReportStore {
    pub fn new(index: ProviderIndex) -> Self {
        Self { index }
    }

    /// Stores a report; `false` if this (provider, period, verifier) was
    /// already stored.
    pub async fn insert(&self, report: &VerifiedReport, now_ms: u64) -> Result<bool, ReportError> {
        let done = sqlx::query(
            "INSERT INTO reports (provider, period, verifier, passed, received_ms, body) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (provider, period, verifier) DO NOTHING",
        )
        .bind(format!("{:#x}", report.provider))
        .bind(i64::try_from(report.period).unwrap_or(i64::MAX))
        .bind(format!("{:#x}", report.verifier))
        .bind(i64::from(report.passed))
        .bind(i64::try_from(now_ms).unwrap_or(i64::MAX))
        .bind(report.body.clone())
        .execute(self.index.pool())
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// The newest reports on `provider` (lowercase 0x address), newest
    /// period first.
    pub async fn list(
        &self,
        provider: &Address,
        limit: u32,
    ) -> Result<Vec<StoredReport>, ReportError> {
        let rows = sqlx::query(
            "SELECT provider, period, verifier, passed, received_ms, body FROM reports \
             WHERE provider = $1 ORDER BY period DESC, verifier LIMIT $2",
        )
        .bind(format!("{provider:#x}"))
        .bind(i64::from(limit))
        .fetch_all(self.index.pool())
        .await?;
        rows.iter().map(decode).collect()
    }

    /// Deletes every report on `provider` (evicted from the reputation
    /// book, which must hold what SQL holds).
    pub async fn forget(&self, provider: &Address) -> Result<u64, ReportError> {
        let done = sqlx::query("DELETE FROM reports WHERE provider = $1")
            .bind(format!("{provider:#x}"))
            .execute(self.index.pool())
            .await?;
        Ok(done.rows_affected())
    }

    /// Every stored (provider, period, passed), to rebuild reputation at
    /// start; oldest first, so a book smaller than the store keeps the
    /// providers reported on most recently.
    pub async fn tallies(&self) -> Result<Vec<(ChainAddress, u64, bool)>, ReportError> {
        let rows = sqlx::query(
            "SELECT provider, period, verifier, passed, received_ms, body FROM reports \
             ORDER BY received_ms",
        )
        .fetch_all(self.index.pool())
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let report = decode(row)?;
            if let Ok(provider) = report.provider.parse::<ChainAddress>() {
                out.push((provider, report.period, report.passed));
            }
        }
        Ok(out)
    }
}

fn decode(row: &sqlx::any::AnyRow) -> Result<StoredReport, ReportError> {
    let period: i64 = row.try_get("period")?;
    let passed: i64 = row.try_get("passed")?;
    let received_ms: i64 = row.try_get("received_ms")?;
    Ok(StoredReport {
        provider: row.try_get("provider")?,
        period: period.max(0) as u64,
        verifier: row.try_get("verifier")?,
        passed: passed != 0,
        received_ms: received_ms.max(0) as u64,
        body: row.try_get("body")?,
    })
}
