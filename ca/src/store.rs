//! SQLite storage (sqlx, embedded migrations): challenges, certificates, revocations, log
//! leaves and anchored roots.

use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use sqlx::{Row, SqlitePool};
use std::str::FromStr;

use crate::binding::NodeBinding;
use crate::log::{Hash32, LogEntry};
use crate::pop::{Challenge, ChallengeSecret, PopError};

/// A storage failure, with the operation that failed.
#[derive(Debug, thiserror::Error)]
#[error("store {op}: {source}")]
pub struct StoreError {
    /// What was being done.
    pub op: &'static str,
    /// The database error.
    #[source]
    pub source: sqlx::Error,
}

fn e(op: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |source| StoreError { op, source }
}

/// An issued certificate as stored.
#[derive(Clone, Debug)]
pub struct CertRecord {
    /// Serial, lowercase hex.
    pub serial: String,
    /// SHA-256 of the DER.
    pub cert_hash: Hash32,
    /// Certificate DER.
    pub der: Vec<u8>,
    /// The bound keys.
    pub binding: NodeBinding,
    /// Unix seconds.
    pub not_before: u64,
    /// Unix seconds.
    pub not_after: u64,
    /// Index of the `issued` leaf.
    pub log_index: u64,
    /// Timestamp in that leaf.
    pub logged_at: u64,
}

/// A revocation as stored.
#[derive(Clone, Debug)]
pub struct RevocationRecord {
    /// Serial, lowercase hex.
    pub serial: String,
    /// Unix seconds.
    pub revoked_at: u64,
    /// Index of the `revoked` leaf.
    pub log_index: u64,
    /// Whether it was recorded on chain.
    pub on_chain: bool,
}

/// Handle to the database.
#[derive(Clone, Debug)]
pub struct Store {
    pool: SqlitePool,
}

impl Store {
    /// Opens (creating if needed) the database at `path` and runs migrations. `:memory:` gives
    /// a private in-memory database.
    pub async fn open(path: &str) -> Result<Self, StoreError> {
        let memory = path == ":memory:";
        let opts = if memory {
            SqliteConnectOptions::from_str("sqlite::memory:").map_err(e("open"))?
        } else {
            SqliteConnectOptions::new()
                .filename(path)
                .create_if_missing(true)
                .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
        }
        .foreign_keys(true);
        // One connection for :memory: (each connection would be its own database).
        let pool = SqlitePoolOptions::new()
            .max_connections(if memory { 1 } else { 4 })
            .connect_with(opts)
            .await
            .map_err(e("open"))?;
        sqlx::migrate!("./migrations")
            .run(&pool)
            .await
            .map_err(|m| StoreError {
                op: "migrate",
                source: m.into(),
            })?;
        Ok(Store { pool })
    }

    /// Saves a new challenge with its secret.
    pub async fn put_challenge(
        &self,
        ch: &Challenge,
        secret: &ChallengeSecret,
    ) -> Result<(), StoreError> {
        // Challenges are worthless an hour after expiry; keep the table small.
        sqlx::query("DELETE FROM challenges WHERE expires_at < ?")
            .bind(ch.expires_at as i64 - 2 * 3600)
            .execute(&self.pool)
            .await
            .map_err(e("put_challenge"))?;
        let body = serde_json::to_string(ch).unwrap_or_default();
        sqlx::query("INSERT INTO challenges (id, body, secret, expires_at) VALUES (?, ?, ?, ?)")
            .bind(&ch.id)
            .bind(body)
            .bind(secret.0.as_slice())
            .bind(ch.expires_at as i64)
            .execute(&self.pool)
            .await
            .map_err(e("put_challenge"))?;
        Ok(())
    }

    /// Marks a challenge used and returns it; a second take of the same id fails with
    /// [`PopError::Reused`]. The outer error is a storage failure.
    pub async fn take_challenge(
        &self,
        id: &str,
    ) -> Result<Result<(Challenge, ChallengeSecret), PopError>, StoreError> {
        let row = sqlx::query(
            "UPDATE challenges SET used = 1 WHERE id = ? AND used = 0 RETURNING body, secret",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(e("take_challenge"))?;
        let Some(row) = row else {
            let exists = sqlx::query("SELECT 1 FROM challenges WHERE id = ?")
                .bind(id)
                .fetch_optional(&self.pool)
                .await
                .map_err(e("take_challenge"))?
                .is_some();
            return Ok(Err(if exists {
                PopError::Reused
            } else {
                PopError::UnknownChallenge
            }));
        };
        let body: String = row.get(0);
        let secret: Vec<u8> = row.get(1);
        let parsed = serde_json::from_str::<Challenge>(&body)
            .ok()
            .zip(<[u8; 32]>::try_from(secret).ok());
        Ok(parsed
            .map(|(ch, s)| (ch, ChallengeSecret(s)))
            .ok_or(PopError::Malformed("challenge_id")))
    }

    /// All log leaves in order.
    pub async fn log_leaves(&self) -> Result<Vec<Vec<u8>>, StoreError> {
        let rows = sqlx::query("SELECT leaf FROM log_leaves ORDER BY idx")
            .fetch_all(&self.pool)
            .await
            .map_err(e("log_leaves"))?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// Stores a certificate and its `issued` leaf at `log_index`, atomically.
    pub async fn insert_cert(&self, rec: &CertRecord, leaf: &LogEntry) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(e("insert_cert"))?;
        insert_leaf(&mut tx, rec.log_index, leaf).await?;
        sqlx::query(
            "INSERT INTO certs (serial, cert_hash, der, binding, not_before, not_after, log_index, \
             logged_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&rec.serial)
        .bind(hex::encode(rec.cert_hash))
        .bind(&rec.der)
        .bind(serde_json::to_string(&rec.binding).unwrap_or_default())
        .bind(rec.not_before as i64)
        .bind(rec.not_after as i64)
        .bind(rec.log_index as i64)
        .bind(rec.logged_at as i64)
        .execute(&mut *tx)
        .await
        .map_err(e("insert_cert"))?;
        tx.commit().await.map_err(e("insert_cert"))
    }

    /// Stores a revocation and its `revoked` leaf, atomically.
    pub async fn insert_revocation(
        &self,
        rec: &RevocationRecord,
        by_holder: bool,
        leaf: &LogEntry,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(e("insert_revocation"))?;
        insert_leaf(&mut tx, rec.log_index, leaf).await?;
        sqlx::query(
            "INSERT INTO revocations (serial, revoked_at, by_holder, log_index) VALUES (?, ?, ?, ?)",
        )
        .bind(&rec.serial)
        .bind(rec.revoked_at as i64)
        .bind(by_holder)
        .bind(rec.log_index as i64)
        .execute(&mut *tx)
        .await
        .map_err(e("insert_revocation"))?;
        tx.commit().await.map_err(e("insert_revocation"))
    }

    /// The certificate with this serial (lowercase hex).
    pub async fn cert_by_serial(&self, serial: &str) -> Result<Option<CertRecord>, StoreError> {
        self.cert_where("serial", serial).await
    }

    /// The certificate with this SHA-256 (hex).
    pub async fn cert_by_hash(&self, cert_hash: &str) -> Result<Option<CertRecord>, StoreError> {
        self.cert_where("cert_hash", cert_hash).await
    }

    async fn cert_where(
        &self,
        column: &str,
        value: &str,
    ) -> Result<Option<CertRecord>, StoreError> {
        // `column` is one of two literals above, never request data.
        let sql = format!(
            "SELECT serial, cert_hash, der, binding, not_before, not_after, log_index, logged_at \
             FROM certs WHERE {column} = ?"
        );
        let row = sqlx::query(&sql)
            .bind(value.to_ascii_lowercase())
            .fetch_optional(&self.pool)
            .await
            .map_err(e("cert_lookup"))?;
        Ok(row.and_then(|r| {
            let hash: String = r.get(1);
            let binding: String = r.get(3);
            Some(CertRecord {
                serial: r.get(0),
                cert_hash: hex::decode(hash).ok()?.try_into().ok()?,
                der: r.get(2),
                binding: serde_json::from_str(&binding).ok()?,
                not_before: r.get::<i64, _>(4) as u64,
                not_after: r.get::<i64, _>(5) as u64,
                log_index: r.get::<i64, _>(6) as u64,
                logged_at: r.get::<i64, _>(7) as u64,
            })
        }))
    }

    /// The revocation of `serial`, if any.
    pub async fn revocation(&self, serial: &str) -> Result<Option<RevocationRecord>, StoreError> {
        let rows = self
            .revocations_where("WHERE serial = ?", Some(serial))
            .await?;
        Ok(rows.into_iter().next())
    }

    /// All revocations.
    pub async fn revocations(&self) -> Result<Vec<RevocationRecord>, StoreError> {
        self.revocations_where("", None).await
    }

    /// Revocations not yet recorded on chain.
    pub async fn pending_onchain_revocations(&self) -> Result<Vec<RevocationRecord>, StoreError> {
        self.revocations_where("WHERE on_chain = 0", None).await
    }

    async fn revocations_where(
        &self,
        filter: &str,
        serial: Option<&str>,
    ) -> Result<Vec<RevocationRecord>, StoreError> {
        let sql = format!(
            "SELECT serial, revoked_at, log_index, on_chain FROM revocations {filter} \
             ORDER BY log_index"
        );
        let mut q = sqlx::query(&sql);
        if let Some(s) = serial {
            q = q.bind(s.to_ascii_lowercase());
        }
        let rows = q.fetch_all(&self.pool).await.map_err(e("revocations"))?;
        Ok(rows
            .iter()
            .map(|r| RevocationRecord {
                serial: r.get(0),
                revoked_at: r.get::<i64, _>(1) as u64,
                log_index: r.get::<i64, _>(2) as u64,
                on_chain: r.get::<i64, _>(3) != 0,
            })
            .collect())
    }

    /// Marks a revocation as recorded on chain.
    pub async fn mark_revocation_on_chain(&self, serial: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE revocations SET on_chain = 1 WHERE serial = ?")
            .bind(serial)
            .execute(&self.pool)
            .await
            .map_err(e("mark_revocation_on_chain"))?;
        Ok(())
    }

    /// Records a root anchored on chain.
    pub async fn record_anchor(
        &self,
        tree_size: u64,
        root: &Hash32,
        at: u64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT OR REPLACE INTO anchors (tree_size, root, anchored_at) VALUES (?, ?, ?)",
        )
        .bind(tree_size as i64)
        .bind(hex::encode(root))
        .bind(at as i64)
        .execute(&self.pool)
        .await
        .map_err(e("record_anchor"))?;
        Ok(())
    }

    /// The largest anchored tree size and its root.
    pub async fn last_anchor(&self) -> Result<Option<(u64, String)>, StoreError> {
        let row =
            sqlx::query("SELECT tree_size, root FROM anchors ORDER BY tree_size DESC LIMIT 1")
                .fetch_optional(&self.pool)
                .await
                .map_err(e("last_anchor"))?;
        Ok(row.map(|r| (r.get::<i64, _>(0) as u64, r.get(1))))
    }

    /// Increments and returns a named counter (CRL numbers).
    pub async fn next_counter(&self, name: &str) -> Result<u64, StoreError> {
        let row = sqlx::query(
            "INSERT INTO counters (name, value) VALUES (?, 1) \
             ON CONFLICT(name) DO UPDATE SET value = value + 1 RETURNING value",
        )
        .bind(name)
        .fetch_one(&self.pool)
        .await
        .map_err(e("next_counter"))?;
        Ok(row.get::<i64, _>(0) as u64)
    }
}

async fn insert_leaf(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    idx: u64,
    leaf: &LogEntry,
) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO log_leaves (idx, leaf) VALUES (?, ?)")
        .bind(idx as i64)
        .bind(leaf.encode())
        .execute(&mut **tx)
        .await
        .map_err(e("insert_leaf"))?;
    Ok(())
}
