use super::*;
use crate::session::pricing::Prices;
use crate::wire::raw::RawSessionRequest;
use crate::wire::session::SessionRequest;
use flowshield_chain::alloy::signers::local::PrivateKeySigner;
use flowshield_chain::voucher::{market_domain, sign_voucher};

const NOW: u64 = 1_000_000;

struct Fixture {
    table: SessionTable,
    provider_peer: PeerId,
    /// The libp2p peer the client connects from.
    client_peer: PeerId,
    client: PrivateKeySigner,
    order: OrderView,
    domain: Eip712Domain,
}

fn fixture() -> Fixture {
    let me = Address::repeat_byte(0xaa);
    let domain = market_domain(31337, Address::repeat_byte(0x11));
    let policy = SessionPolicy {
        me,
        min_escrow: U256::from(1000),
        // 1 wei per byte, free time.
        prices: Prices {
            per_gib: U256::from(1u64 << 30),
            per_hour: U256::ZERO,
        },
        idle_timeout_ms: 30_000,
        redeem_threshold: U256::from(500),
        redeem_interval_ms: 60_000,
        credit_limit: U256::from(2000),
        max_clients: 3,
        max_orders_per_client: 2,
    };
    let client = PrivateKeySigner::random();
    let order = OrderView {
        client: client.address(),
        provider: me,
        status: OrderStatus::Pending,
        escrow: U256::from(10_000),
    };
    Fixture {
        table: SessionTable::new(policy, domain.clone()),
        provider_peer: peer(),
        client_peer: peer(),
        client,
        order,
        domain,
    }
}

fn peer() -> PeerId {
    flowshield_proto::Keypair::generate_ed25519()
        .public()
        .to_peer_id()
}

fn connect(f: &Fixture, signer: &PrivateKeySigner, order: u64, ts: u64) -> ConnectRequest {
    ConnectRequest::sign(
        signer,
        U256::from(order),
        WgPublicKey([order as u8; 32]),
        &f.provider_peer,
        ts,
    )
    .unwrap()
}

fn voucher(f: &Fixture, signer: &PrivateKeySigner, order: u64, amount: u64) -> VoucherMessage {
    VoucherMessage::from_signed(
        &sign_voucher(signer, &f.domain, U256::from(order), U256::from(amount)).unwrap(),
    )
}

#[test]
fn accepts_a_pending_order_signed_by_its_client() {
    let f = fixture();
    let req = connect(&f, &f.client, 1, NOW);
    let id = f
        .table
        .check_connect(&req, Some(&f.order), &f.provider_peer, NOW + 5)
        .unwrap();
    assert_eq!(id, U256::from(1));
}

#[test]
fn refuses_bad_connects_with_a_clear_reason() {
    let f = fixture();
    let check = |req: &ConnectRequest, order: Option<&OrderView>| {
        f.table
            .check_connect(req, order, &f.provider_peer, NOW)
            .unwrap_err()
    };
    let good = connect(&f, &f.client, 1, NOW);
    assert_eq!(check(&good, None).kind(), "unknown_order");

    let mut other = f.order.clone();
    other.provider = Address::repeat_byte(0xbb);
    let err = check(&good, Some(&other));
    assert_eq!(err.kind(), "not_our_order");
    assert!(err.to_string().contains("not with this provider"), "{err}");

    let mut accepted = f.order.clone();
    accepted.status = OrderStatus::Active;
    assert_eq!(check(&good, Some(&accepted)).kind(), "not_pending");

    let mut poor = f.order.clone();
    poor.escrow = U256::from(999);
    assert_eq!(check(&good, Some(&poor)).kind(), "escrow_too_small");

    let intruder = PrivateKeySigner::random();
    let err = check(&connect(&f, &intruder, 1, NOW), Some(&f.order));
    assert_eq!(err.kind(), "wrong_client");
    assert!(err.to_string().contains("signed by"), "{err}");

    let stale = connect(&f, &f.client, 1, NOW - CONNECT_MAX_SKEW_MS - 1);
    assert_eq!(check(&stale, Some(&f.order)).kind(), "stale_connect");

    // A Connect signed for another provider does not verify here.
    let mut forged = good.clone();
    forged.client_chain_address = intruder.address();
    assert_eq!(check(&forged, Some(&f.order)).kind(), "malformed");
}

#[test]
fn a_second_connect_for_the_same_order_or_key_is_refused() {
    let mut f = fixture();
    let order = f.order.clone();
    f.table.admit(
        U256::from(1),
        &order,
        f.client_peer,
        WgPublicKey([1; 32]),
        Ipv4Addr::new(10, 77, 0, 2),
        NOW,
    );
    let again = connect(&f, &f.client, 1, NOW);
    let err = f
        .table
        .check_connect(&again, Some(&order), &f.provider_peer, NOW)
        .unwrap_err();
    assert_eq!(err.kind(), "already_connected");
    // Order 2 reusing order 1's key ([1; 32]) is refused too.
    let mut same_key = connect(&f, &f.client, 2, NOW);
    same_key.client_wg_public_key = WgPublicKey([1; 32]);
    let same_key = ConnectRequest::sign(
        &f.client,
        U256::from(2),
        WgPublicKey([1; 32]),
        &f.provider_peer,
        NOW,
    )
    .unwrap();
    let err = f
        .table
        .check_connect(&same_key, Some(&order), &f.provider_peer, NOW)
        .unwrap_err();
    assert_eq!(err.kind(), "key_in_use");
}

fn admitted() -> Fixture {
    let mut f = fixture();
    let order = f.order.clone();
    f.table.admit(
        U256::from(1),
        &order,
        f.client_peer,
        WgPublicKey([1; 32]),
        Ipv4Addr::new(10, 77, 0, 2),
        NOW,
    );
    f
}

#[test]
fn vouchers_must_grow_stay_under_escrow_and_be_signed_by_the_client() {
    let mut f = admitted();
    let v = voucher(&f, &f.client, 1, 100);
    let out = f
        .table
        .offer_voucher(&f.client_peer, &v, 100, NOW + 1000)
        .unwrap();
    assert_eq!(out.cumulative, U256::from(100));
    assert_eq!(out.redeem, None, "below threshold and interval");

    // Replay and lower vouchers.
    let err = f
        .table
        .offer_voucher(&f.client_peer, &v, 100, NOW + 2000)
        .unwrap_err();
    assert_eq!(err.kind(), "voucher_not_increasing");
    let lower = voucher(&f, &f.client, 1, 50);
    assert_eq!(
        f.table
            .offer_voucher(&f.client_peer, &lower, 100, NOW + 2000)
            .unwrap_err()
            .kind(),
        "voucher_not_increasing"
    );
    let huge = voucher(&f, &f.client, 1, 10_001);
    assert_eq!(
        f.table
            .offer_voucher(&f.client_peer, &huge, 100, NOW + 2000)
            .unwrap_err()
            .kind(),
        "voucher_exceeds_escrow"
    );
    let intruder = PrivateKeySigner::random();
    let forged = voucher(&f, &intruder, 1, 200);
    let err = f
        .table
        .offer_voucher(&f.client_peer, &forged, 100, NOW + 2000)
        .unwrap_err();
    assert_eq!(err.kind(), "voucher_bad_signature");
    let unknown = voucher(&f, &f.client, 9, 200);
    assert_eq!(
        f.table
            .offer_voucher(&f.client_peer, &unknown, 100, NOW + 2000)
            .unwrap_err()
            .kind(),
        "no_session"
    );
    // A garbled number is refused where the message is decoded, before
    // the table sees it.
    let mut garbage =
        serde_json::to_value(SessionRequest::Voucher(voucher(&f, &f.client, 1, 200))).unwrap();
    garbage["cumulative_wei"] = "lots".into();
    let err: SessionError = RawSessionRequest::from_json(&garbage.to_string())
        .unwrap()
        .decode()
        .unwrap_err()
        .into();
    assert_eq!(err.kind(), "malformed");
    assert!(err.to_string().contains("cumulative_wei"), "{err}");
}

#[test]
fn underpaying_vouchers_are_refused_then_the_session_ends() {
    let mut f = admitted();
    // The provider measured 1000 bytes (= 1000 wei) when this voucher arrived.
    let first = voucher(&f, &f.client, 1, 100);
    f.table
        .offer_voucher(&f.client_peer, &first, 1000, NOW + 1000)
        .unwrap();
    // Next voucher must carry at least 90 % of 1000.
    for (i, amount) in [800u64, 850, 899].into_iter().enumerate() {
        let v = voucher(&f, &f.client, 1, amount);
        let err = f
            .table
            .offer_voucher(&f.client_peer, &v, 5000, NOW + 2000)
            .unwrap_err();
        assert_eq!(err.kind(), "underpaid", "{err}");
        assert_eq!(f.table.get(&U256::from(1)).unwrap().strikes, i as u32 + 1);
    }
    assert_eq!(
        f.table.to_end(NOW + 2000),
        vec![(U256::from(1), EndReason::Underpaying)]
    );
    let ok = voucher(&f, &f.client, 1, 900);
    f.table
        .offer_voucher(&f.client_peer, &ok, 5000, NOW + 3000)
        .unwrap();
    assert!(f.table.to_end(NOW + 3000).is_empty());
}

#[test]
fn redeems_past_the_threshold_and_ends_idle_sessions() {
    let mut f = admitted();
    let v = voucher(&f, &f.client, 1, 600);
    let out = f
        .table
        .offer_voucher(&f.client_peer, &v, 0, NOW + 1000)
        .unwrap();
    let redeem = out.redeem.expect("600 ≥ threshold 500");
    assert_eq!(redeem.cumulative_amount, U256::from(600));
    f.table
        .mark_redeemed(U256::from(1), U256::from(600), NOW + 1100);
    let v = voucher(&f, &f.client, 1, 700);
    let out = f
        .table
        .offer_voucher(&f.client_peer, &v, 0, NOW + 2000)
        .unwrap();
    assert_eq!(out.redeem, None, "only 100 unredeemed");
    assert!(f.table.to_end(NOW + 2000 + 30_000).is_empty());
    assert_eq!(
        f.table.to_end(NOW + 2000 + 30_001),
        vec![(U256::from(1), EndReason::Idle)]
    );
    let session = f.table.remove(&U256::from(1)).unwrap();
    assert_eq!(session.ledger.owed(), U256::from(700));
    assert!(f.table.is_empty());
}

#[test]
fn snapshot_shows_vouchers_and_redemptions_as_they_happen() {
    let mut f = admitted();
    let [before] = f.table.snapshot().try_into().unwrap();
    assert_eq!(before.order_id, U256::from(1));
    assert_eq!(before.wg_key, WgPublicKey([1; 32]));
    assert_eq!(before.address, Ipv4Addr::new(10, 77, 0, 2));
    assert_eq!((before.accepted_at_ms, before.last_voucher_ms), (NOW, None));
    assert_eq!(before.vouchers_cumulative, U256::ZERO);
    let v = voucher(&f, &f.client, 1, 600);
    f.table
        .offer_voucher(&f.client_peer, &v, 0, NOW + 1000)
        .unwrap();
    f.table
        .mark_redeemed(U256::from(1), U256::from(600), NOW + 1100);
    let [after] = f.table.snapshot().try_into().unwrap();
    assert_eq!(after.last_voucher_ms, Some(NOW + 1000));
    assert_eq!(after.vouchers_cumulative, U256::from(600));
    assert_eq!(
        (after.redeemed, after.escrow),
        (U256::from(600), U256::from(10_000))
    );
}

#[test]
fn only_the_connecting_peer_may_act_on_a_session() {
    let mut f = admitted();
    let stranger = peer();
    let err = f.table.session_of(U256::from(1), &stranger).unwrap_err();
    assert_eq!(err.kind(), "not_session_client");
    assert!(err.to_string().contains(&stranger.to_string()), "{err}");
    // Even a voucher the client really signed is refused from a stranger.
    let v = voucher(&f, &f.client, 1, 100);
    let err = f.table.offer_voucher(&stranger, &v, 0, NOW).unwrap_err();
    assert_eq!(err.kind(), "not_session_client");
    let session = f.table.get(&U256::from(1)).unwrap();
    assert_eq!((session.ledger.owed(), session.strikes), (U256::ZERO, 0));
    assert!(f.table.session_of(U256::from(1), &f.client_peer).is_ok());
    assert_eq!(
        f.table
            .session_of(U256::from(2), &f.client_peer)
            .unwrap_err()
            .kind(),
        "no_session"
    );
}

#[test]
fn only_vouchers_the_client_signed_count_as_strikes() {
    let mut f = admitted();
    let first = voucher(&f, &f.client, 1, 100);
    f.table
        .offer_voucher(&f.client_peer, &first, 1000, NOW + 1000)
        .unwrap();
    let intruder = PrivateKeySigner::random();
    for amount in [10u64, 200, 20_000] {
        let forged = voucher(&f, &intruder, 1, amount);
        let err = f
            .table
            .offer_voucher(&f.client_peer, &forged, 5000, NOW + 2000)
            .unwrap_err();
        assert_eq!(err.kind(), "voucher_bad_signature", "{amount}: {err}");
    }
    assert_eq!(f.table.get(&U256::from(1)).unwrap().strikes, 0);
    assert!(f.table.to_end(NOW + 2000).is_empty());
    // The client's own voucher above the escrow is a strike.
    let huge = voucher(&f, &f.client, 1, 10_001);
    let err = f
        .table
        .offer_voucher(&f.client_peer, &huge, 5000, NOW + 2000)
        .unwrap_err();
    assert_eq!(err.kind(), "voucher_exceeds_escrow");
    assert_eq!(f.table.get(&U256::from(1)).unwrap().strikes, 1);
}

#[test]
fn the_tolerance_applies_to_each_interval() {
    let mut f = admitted();
    // Measured 1000 at the first voucher, 1100 at the second.
    let v = voucher(&f, &f.client, 1, 100);
    f.table
        .offer_voucher(&f.client_peer, &v, 1000, NOW + 1000)
        .unwrap();
    let v = voucher(&f, &f.client, 1, 900);
    f.table
        .offer_voucher(&f.client_peer, &v, 1100, NOW + 2000)
        .unwrap();
    // Next: at least 1100 less 10 % of the 100 wei interval = 1090 (90 %
    // of the total, 990, is no longer enough).
    let short = voucher(&f, &f.client, 1, 1089);
    let err = f
        .table
        .offer_voucher(&f.client_peer, &short, 1200, NOW + 3000)
        .unwrap_err();
    assert_eq!(err.kind(), "underpaid");
    assert!(err.to_string().contains("1090"), "{err}");
    let enough = voucher(&f, &f.client, 1, 1090);
    f.table
        .offer_voucher(&f.client_peer, &enough, 1200, NOW + 3000)
        .unwrap();
}

#[test]
fn forwarding_stops_past_the_credit_limit_and_resumes_when_paid() {
    let mut f = admitted();
    let id = U256::from(1);
    // 1 wei per byte, credit limit 2000.
    assert_eq!(f.table.check_credit(id, 2000, NOW + 500), None);
    assert_eq!(
        f.table.check_credit(id, 2001, NOW + 1000),
        Some(CreditAction::Block)
    );
    assert!(f.table.get(&id).unwrap().blocked);
    assert_eq!(
        f.table.check_credit(id, 2100, NOW + 1500),
        None,
        "still blocked"
    );
    // A voucher covering all but the credit restores forwarding.
    let v = voucher(&f, &f.client, 1, 100);
    f.table
        .offer_voucher(&f.client_peer, &v, 2100, NOW + 1600)
        .unwrap();
    assert_eq!(
        f.table.check_credit(id, 2100, NOW + 1600),
        Some(CreditAction::Restore)
    );
    assert!(!f.table.get(&id).unwrap().blocked);
    // The escrow (10 000) spent: end.
    assert_eq!(
        f.table.check_credit(id, 10_000, NOW + 2000),
        Some(CreditAction::End)
    );
    assert_eq!(f.table.check_credit(U256::from(9), 0, NOW), None);
}

#[test]
fn a_restored_session_keeps_its_voucher_client_and_redemptions() {
    use crate::session::record::{RecordState, SessionRecord};
    let mut f = fixture();
    let best = sign_voucher(&f.client, &f.domain, U256::from(7), U256::from(3_000)).unwrap();
    let record = SessionRecord {
        order_id: U256::from(7),
        client: f.client.address(),
        client_peer: f.client_peer,
        wg_key: WgPublicKey([7; 32]),
        address: Ipv4Addr::new(10, 77, 0, 7),
        escrow: U256::from(10_000),
        state: RecordState::Active,
        best: Some(best),
        redeemed: U256::from(1_000),
        accepted_at_ms: NOW - 60_000,
        last_voucher_ms: NOW,
        updated_ms: NOW,
    };
    f.table.restore(&record, NOW);
    let session = f.table.get(&U256::from(7)).expect("restored");
    assert_eq!(session.ledger.owed(), U256::from(3_000));
    assert_eq!(session.redeemed, U256::from(1_000));
    assert_eq!(session.accepted_at_ms, NOW - 60_000);
    // Only the peer that connected it may go on; a replay is refused, a
    // higher voucher taken (the first after a restart is never a strike).
    let other = peer();
    let next = voucher(&f, &f.client, 7, 3_500);
    assert!(matches!(
        f.table.offer_voucher(&other, &next, 0, NOW + 1),
        Err(SessionError::NotSessionClient { .. })
    ));
    let replay = voucher(&f, &f.client, 7, 3_000);
    assert!(f
        .table
        .offer_voucher(&f.client_peer, &replay, 0, NOW + 1)
        .is_err());
    let out = f
        .table
        .offer_voucher(&f.client_peer, &next, 3_500, NOW + 2)
        .unwrap();
    assert_eq!(out.cumulative, U256::from(3_500));
    // The unredeemed part is what gets redeemed.
    assert_eq!(
        f.table
            .get(&U256::from(7))
            .unwrap()
            .ledger
            .to_redeem()
            .map(|v| v.cumulative_amount),
        Some(U256::from(3_500))
    );
}

/// `max_clients` and the per-client cap, with orders being accepted.
#[path = "table_capacity_tests.rs"]
mod capacity;
