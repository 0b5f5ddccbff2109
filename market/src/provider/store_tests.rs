use super::*;
use flowshield_chain::alloy::primitives::Bytes;

fn record(order: u64) -> SessionRecord {
    SessionRecord {
        order_id: U256::from(order),
        client: Address::repeat_byte(0xc1),
        client_peer: PeerId::random(),
        wg_key: WgPublicKey([order as u8; 32]),
        address: Ipv4Addr::new(10, 77, 0, order as u8),
        escrow: U256::from(10u64).pow(U256::from(18u64)),
        state: RecordState::Accepting,
        best: None,
        redeemed: U256::ZERO,
        accepted_at_ms: 1_000,
        last_voucher_ms: 0,
        updated_ms: 1_000,
    }
}

fn voucher(order: u64, amount: u64, sig: u8) -> SignedVoucher {
    SignedVoucher {
        order_id: U256::from(order),
        cumulative_amount: U256::from(amount),
        signature: Bytes::from(vec![sig; 65]),
    }
}

async fn open(dir: &tempfile::TempDir) -> SessionStore {
    let url = format!("sqlite://{}", dir.path().join("provider.db").display());
    SessionStore::connect(&url).await.expect("store opens")
}

#[tokio::test]
async fn a_session_survives_reopening_with_its_best_voucher() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let rec = record(7);
    store.put_session(&rec).await.unwrap();
    assert!(store
        .set_state(rec.order_id, RecordState::Active, 2_000)
        .await
        .unwrap());
    assert!(store
        .record_voucher(&voucher(7, 500, 1), 3_000)
        .await
        .unwrap());
    assert!(store
        .record_redeemed(rec.order_id, U256::from(200u64), 4_000)
        .await
        .unwrap());
    store
        .record_peer(&AddedPeer {
            wg_key: rec.wg_key,
            order_id: rec.order_id,
            address: rec.address,
            added_ms: 2_000,
        })
        .await
        .unwrap();
    store.close().await;

    let store = open(&dir).await;
    let back = store.session(rec.order_id).await.unwrap().expect("record");
    assert_eq!(back.state, RecordState::Active);
    assert_eq!(back.best, Some(voucher(7, 500, 1)));
    assert_eq!(back.redeemed, U256::from(200u64));
    assert_eq!(back.last_voucher_ms, 3_000);
    assert_eq!(back.updated_ms, 4_000);
    assert_eq!(back.client_peer, rec.client_peer);
    assert_eq!(back.wg_key, rec.wg_key);
    assert_eq!(back.escrow, rec.escrow);
    assert_eq!(store.sessions().await.unwrap().len(), 1);
    let peers = store.added_peers().await.unwrap();
    assert_eq!(peers.len(), 1);
    assert_eq!(peers[0].wg_key, rec.wg_key);
    assert_eq!(peers[0].order_id, rec.order_id);
}

#[tokio::test]
async fn a_lower_voucher_or_redemption_never_replaces_a_higher_one() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    store.put_session(&record(1)).await.unwrap();
    // 9 < 10 as numbers but "9" > "10" as unpadded text: padding matters.
    assert!(store.record_voucher(&voucher(1, 10, 1), 1).await.unwrap());
    assert!(!store.record_voucher(&voucher(1, 9, 2), 2).await.unwrap());
    assert!(!store.record_voucher(&voucher(1, 10, 3), 3).await.unwrap());
    assert!(store.record_voucher(&voucher(1, 100, 4), 4).await.unwrap());
    assert!(store
        .record_redeemed(U256::from(1u64), U256::from(50u64), 5)
        .await
        .unwrap());
    assert!(!store
        .record_redeemed(U256::from(1u64), U256::from(9u64), 6)
        .await
        .unwrap());
    let back = store.session(U256::from(1u64)).await.unwrap().unwrap();
    assert_eq!(back.best, Some(voucher(1, 100, 4)));
    assert_eq!(back.redeemed, U256::from(50u64));
    // The largest U256 round-trips too.
    let mut big = record(2);
    big.escrow = U256::MAX;
    store.put_session(&big).await.unwrap();
    let back = store.session(U256::from(2u64)).await.unwrap().unwrap();
    assert_eq!(back.escrow, U256::MAX);
}

#[tokio::test]
async fn removing_forgets_sessions_and_peers() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let rec = record(3);
    store.put_session(&rec).await.unwrap();
    store
        .record_peer(&AddedPeer {
            wg_key: rec.wg_key,
            order_id: rec.order_id,
            address: rec.address,
            added_ms: 1,
        })
        .await
        .unwrap();
    assert!(store.remove_session(rec.order_id).await.unwrap());
    assert!(!store.remove_session(rec.order_id).await.unwrap());
    assert!(store.forget_peer(&rec.wg_key).await.unwrap());
    assert!(store.session(rec.order_id).await.unwrap().is_none());
    assert!(store.added_peers().await.unwrap().is_empty());
    assert!(!store
        .set_state(rec.order_id, RecordState::Ending, 2)
        .await
        .unwrap());
}

#[tokio::test]
async fn a_corrupt_row_is_a_clear_error_naming_the_column() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    store.put_session(&record(4)).await.unwrap();
    sqlx::query("UPDATE provider_sessions SET state = 'haunted'")
        .execute(&store.pool)
        .await
        .unwrap();
    let err = store.sessions().await.unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(
            err,
            StoreError::Corrupt {
                column: "state",
                ..
            }
        ),
        "{text}"
    );
    assert!(
        text.contains("haunted") && text.contains("row for 4"),
        "{text}"
    );

    sqlx::query("UPDATE provider_sessions SET state = 'active', wg_key = 'not-a-key'")
        .execute(&store.pool)
        .await
        .unwrap();
    let err = store.session(U256::from(4u64)).await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Corrupt {
                column: "wg_key",
                ..
            }
        ),
        "{err}"
    );

    sqlx::query(
        "UPDATE provider_sessions SET wg_key = $1, best_amount = '12x', best_signature = '0x00'",
    )
    .bind(WgPublicKey([4; 32]).to_string())
    .execute(&store.pool)
    .await
    .unwrap();
    let err = store.sessions().await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Corrupt {
                column: "best_amount",
                ..
            }
        ),
        "{err}"
    );

    sqlx::query("INSERT INTO provider_peers (wg_key, order_id, address, added_ms) VALUES ('x', '1', '10.0.0.1', 1)")
        .execute(&store.pool)
        .await
        .unwrap();
    let err = store.added_peers().await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Corrupt {
                table: "provider_peers",
                column: "wg_key",
                ..
            }
        ),
        "{err}"
    );
}

#[tokio::test]
async fn the_sqlite_file_is_private_and_bad_urls_are_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let _store = open(&dir).await;
    let mode = std::fs::metadata(dir.path().join("provider.db"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let err = SessionStore::connect("mysql://x").await.unwrap_err();
    assert!(matches!(err, StoreError::UnsupportedUrl(_)), "{err}");
}

#[tokio::test]
async fn postgres_holds_the_same_records_when_configured() {
    // Runs only where `FLOWSHIELD_TEST_POSTGRES_URL` names a server (see
    // scripts/test-market-postgres.sh); SQLite above always runs.
    let Ok(url) = std::env::var("FLOWSHIELD_TEST_POSTGRES_URL") else {
        return;
    };
    let store = SessionStore::connect(&url).await.expect("postgres store");
    let rec = record(200);
    store.remove_session(rec.order_id).await.unwrap();
    store.put_session(&rec).await.unwrap();
    assert!(store.record_voucher(&voucher(200, 10, 1), 1).await.unwrap());
    assert!(!store.record_voucher(&voucher(200, 9, 2), 2).await.unwrap());
    let back = store.session(rec.order_id).await.unwrap().unwrap();
    assert_eq!(back.best, Some(voucher(200, 10, 1)));
    store.remove_session(rec.order_id).await.unwrap();
}

#[tokio::test]
async fn sqlite_commits_are_fsynced_through_a_write_ahead_log() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&store.pool)
        .await
        .unwrap();
    assert_eq!(mode.to_lowercase(), "wal");
    // 2 = FULL: the log is fsynced at every commit.
    let sync: i64 = sqlx::query_scalar("PRAGMA synchronous")
        .fetch_one(&store.pool)
        .await
        .unwrap();
    assert_eq!(sync, 2);
}
