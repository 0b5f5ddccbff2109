//! The fullnode's provider index: the latest verified heartbeat of every
//! provider heard from recently, in SQL.
//!
//! One code path serves SQLite (the default, `sqlite://FILE`) and Postgres
//! (`postgres://...`) through sqlx's `Any` driver: the queries use only
//! `$N` placeholders (but multi-row writes, which use `?` on SQLite: see
//! `ROWS_PER_STATEMENT`), `INSERT ... ON CONFLICT DO UPDATE ... WHERE`,
//! `UPDATE ... FROM (VALUES ...)`, TEXT and BIGINT, which both accept.
//! Migrations are embedded in the binary.
//!
//! Prices are `u128` wei, wider than any SQL integer both databases share,
//! so they are stored as 39-digit zero-padded decimal text: for equal-length
//! digit strings text order is numeric order, which lets SQL filter and sort
//! by price. (On Postgres the columns use the "C" collation so no locale
//! can reorder them.)
//!
//! `cargo test` covers SQLite; the same checks run on Postgres when
//! `FLOWSHIELD_TEST_POSTGRES_URL` is set (`scripts/test-market-postgres.sh`
//! installs and starts a local server and sets it).

use flowshield_proto::{Heartbeat, Offer, PeerId, Region, SignedMessage};
use futures::future::BoxFuture;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};
use sqlx::{AnyPool, Row};
use std::borrow::Cow;

/// Why the index failed.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("database {url}: {source}")]
    Connect { url: String, source: sqlx::Error },
    #[error("migrating the provider index: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("provider index query failed: {0}")]
    Query(#[from] sqlx::Error),
    #[error("provider index holds a corrupt row for {peer_id}: {reason}")]
    Corrupt { peer_id: String, reason: String },
    #[error("unsupported database URL '{0}' (use sqlite:// or postgres://)")]
    UnsupportedUrl(String),
}

/// One indexed provider.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexedProvider {
    pub offer: Offer,
    pub seq: u64,
    pub timestamp_ms: u64,
    /// When this fullnode last accepted a heartbeat from it.
    pub last_seen_ms: u64,
    /// The heartbeat as signed, so a client can verify it itself.
    pub signed_heartbeat: String,
}

impl IndexedProvider {
    /// The entry for a verified heartbeat accepted at `now_ms`.
    pub fn new(heartbeat: &Heartbeat, signed: &SignedMessage<Heartbeat>, now_ms: u64) -> Self {
        let envelope = String::from_utf8_lossy(&signed.to_bytes()).into_owned();
        Self::with_envelope(heartbeat, envelope, now_ms)
    }

    /// [`Self::new`] with the envelope already as text.
    pub fn with_envelope(heartbeat: &Heartbeat, envelope: String, now_ms: u64) -> Self {
        Self {
            offer: heartbeat.offer.clone(),
            seq: heartbeat.seq,
            timestamp_ms: heartbeat.timestamp_ms,
            last_seen_ms: now_ms,
            signed_heartbeat: envelope,
        }
    }
}

/// Filters for [`ProviderIndex::query`]; `None` means any.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProviderQuery {
    pub region: Option<Region>,
    pub max_price_per_gib_wei: Option<u128>,
    pub min_capacity_mbps: Option<u32>,
    pub limit: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres,
}

/// (version, name, SQLite, Postgres), in order.
const MIGRATIONS: [(i64, &str, &str, &str); 2] = [
    (
        1,
        "providers",
        include_str!("../../migrations/sqlite/0001_providers.sql"),
        include_str!("../../migrations/postgres/0001_providers.sql"),
    ),
    (
        2,
        "reports",
        include_str!("../../migrations/sqlite/0002_reports.sql"),
        include_str!("../../migrations/postgres/0002_reports.sql"),
    ),
];

/// Most rows one multi-row statement writes (a power of two). A batch is
/// written in statements of power-of-two row counts (64, then 32, 16, ...
/// for the rest), so there are only a few distinct statements and each is
/// parsed once and then taken from the connection's statement cache. Kept
/// small because SQLite looks numbered parameters up by a linear scan
/// (when parsing and when binding), quadratic in a statement's parameters:
/// 500-row statements spent more time there than writing.
const ROWS_PER_STATEMENT: usize = 64;

/// The row counts of the statements that write `rows` rows: powers of two
/// of at most [`ROWS_PER_STATEMENT`], largest first.
fn statement_rows(mut rows: usize) -> impl Iterator<Item = usize> {
    std::iter::from_fn(move || {
        if rows == 0 {
            return None;
        }
        let size = if rows >= ROWS_PER_STATEMENT {
            ROWS_PER_STATEMENT
        } else {
            1 << rows.ilog2()
        };
        rows -= size;
        Some(size)
    })
}

/// Splits `records` into the statements [`statement_rows`] sizes.
fn statements<T>(records: &[T]) -> impl Iterator<Item = &[T]> {
    let mut rest = records;
    statement_rows(records.len()).map(move |size| {
        let (chunk, tail) = rest.split_at(size);
        rest = tail;
        chunk
    })
}

#[derive(Debug)]
struct EmbeddedMigrations(Backend);

impl MigrationSource<'static> for EmbeddedMigrations {
    fn resolve(self) -> BoxFuture<'static, Result<Vec<Migration>, sqlx::error::BoxDynError>> {
        let backend = self.0;
        Box::pin(async move {
            Ok(MIGRATIONS
                .iter()
                .map(|(version, name, sqlite, postgres)| {
                    let sql = match backend {
                        Backend::Sqlite => sqlite,
                        Backend::Postgres => postgres,
                    };
                    Migration::new(
                        *version,
                        Cow::Borrowed(*name),
                        MigrationType::Simple,
                        Cow::Borrowed(*sql),
                        false,
                    )
                })
                .collect())
        })
    }
}

/// Pads a wei amount to 39 digits so text order is numeric order.
fn price_key(wei: u128) -> String {
    format!("{wei:039}")
}

fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

const COLUMNS: &str = "offer_json, seq, timestamp_ms, last_seen_ms, signed_heartbeat, peer_id";

/// The provider index.
#[derive(Debug, Clone)]
pub struct ProviderIndex {
    pool: AnyPool,
    backend: Backend,
}

impl ProviderIndex {
    /// Connects (creating a SQLite file if needed) and migrates.
    pub async fn connect(url: &str) -> Result<Self, IndexError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(IndexError::UnsupportedUrl(url.chars().take(32).collect()));
        };
        let connect_url = match backend {
            Backend::Sqlite if !url.contains("mode=") && !url.contains(":memory:") => {
                let sep = if url.contains('?') { '&' } else { '?' };
                format!("{url}{sep}mode=rwc")
            }
            _ => url.to_string(),
        };
        // SQLite allows one writer; a small pool avoids "database is locked".
        let max_connections = if backend == Backend::Sqlite { 1 } else { 8 };
        let pool = AnyPoolOptions::new()
            .max_connections(max_connections)
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // WAL with NORMAL sync: a batch commit costs no
                        // fsync of the main file, and a crash loses at most
                        // the last batches, never consistency. Heartbeats
                        // are re-sent every few seconds anyway.
                        sqlx::query("PRAGMA journal_mode = WAL")
                            .execute(&mut *conn)
                            .await?;
                        sqlx::query("PRAGMA synchronous = NORMAL")
                            .execute(&mut *conn)
                            .await?;
                    }
                    Ok(())
                })
            })
            .connect(&connect_url)
            .await
            .map_err(|source| IndexError::Connect {
                // Never echo credentials a Postgres URL may carry.
                url: url.split('@').next_back().unwrap_or(url).to_string(),
                source,
            })?;
        Migrator::new(EmbeddedMigrations(backend))
            .await?
            .run(&pool)
            .await?;
        Ok(Self { pool, backend })
    }

    /// Inserts or replaces a provider's entry with a newer verified
    /// heartbeat; an older one (by timestamp) leaves the entry as it is.
    pub async fn upsert(
        &self,
        heartbeat: &Heartbeat,
        signed: &SignedMessage<Heartbeat>,
        now_ms: u64,
    ) -> Result<(), IndexError> {
        let record = IndexedProvider::new(heartbeat, signed, now_ms);
        self.upsert_batch(std::slice::from_ref(&record)).await
    }

    /// [`ProviderIndex::upsert`] for many providers (at most one record per
    /// provider) in one transaction, a few hundred rows per statement: how
    /// the fullnode writes thousands of heartbeats a second.
    pub async fn upsert_batch(&self, records: &[IndexedProvider]) -> Result<(), IndexError> {
        self.write_batch(records, &[]).await
    }

    /// One transaction: `changed` rows are upserted whole; `bumps` (same
    /// offer as the stored row, newer heartbeat) only update seq,
    /// timestamps and the signed heartbeat in place, which touches no
    /// price or region index.
    pub async fn write_batch(
        &self,
        changed: &[IndexedProvider],
        bumps: &[IndexedProvider],
    ) -> Result<(), IndexError> {
        if changed.is_empty() && bumps.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        // One statement per chunk, not per row: with SQLite every
        // statement is a round trip to the connection's thread, and bumps
        // are most of the rows a busy fullnode writes.
        for chunk in statements(bumps) {
            let sql = bump_sql(self.backend, chunk.len());
            let mut q = sqlx::query(&sql);
            for record in chunk {
                q = q
                    .bind(record.offer.provider_peer_id.to_base58())
                    .bind(record.seq.to_string())
                    .bind(to_i64(record.timestamp_ms))
                    .bind(to_i64(record.last_seen_ms))
                    .bind(record.signed_heartbeat.clone());
            }
            q.execute(&mut *tx).await?;
        }
        let records = changed;
        for chunk in statements(records) {
            let sql = upsert_sql(self.backend, chunk.len());
            let mut q = sqlx::query(&sql);
            for record in chunk {
                let offer = &record.offer;
                let offer_json = serde_json::to_string(offer).map_err(|e| IndexError::Corrupt {
                    peer_id: offer.provider_peer_id.to_base58(),
                    reason: e.to_string(),
                })?;
                q = q
                    .bind(offer.provider_peer_id.to_base58())
                    .bind(offer.region.as_str().to_string())
                    .bind(price_key(offer.price_per_gib_wei))
                    .bind(price_key(offer.price_per_hour_wei))
                    .bind(i64::from(offer.capacity_mbps))
                    .bind(i64::from(offer.max_clients))
                    .bind(record.seq.to_string())
                    .bind(to_i64(record.timestamp_ms))
                    .bind(to_i64(record.last_seen_ms))
                    .bind(offer_json)
                    .bind(record.signed_heartbeat.clone());
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Removes one provider (e.g. whose certificate stopped matching).
    pub async fn remove(&self, peer_id: &PeerId) -> Result<bool, IndexError> {
        let done = sqlx::query("DELETE FROM providers WHERE peer_id = $1")
            .bind(peer_id.to_base58())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Removes providers not heard from since `cutoff_ms`; returns how many.
    pub async fn expire(&self, cutoff_ms: u64) -> Result<u64, IndexError> {
        let done = sqlx::query("DELETE FROM providers WHERE last_seen_ms < $1")
            .bind(to_i64(cutoff_ms))
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    /// Providers matching `query`, cheapest first.
    pub async fn query(&self, query: &ProviderQuery) -> Result<Vec<IndexedProvider>, IndexError> {
        let mut sql = format!("SELECT {COLUMNS} FROM providers WHERE 1 = 1");
        let mut n = 0;
        let mut next = || {
            n += 1;
            format!("${n}")
        };
        if query.region.is_some() {
            sql += &format!(" AND region = {}", next());
        }
        if query.max_price_per_gib_wei.is_some() {
            sql += &format!(" AND price_per_gib_key <= {}", next());
        }
        if query.min_capacity_mbps.is_some() {
            sql += &format!(" AND capacity_mbps >= {}", next());
        }
        sql += &format!(" ORDER BY price_per_gib_key, peer_id LIMIT {}", next());
        let mut q = sqlx::query(&sql);
        if let Some(region) = &query.region {
            q = q.bind(region.as_str().to_string());
        }
        if let Some(price) = query.max_price_per_gib_wei {
            q = q.bind(price_key(price));
        }
        if let Some(capacity) = query.min_capacity_mbps {
            q = q.bind(i64::from(capacity));
        }
        q = q.bind(i64::from(query.limit));
        let rows = q.fetch_all(&self.pool).await?;
        rows.iter().map(decode_row).collect()
    }

    /// How many providers are indexed.
    pub async fn count(&self) -> Result<u64, IndexError> {
        let count: i64 = sqlx::query("SELECT COUNT(*) FROM providers")
            .fetch_one(&self.pool)
            .await?
            .try_get(0)?;
        Ok(count.max(0) as u64)
    }

    /// The connection pool, for other tables in the same database.
    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Placeholders for `rows` rows of `cols` values: `(?, ?), (?, ?), ...`
/// for SQLite (bound in order, with no name to look up), `($1, $2), ($3,
/// $4), ...` for Postgres.
fn values_sql(backend: Backend, rows: usize, cols: usize) -> String {
    let mut sql = String::new();
    for row in 0..rows {
        if row > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for col in 0..cols {
            if col > 0 {
                sql.push_str(", ");
            }
            match backend {
                Backend::Sqlite => sql.push('?'),
                Backend::Postgres => sql.push_str(&format!("${}", row * cols + col + 1)),
            }
        }
        sql.push(')');
    }
    sql
}

/// Updates the heartbeat columns of existing rows from `rows` rows of
/// (peer_id, seq, timestamp_ms, last_seen_ms, signed_heartbeat), each only
/// if it is not older than the stored one; inserts nothing. `UPDATE ...
/// FROM (VALUES ...)` with the VALUES columns' default names `columnN`,
/// which SQLite (3.33+) and Postgres share.
fn bump_sql(backend: Backend, rows: usize) -> String {
    format!(
        "UPDATE providers SET seq = v.column2, timestamp_ms = v.column3, \
         last_seen_ms = v.column4, signed_heartbeat = v.column5 \
         FROM (VALUES {}) AS v \
         WHERE providers.peer_id = v.column1 AND providers.timestamp_ms <= v.column3",
        values_sql(backend, rows, 5)
    )
}

/// `INSERT ... VALUES (...), (...) ON CONFLICT DO UPDATE` for `rows` rows;
/// a row only replaces an entry that is not newer.
fn upsert_sql(backend: Backend, rows: usize) -> String {
    const COLS: usize = 11;
    let mut sql = String::from(
        "INSERT INTO providers (peer_id, region, price_per_gib_key, price_per_hour_key, \
         capacity_mbps, max_clients, seq, timestamp_ms, last_seen_ms, offer_json, signed_heartbeat) VALUES ",
    );
    sql.push_str(&values_sql(backend, rows, COLS));
    sql.push_str(
        " ON CONFLICT (peer_id) DO UPDATE SET region = excluded.region, \
         price_per_gib_key = excluded.price_per_gib_key, \
         price_per_hour_key = excluded.price_per_hour_key, \
         capacity_mbps = excluded.capacity_mbps, max_clients = excluded.max_clients, \
         seq = excluded.seq, timestamp_ms = excluded.timestamp_ms, \
         last_seen_ms = excluded.last_seen_ms, offer_json = excluded.offer_json, \
         signed_heartbeat = excluded.signed_heartbeat \
         WHERE providers.timestamp_ms <= excluded.timestamp_ms",
    );
    sql
}

fn decode_row(row: &AnyRow) -> Result<IndexedProvider, IndexError> {
    let peer_id: String = row.try_get("peer_id")?;
    let corrupt = |reason: String| IndexError::Corrupt {
        peer_id: peer_id.clone(),
        reason,
    };
    let offer_json: String = row.try_get("offer_json")?;
    let offer: Offer = serde_json::from_str(&offer_json).map_err(|e| corrupt(e.to_string()))?;
    let seq: String = row.try_get("seq")?;
    let timestamp_ms: i64 = row.try_get("timestamp_ms")?;
    let last_seen_ms: i64 = row.try_get("last_seen_ms")?;
    Ok(IndexedProvider {
        offer,
        seq: seq.parse().map_err(|_| corrupt(format!("seq '{seq}'")))?,
        timestamp_ms: timestamp_ms.max(0) as u64,
        last_seen_ms: last_seen_ms.max(0) as u64,
        signed_heartbeat: row.try_get("signed_heartbeat")?,
    })
}

#[cfg(test)]
#[path = "index_tests.rs"]
mod tests;
