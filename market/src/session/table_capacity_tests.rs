//! The provider's places: `max_clients` and the per-client cap count
//! admitted sessions and orders still being accepted on chain.

use super::*;

#[test]
fn connect_is_refused_when_full_or_when_the_client_holds_too_many() {
    let mut f = fixture();
    let order = f.order.clone();
    for id in 1..=2u64 {
        f.table.admit(
            U256::from(id),
            &order,
            f.client_peer,
            WgPublicKey([id as u8; 32]),
            Ipv4Addr::new(10, 77, 0, id as u8 + 1),
            NOW,
        );
    }
    // max_orders_per_client = 2: a third order of the same client is refused.
    let third = connect(&f, &f.client, 3, NOW);
    let err = f
        .table
        .check_connect(&third, Some(&order), &f.provider_peer, NOW)
        .unwrap_err();
    assert_eq!(err.kind(), "too_many_orders");
    assert!(err.to_string().contains("2 orders"), "{err}");
    // Another client fits (3 clients at most) ...
    let other = PrivateKeySigner::random();
    let mut theirs = order.clone();
    theirs.client = other.address();
    let req = connect(&f, &other, 3, NOW);
    f.table
        .check_connect(&req, Some(&theirs), &f.provider_peer, NOW)
        .unwrap();
    f.table.admit(
        U256::from(3),
        &theirs,
        peer(),
        WgPublicKey([3; 32]),
        Ipv4Addr::new(10, 77, 0, 4),
        NOW,
    );
    // ... and then the provider is full.
    let req = connect(&f, &other, 4, NOW);
    let err = f
        .table
        .check_connect(&req, Some(&theirs), &f.provider_peer, NOW)
        .unwrap_err();
    assert_eq!(err.kind(), "provider_full");
}

#[test]
fn orders_being_accepted_hold_their_places_until_admitted_or_released() {
    let mut f = fixture();
    let order = f.order.clone();
    let check = |f: &Fixture, signer: &PrivateKeySigner, view: &OrderView, id: u64| {
        f.table.check_connect(
            &connect(f, signer, id, NOW),
            Some(view),
            &f.provider_peer,
            NOW,
        )
    };
    // Three clients pass their checks; none is admitted yet (acceptOrder
    // still mining). Each reserves its place under the same lock.
    let mut views = Vec::new();
    for id in 1..=3u64 {
        let signer = PrivateKeySigner::random();
        let mut view = order.clone();
        view.client = signer.address();
        check(&f, &signer, &view, id).unwrap();
        f.table
            .reserve(U256::from(id), view.client, WgPublicKey([id as u8; 32]));
        views.push((signer, view));
    }
    assert_eq!((f.table.len(), f.table.reserved_len()), (0, 3));
    // A fourth racing client finds the provider full.
    let late = PrivateKeySigner::random();
    let mut late_view = order.clone();
    late_view.client = late.address();
    assert_eq!(
        check(&f, &late, &late_view, 4).unwrap_err().kind(),
        "provider_full"
    );
    // The same order again, or its key under another order, is refused.
    let (signer, view) = &views[0];
    assert_eq!(
        check(&f, signer, view, 1).unwrap_err().kind(),
        "already_connected"
    );
    let same_key = ConnectRequest::sign(
        &late,
        U256::from(5),
        WgPublicKey([2; 32]),
        &f.provider_peer,
        NOW,
    )
    .unwrap();
    let err = f
        .table
        .check_connect(&same_key, Some(&late_view), &f.provider_peer, NOW)
        .unwrap_err();
    assert_eq!(err.kind(), "key_in_use");
    // One acceptance fails: its place is free again.
    f.table.release(&U256::from(3));
    check(&f, &late, &late_view, 4).unwrap();
    // Admission turns a reservation into a session (still one place).
    f.table.admit(
        U256::from(1),
        &views[0].1,
        f.client_peer,
        WgPublicKey([1; 32]),
        Ipv4Addr::new(10, 77, 0, 2),
        NOW,
    );
    assert_eq!((f.table.len(), f.table.reserved_len()), (1, 1));
    f.table
        .reserve(U256::from(4), late.address(), WgPublicKey([4; 32]));
    let last = PrivateKeySigner::random();
    let mut last_view = order.clone();
    last_view.client = last.address();
    assert_eq!(
        check(&f, &last, &last_view, 6).unwrap_err().kind(),
        "provider_full"
    );
}

#[test]
fn one_client_s_orders_being_accepted_count_against_its_cap() {
    let mut f = fixture();
    let order = f.order.clone();
    for id in 1..=2u64 {
        f.table
            .check_connect(
                &connect(&f, &f.client, id, NOW),
                Some(&order),
                &f.provider_peer,
                NOW,
            )
            .unwrap();
        f.table
            .reserve(U256::from(id), order.client, WgPublicKey([id as u8; 32]));
    }
    let err = f
        .table
        .check_connect(
            &connect(&f, &f.client, 3, NOW),
            Some(&order),
            &f.provider_peer,
            NOW,
        )
        .unwrap_err();
    assert_eq!(err.kind(), "too_many_orders");
}
