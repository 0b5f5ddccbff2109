use super::*;
use flowshield_proto::{Keypair, WgPublicKey};

fn heartbeat(key: &Keypair, region: &str, price: u128, capacity: u32, seq: u64) -> Heartbeat {
    Heartbeat {
        offer: Offer {
            provider_peer_id: key.public().to_peer_id(),
            chain_address: "0x0000000000000000000000000000000000000001"
                .parse()
                .unwrap(),
            wg_public_key: WgPublicKey([3; 32]),
            endpoint: "192.0.2.1:51820".parse().unwrap(),
            region: Region::new(region).unwrap(),
            price_per_gib_wei: price,
            price_per_hour_wei: 1,
            capacity_mbps: capacity,
            max_clients: 4,
            tunnel_subnet: None,
        },
        seq,
        timestamp_ms: 1_000 + seq,
    }
}

async fn put(index: &ProviderIndex, key: &Keypair, hb: &Heartbeat, now: u64) {
    let signed = SignedMessage::sign(hb, key).unwrap();
    index.upsert(hb, &signed, now).await.unwrap();
}

/// `n` fresh provider keys.
fn keys(n: usize) -> Vec<Keypair> {
    (0..n).map(|_| Keypair::generate_ed25519()).collect()
}

/// `key`'s signed heartbeat `seq` (in "eu" at `price`), accepted at `seen`.
fn record(key: &Keypair, price: u128, seq: u64, seen: u64) -> IndexedProvider {
    let hb = heartbeat(key, "eu", price, 100, seq);
    IndexedProvider::new(&hb, &SignedMessage::sign(&hb, key).unwrap(), seen)
}

/// Every row of the index.
async fn all(index: &ProviderIndex) -> Vec<IndexedProvider> {
    index
        .query(&ProviderQuery {
            limit: 10_000,
            ..Default::default()
        })
        .await
        .unwrap()
}

async fn temp_index() -> (tempfile::TempDir, ProviderIndex) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("index.db").display());
    let index = ProviderIndex::connect(&url).await.unwrap();
    (dir, index)
}

async fn check_upsert_replaces_only_with_newer(index: &ProviderIndex) {
    let index = index.clone();
    let key = Keypair::generate_ed25519();
    put(&index, &key, &heartbeat(&key, "eu", 10, 100, 2), 5_000).await;
    put(&index, &key, &heartbeat(&key, "eu", 20, 100, 3), 6_000).await;
    put(&index, &key, &heartbeat(&key, "eu", 99, 100, 1), 7_000).await;
    let all = all(&index).await;
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].offer.price_per_gib_wei, 20);
    assert_eq!(all[0].seq, 3);
    assert_eq!(all[0].last_seen_ms, 6_000);
    let signed =
        SignedMessage::<Heartbeat>::from_bytes(all[0].signed_heartbeat.as_bytes()).unwrap();
    assert_eq!(signed.verify().unwrap().seq, 3);
    assert_eq!(index.count().await.unwrap(), 1);
}

async fn check_queries_by_region_price_capacity(index: &ProviderIndex) {
    let index = index.clone();
    let keys: Vec<Keypair> = (0..4).map(|_| Keypair::generate_ed25519()).collect();
    let specs = [
        ("eu", 300u128, 100u32),
        ("eu", 9, 1000),
        ("us", 5, 100),
        ("eu", u128::MAX, 100),
    ];
    for (key, (region, price, capacity)) in keys.iter().zip(specs) {
        put(&index, key, &heartbeat(key, region, price, capacity, 1), 1).await;
    }
    let eu = index
        .query(&ProviderQuery {
            region: Some(Region::new("eu").unwrap()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    let prices: Vec<u128> = eu.iter().map(|p| p.offer.price_per_gib_wei).collect();
    assert_eq!(
        prices,
        vec![9, 300, u128::MAX],
        "numeric order, not text order"
    );
    let cheap = index
        .query(&ProviderQuery {
            max_price_per_gib_wei: Some(300),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(cheap.len(), 3);
    let big = index
        .query(&ProviderQuery {
            min_capacity_mbps: Some(500),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(big.len(), 1);
    assert_eq!(big[0].offer.provider_peer_id, keys[1].public().to_peer_id());
    let limited = index
        .query(&ProviderQuery {
            limit: 2,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(limited.len(), 2);
}

async fn check_batch_upsert_crosses_chunks_and_keeps_newest(index: &ProviderIndex) {
    let keys = keys(ROWS_PER_STATEMENT + 7);
    let batch = |seq: u64, price: u128| -> Vec<IndexedProvider> {
        keys.iter()
            .map(|k| record(k, price, seq, 10 + seq))
            .collect()
    };
    index.upsert_batch(&batch(5, 50)).await.unwrap();
    assert_eq!(index.count().await.unwrap(), keys.len() as u64);
    // An older batch changes nothing; a newer one replaces every row.
    index.upsert_batch(&batch(4, 40)).await.unwrap();
    index.upsert_batch(&batch(6, 60)).await.unwrap();
    let all = all(index).await;
    assert_eq!(all.len(), keys.len());
    assert!(all
        .iter()
        .all(|p| p.seq == 6 && p.offer.price_per_gib_wei == 60));
    assert!(index.remove(&keys[0].public().to_peer_id()).await.unwrap());
    assert_eq!(index.count().await.unwrap(), keys.len() as u64 - 1);
}

async fn check_bumps_update_in_place_across_chunks(index: &ProviderIndex) {
    let keys = keys(ROWS_PER_STATEMENT + 7);
    let record = |k: &Keypair, seq: u64| record(k, 50, seq, 100 + seq);
    index
        .upsert_batch(&keys.iter().map(|k| record(k, 5)).collect::<Vec<_>>())
        .await
        .unwrap();
    // Newer heartbeats for every row but the first, an older one for it,
    // and one for a provider the index does not hold.
    let stranger = Keypair::generate_ed25519();
    let mut bumps: Vec<IndexedProvider> = keys[1..].iter().map(|k| record(k, 9)).collect();
    bumps.push(record(&keys[0], 3));
    bumps.push(record(&stranger, 9));
    index.write_batch(&[], &bumps).await.unwrap();
    assert_eq!(
        index.count().await.unwrap(),
        keys.len() as u64,
        "a bump inserts nothing"
    );
    let all = all(index).await;
    let first = keys[0].public().to_peer_id();
    for p in &all {
        let signed = SignedMessage::<Heartbeat>::from_bytes(p.signed_heartbeat.as_bytes()).unwrap();
        let (want_seq, want_seen) = if p.offer.provider_peer_id == first {
            (5, 105)
        } else {
            (9, 109)
        };
        assert_eq!(
            (p.seq, p.timestamp_ms, p.last_seen_ms),
            (want_seq, 1_000 + want_seq, want_seen),
            "{}",
            p.offer.provider_peer_id
        );
        assert_eq!(signed.verify().unwrap().seq, want_seq);
        assert_eq!(p.offer.price_per_gib_wei, 50);
    }
}

#[tokio::test]
async fn sqlite_bumps_update_in_place_across_chunks() {
    let (_dir, index) = temp_index().await;
    check_bumps_update_in_place_across_chunks(&index).await;
}

#[tokio::test]
async fn sqlite_batch_upsert_crosses_chunks_and_keeps_newest() {
    let (_dir, index) = temp_index().await;
    check_batch_upsert_crosses_chunks_and_keeps_newest(&index).await;
}

async fn check_expires_silent_providers_and_persists(url: &str) {
    let index = ProviderIndex::connect(url).await.unwrap();
    let old = Keypair::generate_ed25519();
    let fresh = Keypair::generate_ed25519();
    put(&index, &old, &heartbeat(&old, "eu", 1, 1, 1), 1_000).await;
    put(&index, &fresh, &heartbeat(&fresh, "eu", 1, 1, 1), 9_000).await;
    assert_eq!(index.expire(5_000).await.unwrap(), 1);
    index.close().await;
    // Reopening runs the migrations again (a no-op) and keeps the data.
    let index = ProviderIndex::connect(url).await.unwrap();
    assert_eq!(index.count().await.unwrap(), 1);
}

#[tokio::test]
async fn sqlite_upsert_replaces_only_with_newer() {
    let (_dir, index) = temp_index().await;
    check_upsert_replaces_only_with_newer(&index).await;
}

#[tokio::test]
async fn sqlite_queries_by_region_price_capacity() {
    let (_dir, index) = temp_index().await;
    check_queries_by_region_price_capacity(&index).await;
}

#[tokio::test]
async fn sqlite_expires_silent_providers_and_persists() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("index.db").display());
    check_expires_silent_providers_and_persists(&url).await;
}

/// Runs the same checks on Postgres when `FLOWSHIELD_TEST_POSTGRES_URL`
/// names a database this test may wipe (`scripts/test-market-postgres.sh`
/// sets one up); otherwise says so and checks nothing.
#[tokio::test]
async fn postgres_backend_passes_the_same_checks() {
    let Ok(url) = std::env::var("FLOWSHIELD_TEST_POSTGRES_URL") else {
        eprintln!("skipped: FLOWSHIELD_TEST_POSTGRES_URL is not set");
        return;
    };
    let index = ProviderIndex::connect(&url).await.unwrap();
    let wipe = || async {
        sqlx::query("DELETE FROM providers")
            .execute(&index.pool)
            .await
            .unwrap();
    };
    wipe().await;
    check_upsert_replaces_only_with_newer(&index).await;
    wipe().await;
    check_queries_by_region_price_capacity(&index).await;
    wipe().await;
    check_batch_upsert_crosses_chunks_and_keeps_newest(&index).await;
    wipe().await;
    check_bumps_update_in_place_across_chunks(&index).await;
    wipe().await;
    check_expires_silent_providers_and_persists(&url).await;
    wipe().await;
}

#[test]
fn batches_are_written_in_power_of_two_statements() {
    let sizes = |n: usize| statement_rows(n).collect::<Vec<_>>();
    assert_eq!(sizes(0), Vec::<usize>::new());
    assert_eq!(sizes(1), vec![1]);
    assert_eq!(
        sizes(ROWS_PER_STATEMENT + 7),
        vec![ROWS_PER_STATEMENT, 4, 2, 1]
    );
    assert_eq!(sizes(3 * ROWS_PER_STATEMENT), vec![ROWS_PER_STATEMENT; 3]);
    for n in 0..300 {
        let sizes = sizes(n);
        assert_eq!(sizes.iter().sum::<usize>(), n);
        assert!(sizes
            .iter()
            .all(|s| s.is_power_of_two() && *s <= ROWS_PER_STATEMENT));
        assert!(sizes.windows(2).all(|w| w[0] >= w[1]));
    }
    let records: Vec<usize> = (0..ROWS_PER_STATEMENT + 3).collect();
    let chunks: Vec<&[usize]> = statements(&records).collect();
    assert_eq!(chunks.concat(), records);
    assert_eq!(values_sql(Backend::Sqlite, 2, 3), "(?, ?, ?), (?, ?, ?)");
    assert_eq!(
        values_sql(Backend::Postgres, 2, 3),
        "($1, $2, $3), ($4, $5, $6)"
    );
}

#[tokio::test]
async fn rejects_unknown_url_scheme() {
    assert!(matches!(
        ProviderIndex::connect("mysql://x").await,
        Err(IndexError::UnsupportedUrl(_))
    ));
}
