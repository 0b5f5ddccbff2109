//! Probe results in SQLite (sqlx; migrations embedded from `migrations/`).
//!
//! `chain_reports` is the local once-per-(provider, period) record: a row is reserved
//! before a report is sent on chain and released only if sending fails for a reason
//! other than a duplicate, so a verifier never tries to report twice even if it
//! restarts between rounds.

use alloy::primitives::Address;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};
use sqlx::Row;
use std::path::Path;

use crate::error::Result;
use crate::report::ProbeRecord;

/// The result database.
#[derive(Debug, Clone)]
pub struct Store {
    pool: SqlitePool,
}

/// [`flowshield_proto::unix_ms`] as SQLite's integer.
fn now_ms() -> i64 {
    i64::try_from(flowshield_proto::unix_ms()).unwrap_or(i64::MAX)
}

fn addr(a: Address) -> String {
    format!("{a:#x}")
}

/// A (provider, period) this verifier probed and has not voted on yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnvotedPeriod {
    /// Provider address (as stored).
    pub provider: String,
    /// Report period.
    pub period: u64,
    /// The period's last probe (the vote's reservation points at it).
    pub last_probe_id: i64,
    /// `metrics_hash` of the period's last signed passing probe, if any.
    pub pass_metrics_hash: Option<String>,
}

/// A stored probe, as listed back.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredProbe {
    /// Row id.
    pub id: i64,
    /// Provider address.
    pub provider: String,
    /// Report period.
    pub period: Option<i64>,
    /// Verdict.
    pub passed: bool,
    /// Signature, if signed.
    pub signature: Option<String>,
}

impl Store {
    /// Open (creating if needed) the database at `path` and apply migrations.
    pub async fn open(path: &Path) -> Result<Self> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await?;
        sqlx::migrate!("./migrations").run(&pool).await?;
        Ok(Store { pool })
    }

    /// Store one probe; returns its id.
    pub async fn insert_probe(&self, r: &ProbeRecord) -> Result<i64> {
        let m = &r.metrics;
        let id = sqlx::query(
            "INSERT INTO probes (started_at_ms, target, provider, period, metrics_json,
                handshake_ms, rtt_p50_ms, loss_pct, throughput_mbps, passed, reasons_json,
                metrics_hash, signature, verifier)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(r.started_at_ms)
        .bind(&r.target)
        .bind(addr(r.provider))
        .bind(r.period.map(|p| p as i64))
        .bind(serde_json::to_string(m).unwrap_or_default())
        .bind(m.handshake_ms)
        .bind(m.rtt_p50_ms)
        .bind(m.loss_pct)
        .bind(m.throughput_mbps)
        .bind(r.verdict.passed)
        .bind(serde_json::to_string(&r.verdict.reasons).unwrap_or_default())
        .bind(r.signed.as_ref().map(|s| s.report.metrics_hash.clone()))
        .bind(r.signed.as_ref().map(|s| s.signature.clone()))
        .bind(r.signed.as_ref().map(|s| s.verifier.clone()))
        .execute(&self.pool)
        .await?
        .last_insert_rowid();
        Ok(id)
    }

    /// Probes of `provider`, newest first.
    pub async fn probes_of(&self, provider: Address) -> Result<Vec<StoredProbe>> {
        let rows = sqlx::query(
            "SELECT id, provider, period, passed, signature FROM probes
             WHERE provider = ? ORDER BY id DESC",
        )
        .bind(addr(provider))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(StoredProbe {
                    id: row.try_get("id")?,
                    provider: row.try_get("provider")?,
                    period: row.try_get("period")?,
                    passed: row.try_get("passed")?,
                    signature: row.try_get("signature")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }

    /// Verdicts (`true` = passed) of `provider`'s probes in `period`, oldest first: the
    /// input of [`crate::judge::decide`]. Durable, so a restart keeps a failing run.
    pub async fn period_results(&self, provider: Address, period: u64) -> Result<Vec<bool>> {
        let rows = sqlx::query(
            "SELECT passed FROM probes WHERE provider = ? AND period = ? ORDER BY id ASC",
        )
        .bind(addr(provider))
        .bind(period as i64)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| row.try_get("passed"))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }

    /// Periods in `from..until` with probes of a provider and no chain report (vote)
    /// recorded, oldest first.
    pub async fn unvoted_periods(&self, from: u64, until: u64) -> Result<Vec<UnvotedPeriod>> {
        let rows = sqlx::query(
            "SELECT p.provider, p.period, MAX(p.id) AS last_id,
                (SELECT q.metrics_hash FROM probes q
                  WHERE q.provider = p.provider AND q.period = p.period AND q.passed = 1
                    AND q.metrics_hash IS NOT NULL
                  ORDER BY q.id DESC LIMIT 1) AS pass_hash
             FROM probes p
             WHERE p.period >= ? AND p.period < ?
               AND NOT EXISTS (SELECT 1 FROM chain_reports c
                                WHERE c.provider = p.provider AND c.period = p.period)
             GROUP BY p.provider, p.period ORDER BY p.period, p.provider",
        )
        .bind(i64::try_from(from).unwrap_or(i64::MAX))
        .bind(i64::try_from(until).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let period: i64 = row.try_get("period")?;
                Ok(UnvotedPeriod {
                    provider: row.try_get("provider")?,
                    period: u64::try_from(period).unwrap_or_default(),
                    last_probe_id: row.try_get("last_id")?,
                    pass_metrics_hash: row.try_get("pass_hash")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }

    /// (provider, period) of recorded votes before `until` not yet claimed, oldest
    /// first.
    pub async fn unclaimed_votes(&self, until: u64) -> Result<Vec<(String, u64)>> {
        let rows = sqlx::query(
            "SELECT provider, period FROM chain_reports
             WHERE period < ? AND claimed_at_ms IS NULL ORDER BY period, provider",
        )
        .bind(i64::try_from(until).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let period: i64 = row.try_get("period")?;
                Ok((
                    row.try_get("provider")?,
                    u64::try_from(period).unwrap_or_default(),
                ))
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(Into::into)
    }

    /// Mark the vote on (`provider`, `period`) claimed (or found to have nothing to
    /// claim).
    pub async fn mark_claimed(&self, provider: &str, period: u64) -> Result<()> {
        sqlx::query("UPDATE chain_reports SET claimed_at_ms = ? WHERE provider = ? AND period = ?")
            .bind(now_ms())
            .bind(provider)
            .bind(i64::try_from(period).unwrap_or(i64::MAX))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Whether a chain report for (`provider`, `period`) is recorded.
    pub async fn has_chain_report(&self, provider: Address, period: u64) -> Result<bool> {
        let row = sqlx::query("SELECT 1 FROM chain_reports WHERE provider = ? AND period = ?")
            .bind(addr(provider))
            .bind(period as i64)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.is_some())
    }

    /// Reserve the (provider, period) slot; `false` if already taken.
    pub async fn reserve_chain_report(
        &self,
        provider: Address,
        period: u64,
        probe_id: i64,
    ) -> Result<bool> {
        let done = sqlx::query(
            "INSERT OR IGNORE INTO chain_reports (provider, period, probe_id, recorded_at_ms)
             VALUES (?, ?, ?, ?)",
        )
        .bind(addr(provider))
        .bind(period as i64)
        .bind(probe_id)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Record the transaction of a reserved slot.
    pub async fn confirm_chain_report(
        &self,
        provider: Address,
        period: u64,
        tx_hash: &str,
    ) -> Result<()> {
        sqlx::query("UPDATE chain_reports SET tx_hash = ? WHERE provider = ? AND period = ?")
            .bind(tx_hash)
            .bind(addr(provider))
            .bind(period as i64)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Release a reserved slot after a failed submission (so a later round retries).
    pub async fn release_chain_report(&self, provider: Address, period: u64) -> Result<()> {
        sqlx::query(
            "DELETE FROM chain_reports WHERE provider = ? AND period = ? AND tx_hash IS NULL",
        )
        .bind(addr(provider))
        .bind(period as i64)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Record one delivery attempt series to a fullnode.
    pub async fn record_publication(
        &self,
        probe_id: i64,
        fullnode: &str,
        delivered: bool,
        attempts: u32,
        detail: &str,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO publications (probe_id, fullnode, delivered, attempts, detail, at_ms)
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(probe_id)
        .bind(fullnode)
        .bind(delivered)
        .bind(attempts)
        .bind(detail)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Number of delivered publications of `probe_id`.
    pub async fn delivered_count(&self, probe_id: i64) -> Result<i64> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n FROM publications WHERE probe_id = ? AND delivered = 1",
        )
        .bind(probe_id)
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get("n")?)
    }
}
