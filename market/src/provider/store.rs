//! The provider's durable session state: one [`SessionRecord`] per order it
//! took on and one [`AddedPeer`] per WireGuard peer it put on its data
//! plane, in SQL, written before the client is told yes (a `Connect`
//! accepted, a voucher taken) so that a crash never loses what a client
//! was promised or what it paid.
//!
//! One code path serves SQLite (`sqlite://FILE`, the default) and Postgres
//! (`postgres://...`) through sqlx's `Any` driver, like the fullnode's
//! index ([`crate::fullnode::index`]), with its own embedded migrations
//! (`migrations/provider-{sqlite,postgres}/`). Give it a database of its
//! own: sqlx keeps one migration history per database.
//!
//! **Durability.** SQLite runs in WAL mode with `synchronous = FULL`: each
//! commit fsyncs the log, so an acknowledged voucher survives a power cut,
//! not only a killed process (`NORMAL` would lose the last commits on power
//! loss, and a voucher is money). Vouchers arrive every few seconds per
//! session, so one fsync each costs little. Postgres commits are durable
//! with its default `synchronous_commit = on`. Every change is one
//! statement, its own transaction.
//!
//! **Amounts** (U256 wei) are 78-digit zero-padded decimal text, so text
//! order is numeric order and a write can refuse to lower the best voucher
//! or the redeemed amount: an older write arriving late changes nothing.
//!
//! A row that does not parse gives [`StoreError::Corrupt`] naming the order
//! and the column, never a panic.

use crate::session::record::{AddedPeer, RecordState, SessionRecord};
use flowshield_chain::alloy::primitives::{Address, Bytes, U256};
use flowshield_chain::voucher::SignedVoucher;
use flowshield_proto::{PeerId, WgPublicKey};
use futures::future::BoxFuture;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};
use sqlx::{AnyPool, Row};
use std::borrow::Cow;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// Why the session store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("session store {url}: {source}")]
    Connect { url: String, source: sqlx::Error },
    #[error("session store file {path}: {source}")]
    File {
        path: String,
        source: std::io::Error,
    },
    #[error("migrating the session store: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("session store query failed: {0}")]
    Query(#[from] sqlx::Error),
    #[error("session store holds a corrupt {table} row for {key}: column {column}: {reason}")]
    Corrupt {
        table: &'static str,
        key: String,
        column: &'static str,
        reason: String,
    },
    #[error("unsupported session store URL '{0}' (use sqlite:// or postgres://)")]
    UnsupportedUrl(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres,
}

/// (version, name, SQLite, Postgres), in order.
const MIGRATIONS: [(i64, &str, &str, &str); 1] = [(
    1,
    "provider_sessions",
    include_str!("../../migrations/provider-sqlite/0001_sessions.sql"),
    include_str!("../../migrations/provider-postgres/0001_sessions.sql"),
)];

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

/// A U256 as 78 zero-padded digits (2^256 has 78), so text order is
/// numeric order.
fn amount_key(wei: U256) -> String {
    format!("{:0>78}", wei.to_string())
}

fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// The file a `sqlite://` URL names, if any (not `:memory:`).
fn sqlite_path(url: &str) -> Option<&str> {
    let rest = url
        .strip_prefix("sqlite://")
        .or(url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty() && !path.contains(":memory:")).then_some(path)
}

/// Creates the SQLite file readable by its owner only (it lists clients and
/// their vouchers); an existing file keeps its mode.
fn create_private(path: &str) -> Result<(), StoreError> {
    use std::os::unix::fs::OpenOptionsExt;
    let err = |source| StoreError::File {
        path: path.to_string(),
        source,
    };
    if let Some(dir) = std::path::Path::new(path).parent() {
        if !dir.as_os_str().is_empty() {
            std::fs::create_dir_all(dir).map_err(err)?;
        }
    }
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(err(e)),
    }
}

const SESSION_COLUMNS: &str = "order_id, client, client_peer, wg_key, address, escrow, state, \
     best_amount, best_signature, redeemed, accepted_at_ms, last_voucher_ms, updated_ms";

/// The provider's session store.
#[derive(Debug, Clone)]
pub struct SessionStore {
    pool: AnyPool,
}

impl SessionStore {
    /// Connects (creating a SQLite file, mode 0600, if needed) and migrates.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(StoreError::UnsupportedUrl(url.chars().take(32).collect()));
        };
        if let Some(path) = sqlite_path(url).filter(|_| backend == Backend::Sqlite) {
            create_private(path)?;
        }
        // SQLite allows one writer; one connection avoids "database is locked".
        let max_connections = if backend == Backend::Sqlite { 1 } else { 4 };
        let pool = AnyPoolOptions::new()
            .max_connections(max_connections)
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // See the module doc: FULL, because an
                        // acknowledged voucher must survive a power cut.
                        sqlx::query("PRAGMA journal_mode = WAL")
                            .execute(&mut *conn)
                            .await?;
                        sqlx::query("PRAGMA synchronous = FULL")
                            .execute(&mut *conn)
                            .await?;
                    }
                    Ok(())
                })
            })
            .connect(url)
            .await
            .map_err(|source| StoreError::Connect {
                // Never echo credentials a Postgres URL may carry.
                url: url.split('@').next_back().unwrap_or(url).to_string(),
                source,
            })?;
        Migrator::new(EmbeddedMigrations(backend))
            .await?
            .run(&pool)
            .await?;
        Ok(Self { pool })
    }

    /// Records a new session (or replaces the record of the same order).
    pub async fn put_session(&self, record: &SessionRecord) -> Result<(), StoreError> {
        let (best_amount, best_signature) = match &record.best {
            Some(v) => (
                Some(amount_key(v.cumulative_amount)),
                Some(v.signature.to_string()),
            ),
            None => (None, None),
        };
        let sql = format!(
            "INSERT INTO provider_sessions ({SESSION_COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
             ON CONFLICT (order_id) DO UPDATE SET client = excluded.client, \
             client_peer = excluded.client_peer, wg_key = excluded.wg_key, \
             address = excluded.address, escrow = excluded.escrow, state = excluded.state, \
             best_amount = excluded.best_amount, best_signature = excluded.best_signature, \
             redeemed = excluded.redeemed, accepted_at_ms = excluded.accepted_at_ms, \
             last_voucher_ms = excluded.last_voucher_ms, updated_ms = excluded.updated_ms"
        );
        sqlx::query(&sql)
            .bind(amount_key(record.order_id))
            .bind(record.client.to_string())
            .bind(record.client_peer.to_string())
            .bind(record.wg_key.to_string())
            .bind(record.address.to_string())
            .bind(amount_key(record.escrow))
            .bind(record.state.as_str())
            .bind(best_amount)
            .bind(best_signature)
            .bind(amount_key(record.redeemed))
            .bind(to_i64(record.accepted_at_ms))
            .bind(to_i64(record.last_voucher_ms))
            .bind(to_i64(record.updated_ms))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Moves a session to `state`; `false` if there is no such record.
    pub async fn set_state(
        &self,
        order_id: U256,
        state: RecordState,
        now_ms: u64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE provider_sessions SET state = $1, updated_ms = $2 WHERE order_id = $3",
        )
        .bind(state.as_str())
        .bind(to_i64(now_ms))
        .bind(amount_key(order_id))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Records a better voucher. `false` if the record is missing or already
    /// holds one at least as high (which it keeps).
    pub async fn record_voucher(
        &self,
        voucher: &SignedVoucher,
        now_ms: u64,
    ) -> Result<bool, StoreError> {
        let amount = amount_key(voucher.cumulative_amount);
        let done = sqlx::query(
            "UPDATE provider_sessions SET best_amount = $1, best_signature = $2, \
             last_voucher_ms = $3, updated_ms = $3 \
             WHERE order_id = $4 AND (best_amount IS NULL OR best_amount < $1)",
        )
        .bind(amount)
        .bind(voucher.signature.to_string())
        .bind(to_i64(now_ms))
        .bind(amount_key(voucher.order_id))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Records what the chain has paid on an order (never lowering it) and
    /// its escrow as last read.
    pub async fn record_redeemed(
        &self,
        order_id: U256,
        redeemed: U256,
        now_ms: u64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE provider_sessions SET redeemed = $1, updated_ms = $2 \
             WHERE order_id = $3 AND redeemed < $1",
        )
        .bind(amount_key(redeemed))
        .bind(to_i64(now_ms))
        .bind(amount_key(order_id))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Forgets a session whose order has ended on chain.
    pub async fn remove_session(&self, order_id: U256) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM provider_sessions WHERE order_id = $1")
            .bind(amount_key(order_id))
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// One session's record.
    pub async fn session(&self, order_id: U256) -> Result<Option<SessionRecord>, StoreError> {
        let sql = format!("SELECT {SESSION_COLUMNS} FROM provider_sessions WHERE order_id = $1");
        let row = sqlx::query(&sql)
            .bind(amount_key(order_id))
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(session_from_row).transpose()
    }

    /// Every recorded session, by order id.
    pub async fn sessions(&self) -> Result<Vec<SessionRecord>, StoreError> {
        let sql = format!("SELECT {SESSION_COLUMNS} FROM provider_sessions ORDER BY order_id");
        let rows = sqlx::query(&sql).fetch_all(&self.pool).await?;
        rows.iter().map(session_from_row).collect()
    }

    /// Records a peer about to be added to the data plane (call before the
    /// UAPI `set`, so a crash in between still knows the peer is ours).
    pub async fn record_peer(&self, peer: &AddedPeer) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO provider_peers (wg_key, order_id, address, added_ms) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (wg_key) DO UPDATE SET \
             order_id = excluded.order_id, address = excluded.address, added_ms = excluded.added_ms",
        )
        .bind(peer.wg_key.to_string())
        .bind(amount_key(peer.order_id))
        .bind(peer.address.to_string())
        .bind(to_i64(peer.added_ms))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Forgets a peer removed from the data plane (call after the UAPI `set`).
    pub async fn forget_peer(&self, wg_key: &WgPublicKey) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM provider_peers WHERE wg_key = $1")
            .bind(wg_key.to_string())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Every peer this provider added and has not removed.
    pub async fn added_peers(&self) -> Result<Vec<AddedPeer>, StoreError> {
        let rows = sqlx::query(
            "SELECT wg_key, order_id, address, added_ms FROM provider_peers ORDER BY wg_key",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(peer_from_row).collect()
    }

    /// Closes the pool (tests reopen the same file).
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Parses one column, naming the table, row and column when it is corrupt.
struct RowReader<'a> {
    row: &'a AnyRow,
    table: &'static str,
    key: String,
}

impl RowReader<'_> {
    fn corrupt(&self, column: &'static str, reason: impl ToString) -> StoreError {
        StoreError::Corrupt {
            table: self.table,
            key: self.key.clone(),
            column,
            reason: reason.to_string(),
        }
    }

    fn text(&self, column: &'static str) -> Result<String, StoreError> {
        self.row
            .try_get::<String, _>(column)
            .map_err(|e| self.corrupt(column, e))
    }

    fn opt_text(&self, column: &'static str) -> Result<Option<String>, StoreError> {
        self.row
            .try_get::<Option<String>, _>(column)
            .map_err(|e| self.corrupt(column, e))
    }

    fn parse<T: FromStr>(&self, column: &'static str) -> Result<T, StoreError>
    where
        T::Err: ToString,
    {
        self.text(column)?
            .parse()
            .map_err(|e: T::Err| self.corrupt(column, e))
    }

    fn amount(&self, column: &'static str) -> Result<U256, StoreError> {
        parse_amount(&self.text(column)?).map_err(|e| self.corrupt(column, e))
    }

    fn millis(&self, column: &'static str) -> Result<u64, StoreError> {
        let value = self
            .row
            .try_get::<i64, _>(column)
            .map_err(|e| self.corrupt(column, e))?;
        u64::try_from(value).map_err(|_| self.corrupt(column, format!("negative: {value}")))
    }
}

fn parse_amount(text: &str) -> Result<U256, String> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("'{}' is not a decimal amount", clip(text)));
    }
    U256::from_str_radix(text, 10).map_err(|e| e.to_string())
}

fn clip(text: &str) -> String {
    text.chars().take(80).collect()
}

fn session_from_row(row: &AnyRow) -> Result<SessionRecord, StoreError> {
    let mut reader = RowReader {
        row,
        table: "provider_sessions",
        key: String::from("?"),
    };
    reader.key = reader.text("order_id")?;
    let order_id = reader.amount("order_id")?;
    reader.key = order_id.to_string();
    let state = reader.parse::<RecordState>("state")?;
    let best = match (
        reader.opt_text("best_amount")?,
        reader.opt_text("best_signature")?,
    ) {
        (None, None) => None,
        (Some(amount), Some(signature)) => Some(SignedVoucher {
            order_id,
            cumulative_amount: parse_amount(&amount)
                .map_err(|e| reader.corrupt("best_amount", e))?,
            signature: Bytes::from_str(&signature)
                .map_err(|e| reader.corrupt("best_signature", e))?,
        }),
        (Some(_), None) => return Err(reader.corrupt("best_signature", "missing")),
        (None, Some(_)) => return Err(reader.corrupt("best_amount", "missing")),
    };
    Ok(SessionRecord {
        order_id,
        client: reader.parse::<Address>("client")?,
        client_peer: reader.parse::<PeerId>("client_peer")?,
        wg_key: reader.parse::<WgPublicKey>("wg_key")?,
        address: reader.parse::<Ipv4Addr>("address")?,
        escrow: reader.amount("escrow")?,
        state,
        best,
        redeemed: reader.amount("redeemed")?,
        accepted_at_ms: reader.millis("accepted_at_ms")?,
        last_voucher_ms: reader.millis("last_voucher_ms")?,
        updated_ms: reader.millis("updated_ms")?,
    })
}

fn peer_from_row(row: &AnyRow) -> Result<AddedPeer, StoreError> {
    let mut reader = RowReader {
        row,
        table: "provider_peers",
        key: String::from("?"),
    };
    reader.key = clip(&reader.text("wg_key")?);
    Ok(AddedPeer {
        wg_key: reader.parse::<WgPublicKey>("wg_key")?,
        order_id: reader.amount("order_id")?,
        address: reader.parse::<Ipv4Addr>("address")?,
        added_ms: reader.millis("added_ms")?,
    })
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
