use super::*;
use flowshield_chain::alloy::primitives::{Address, Bytes};
use flowshield_proto::PeerId;
use std::net::Ipv4Addr;

fn key(n: u8) -> WgPublicKey {
    WgPublicKey([n; 32])
}

fn record(order: u64, wg: u8, state: RecordState, best: Option<u64>) -> SessionRecord {
    SessionRecord {
        order_id: U256::from(order),
        client: Address::repeat_byte(0xc1),
        client_peer: PeerId::random(),
        wg_key: key(wg),
        address: Ipv4Addr::new(10, 77, 0, wg),
        escrow: U256::from(1_000u64),
        state,
        best: best.map(|amount| SignedVoucher {
            order_id: U256::from(order),
            cumulative_amount: U256::from(amount),
            signature: Bytes::from(vec![7u8; 65]),
        }),
        redeemed: U256::ZERO,
        accepted_at_ms: 1,
        last_voucher_ms: 2,
        updated_ms: 3,
    }
}

fn added(order: u64, wg: u8) -> AddedPeer {
    AddedPeer {
        wg_key: key(wg),
        order_id: U256::from(order),
        address: Ipv4Addr::new(10, 77, 0, wg),
        added_ms: 1,
    }
}

fn on_chain(status: OrderStatus, redeemed: u64) -> ChainOrder {
    ChainOrder {
        status,
        escrow: U256::from(1_000u64),
        redeemed: U256::from(redeemed),
    }
}

fn peer(wg: u8, ips: &[&str]) -> PlanePeer {
    PlanePeer {
        wg_key: key(wg),
        allowed_ips: ips.iter().map(|s| s.parse().unwrap()).collect(),
    }
}

fn chain(entries: &[(u64, ChainOrder)]) -> HashMap<U256, ChainOrder> {
    entries
        .iter()
        .map(|(id, o)| (U256::from(*id), o.clone()))
        .collect()
}

#[test]
fn active_order_with_its_peer_resumes_without_touching_the_peer() {
    let records = [record(1, 2, RecordState::Active, Some(300))];
    let plan = plan(
        &records,
        &[added(1, 2)],
        &chain(&[(1, on_chain(OrderStatus::Active, 100))]),
        &[peer(2, &["10.77.0.2/32"])],
    );
    assert_eq!(plan.resume.len(), 1);
    assert!(!plan.resume[0].restore_peer);
    assert_eq!(plan.resume[0].record.redeemed, U256::from(100u64));
    assert_eq!(plan.resume[0].record.best_amount(), U256::from(300u64));
    assert!(plan.settle.is_empty() && plan.remove_peers.is_empty());
    assert!(plan.leave_alone.is_empty());
}

#[test]
fn active_order_whose_peer_is_gone_or_blocked_is_re_added() {
    let records = [
        record(1, 2, RecordState::Active, None),
        record(3, 4, RecordState::Accepting, None),
    ];
    let plan = plan(
        &records,
        &[added(1, 2), added(3, 4)],
        &chain(&[
            (1, on_chain(OrderStatus::Active, 0)),
            (3, on_chain(OrderStatus::Active, 0)),
        ]),
        // Order 1's peer is absent; order 3's has no allowed IPs (blocked).
        &[peer(4, &[])],
    );
    assert_eq!(plan.resume.len(), 2);
    assert!(plan.resume.iter().all(|r| r.restore_peer));
    // Accepting + mined accept = active.
    assert!(plan
        .resume
        .iter()
        .all(|r| r.record.state == RecordState::Active));
    assert!(plan.remove_peers.is_empty());
}

#[test]
fn ending_or_closing_session_redeems_its_better_voucher_and_settles() {
    let records = [
        record(1, 2, RecordState::Ending, Some(500)),
        record(3, 4, RecordState::Active, Some(200)),
    ];
    let plan = plan(
        &records,
        &[added(1, 2), added(3, 4)],
        &chain(&[
            (1, on_chain(OrderStatus::Active, 100)),
            // The client asked to close; the chain already has 200.
            (3, on_chain(OrderStatus::Closing, 200)),
        ]),
        &[peer(2, &["10.77.0.2/32"]), peer(4, &["10.77.0.4/32"])],
    );
    assert!(plan.resume.is_empty());
    assert_eq!(plan.settle.len(), 2);
    let first = &plan.settle[0];
    assert_eq!(first.order_id, U256::from(1u64));
    assert_eq!(
        first.voucher.as_ref().map(|v| v.cumulative_amount),
        Some(U256::from(500u64))
    );
    // Nothing better than what the chain paid: settle only.
    assert_eq!(plan.settle[1].order_id, U256::from(3u64));
    assert!(plan.settle[1].voucher.is_none());
    assert_eq!(plan.remove_peers, vec![key(2), key(4)]);
}

#[test]
fn active_order_without_a_record_is_settled_without_a_voucher() {
    let plan = plan(
        &[],
        &[],
        &chain(&[(9, on_chain(OrderStatus::Active, 0))]),
        &[],
    );
    assert_eq!(
        plan.settle,
        vec![Settle {
            order_id: U256::from(9u64),
            voucher: None,
            reason: "no record of the session",
        }]
    );
}

#[test]
fn pending_order_is_rejected_and_ended_orders_forgotten() {
    let records = [
        record(1, 2, RecordState::Accepting, None),
        record(3, 4, RecordState::Active, Some(10)),
        record(5, 6, RecordState::Active, None),
    ];
    let plan = plan(
        &records,
        &[added(1, 2), added(3, 4)],
        &chain(&[
            (1, on_chain(OrderStatus::Pending, 0)),
            (3, on_chain(OrderStatus::Settled, 10)),
            // 5: unknown to the chain (absent).
        ]),
        &[peer(2, &["10.77.0.2/32"])],
    );
    assert_eq!(plan.reject, vec![U256::from(1u64)]);
    assert_eq!(plan.forget, vec![U256::from(3u64), U256::from(5u64)]);
    assert!(plan.resume.is_empty() && plan.settle.is_empty());
    // Our peers go, present on the plane or not.
    assert_eq!(plan.remove_peers, vec![key(2), key(4)]);
}

#[test]
fn operator_and_verifier_probe_peers_are_never_touched() {
    // The operator's own peer (0x50) and a verifier's probe peer (0x60) sit
    // on the plane; neither was added by the provider, even though the
    // probe uses an address inside the provider's pool.
    let records = [record(1, 2, RecordState::Ending, Some(5))];
    let plan = plan(
        &records,
        &[added(1, 2)],
        &chain(&[(1, on_chain(OrderStatus::Settled, 5))]),
        &[
            peer(2, &["10.77.0.2/32"]),
            peer(0x50, &["192.168.1.0/24"]),
            peer(0x60, &["10.77.0.200/32"]),
        ],
    );
    assert_eq!(plan.remove_peers, vec![key(2)]);
    assert_eq!(plan.leave_alone, vec![key(0x50), key(0x60)]);
    assert!(!plan.remove_peers.contains(&key(0x50)));
    assert!(!plan.remove_peers.contains(&key(0x60)));
}

#[test]
fn a_foreign_peer_holding_a_sessions_key_is_left_and_the_order_settled() {
    // The record says order 1 uses key 2, but the peer with key 2 on the
    // plane was not added by us: never touch it, end the order instead.
    let records = [record(1, 2, RecordState::Active, Some(40))];
    let plan = plan(
        &records,
        &[],
        &chain(&[(1, on_chain(OrderStatus::Active, 0))]),
        &[peer(2, &["172.16.0.1/32"])],
    );
    assert!(plan.resume.is_empty());
    assert_eq!(plan.settle.len(), 1);
    assert_eq!(
        plan.settle[0].voucher.as_ref().map(|v| v.cumulative_amount),
        Some(U256::from(40u64))
    );
    assert!(plan.remove_peers.is_empty());
    assert_eq!(plan.leave_alone, vec![key(2)]);
}

#[test]
fn escrow_top_up_and_chain_redemptions_refresh_a_resumed_record() {
    let mut rec = record(1, 2, RecordState::Active, Some(300));
    rec.redeemed = U256::from(50u64);
    let mut order = on_chain(OrderStatus::Active, 200);
    order.escrow = U256::from(5_000u64);
    let plan = plan(
        &[rec],
        &[added(1, 2)],
        &chain(&[(1, order)]),
        &[peer(2, &["10.77.0.2/32"])],
    );
    let resumed = &plan.resume[0].record;
    assert_eq!(resumed.escrow, U256::from(5_000u64));
    assert_eq!(resumed.redeemed, U256::from(200u64));
}
