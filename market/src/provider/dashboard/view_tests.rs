use super::*;
use crate::provider::dashboard::fixtures::{self, inputs, ETH, NOW_MS};
use flowshield_ca::BindingField;
use flowshield_chain::alloy::primitives::Address;

fn wei(amount: &Amount) -> u128 {
    amount.wei.parse().unwrap()
}

#[test]
fn traffic_is_matched_to_sessions_by_wireguard_key() {
    let view = DashboardView::build(&inputs());
    let traffic = view.traffic.data().unwrap();
    assert_eq!(traffic.interface, "flowshield0");
    let [seven, eight] = traffic.sessions.as_slice() else {
        panic!("two sessions: {traffic:?}")
    };
    assert_eq!((seven.order_id.as_str(), seven.on_data_plane), ("7", true));
    assert_eq!((seven.rx_bytes, seven.tx_bytes), (300_000, 4_500_000));
    assert_eq!(seven.last_handshake_ms, Some(NOW_MS - 5_000));
    assert_eq!(seven.client_wg_key, WgPublicKey([2; 32]).to_string());
    assert_eq!((eight.on_data_plane, eight.rx_bytes), (false, 0));
    assert_eq!(
        (traffic.total_rx_bytes, traffic.total_tx_bytes),
        (300_000, 4_500_000)
    );
    assert_eq!(
        traffic.other_peers, 1,
        "the stray peer is counted, not summed"
    );
}

#[test]
fn sessions_show_the_table_with_exact_amounts() {
    let view = DashboardView::build(&inputs());
    let open = &view.sessions.data().unwrap().open;
    assert_eq!(open.len(), 2);
    let s = &open[0];
    assert_eq!(s.order_id, "7");
    assert_eq!(s.client, Address::repeat_byte(2).to_string());
    assert_eq!(s.tunnel_address, "10.77.0.2");
    assert_eq!(s.started_ms, NOW_MS - 120_000);
    assert_eq!(s.last_voucher_ms, Some(NOW_MS - 2_000));
    assert_eq!(
        (wei(&s.redeemed), wei(&s.vouchers_cumulative)),
        (1_000, 1_500)
    );
    assert_eq!(s.escrow.eth, "0.05");
    assert_eq!(open[1].last_voucher_ms, None);
}

#[test]
fn earnings_add_open_and_settled_sessions_and_the_chain_balance() {
    let view = DashboardView::build(&inputs());
    let e = view.earnings.data().unwrap();
    assert_eq!(wei(&e.open_redeemed), 1_000);
    assert_eq!(wei(&e.open_unredeemed), 500);
    assert_eq!((e.settled_sessions, wei(&e.settled_paid)), (2, 40_000));
    assert_eq!(wei(&e.redeemed_total), 41_000);
    assert_eq!(e.claimable, Panel::ok(Amount::from_wei(U256::from(12_345))));
}

#[test]
fn a_failed_source_degrades_only_its_own_panel() {
    let base = inputs();
    let full = DashboardView::build(&base);

    let mut no_uapi = base.clone();
    no_uapi.traffic = Panel::unavailable("UAPI flowshield0: connection refused");
    let view = DashboardView::build(&no_uapi);
    assert_eq!(
        view.traffic,
        Panel::unavailable("UAPI flowshield0: connection refused")
    );
    assert_eq!(view.sessions, full.sessions);
    assert_eq!(view.earnings, full.earnings);

    let mut no_chain = base.clone();
    no_chain.chain = Panel::unavailable("reading the market contract: timed out");
    let view = DashboardView::build(&no_chain);
    assert_eq!(
        view.stake,
        Panel::unavailable("reading the market contract: timed out")
    );
    let e = view.earnings.data().expect("session earnings stay");
    assert_eq!(wei(&e.redeemed_total), 41_000);
    assert_eq!(
        e.claimable,
        Panel::unavailable("reading the market contract: timed out")
    );
    assert_eq!(
        (&view.traffic, &view.certificate),
        (&full.traffic, &full.certificate)
    );

    let mut no_fullnode = base.clone();
    no_fullnode.reputation = Panel::unavailable("http://fn: connection refused");
    let view = DashboardView::build(&no_fullnode);
    assert_eq!(
        view.reputation,
        Panel::unavailable("http://fn: connection refused")
    );
    assert_eq!(view.stake, full.stake);

    let mut no_registry = base.clone();
    if let Panel::Ok { data } = &mut no_registry.certificate {
        data.registry = Panel::unavailable("registry call isRevoked failed: timeout");
    }
    let view = DashboardView::build(&no_registry);
    let cert = view
        .certificate
        .data()
        .expect("the certificate itself is shown");
    assert_eq!(cert.verdict, CertVerdict::ValidUnchecked);
    assert_eq!(
        cert.registry,
        Panel::unavailable("registry call isRevoked failed: timeout")
    );
}

#[test]
fn a_provider_that_does_not_sell_says_so() {
    let mut i = inputs();
    i.sessions = Panel::not_configured("not selling: the provider has no [chain] table");
    i.chain = Panel::not_configured("no [chain] table");
    let view = DashboardView::build(&i);
    assert!(matches!(view.sessions, Panel::NotConfigured { .. }));
    assert!(matches!(view.earnings, Panel::NotConfigured { .. }));
    assert!(matches!(view.stake, Panel::NotConfigured { .. }));
    let traffic = view.traffic.data().unwrap();
    assert!(traffic.sessions.is_empty());
    assert_eq!(traffic.other_peers, 2);
    i.exit = Panel::not_configured("not selling");
    let view = DashboardView::build(&i);
    assert!(matches!(view.exit, Panel::NotConfigured { .. }));
}

#[test]
fn stake_shows_activity_and_the_unstake_request() {
    let build = |f: &dyn Fn(&mut ChainFacts)| {
        let mut i = inputs();
        if let Panel::Ok { data } = &mut i.chain {
            f(data);
        }
        DashboardView::build(&i).stake.data().unwrap().clone()
    };
    let plain = build(&|_| {});
    assert!(plain.active && plain.registered);
    assert_eq!(plain.unstake, UnstakeState::None);
    assert_eq!(wei(&plain.staked), u128::from(ETH));

    let unbonding = build(&|c| {
        c.stake = U256::from(ETH / 2);
        c.unbonding = U256::from(ETH / 2);
        c.unbonding_unlock_at = NOW_MS / 1000 + 3600;
    });
    assert!(!unbonding.active, "below the minimum stake");
    assert_eq!(
        unbonding.unstake,
        UnstakeState::Unbonding {
            amount: Amount::from_wei(U256::from(ETH / 2)),
            unlock_at_ms: NOW_MS + 3_600_000
        }
    );
    let withdrawable = build(&|c| {
        c.unbonding = U256::from(5);
        c.unbonding_unlock_at = NOW_MS / 1000 - 10;
    });
    assert!(
        matches!(withdrawable.unstake, UnstakeState::Withdrawable { since_ms, .. } if since_ms == NOW_MS - 10_000)
    );
    let stranger = build(&|c| {
        c.registered = false;
        c.stake = U256::ZERO;
    });
    assert!(!stranger.registered && !stranger.active);
}

#[test]
fn reputation_without_reports_is_marked_neutral() {
    let view = DashboardView::build(&inputs());
    let r = view.reputation.data().unwrap();
    assert!(!r.neutral);
    assert_eq!((r.score, r.reports, r.latest_period), (0.65, 3, Some(41)));
    assert_eq!(r.fullnode, "http://10.250.0.1:8080");
    let mut i = inputs();
    if let Panel::Ok { data } = &mut i.reputation {
        *data = ReputationFacts {
            fullnode: "http://fn".into(),
            reputation: 0.5,
            reports: 0,
            passed: 0,
            periods: 0,
            latest_period: None,
        };
    }
    assert!(DashboardView::build(&i).reputation.data().unwrap().neutral);
}

fn cert_view(f: impl FnOnce(&mut CertInput)) -> Panel<CertificateView> {
    let mut i = inputs();
    if let Panel::Ok { data } = &mut i.certificate {
        f(data);
    }
    DashboardView::build(&i).certificate
}

#[test]
fn a_valid_certificate_shows_its_facts_and_chain_status() {
    let i = inputs();
    let view = DashboardView::build(&i);
    let c = view.certificate.data().unwrap();
    assert_eq!(c.verdict, CertVerdict::Valid);
    assert_eq!(c.validity, Validity::Valid);
    assert!(c.binds_this_node);
    assert_eq!(c.mismatch, None);
    assert_eq!(c.subject, format!("CN={}", i.offer.provider_peer_id));
    assert_eq!(c.bound_peer_id, i.offer.provider_peer_id.to_base58());
    assert_eq!(c.bound_wg_key, i.offer.wg_public_key.to_string());
    assert_eq!(
        c.not_before_ms,
        NOW_MS - 660_000,
        "issued 10 min ago, back-dated 1 min"
    );
    assert_eq!(c.not_after_ms, NOW_MS - 600_000 + 86_400_000);
    assert_eq!(c.serial.len() % 2, 0);
    assert!(!c.serial.is_empty());
    assert_eq!(c.operator, Address::repeat_byte(0x0c).to_string());
}

#[test]
fn certificate_verdicts_name_what_is_wrong() {
    let verdict = |f: Box<dyn FnOnce(&mut CertInput)>| cert_view(f).data().unwrap().verdict;
    assert_eq!(
        verdict(Box::new(
            |c| c.registry = Panel::not_configured("no registry")
        )),
        CertVerdict::ValidUnchecked
    );
    let revoked = RegistryFacts {
        operator_registered: true,
        root_matches: true,
        revoked: true,
    };
    assert_eq!(
        verdict(Box::new(move |c| c.registry = Panel::ok(revoked))),
        CertVerdict::Revoked
    );
    let stranger = RegistryFacts {
        operator_registered: true,
        root_matches: false,
        revoked: false,
    };
    assert_eq!(
        verdict(Box::new(move |c| c.registry = Panel::ok(stranger))),
        CertVerdict::UnknownOperator
    );

    let other = fixtures::node().0.binding();
    let wrong = cert_view(|c| c.expected.wg_pubkey = other.wg_pubkey);
    let wrong = wrong.data().unwrap();
    assert_eq!(wrong.verdict, CertVerdict::WrongKeys);
    assert!(!wrong.binds_this_node);
    assert_eq!(wrong.mismatch, Some(BindingField::WgPubkey.to_string()));
}

#[test]
fn an_expired_certificate_is_still_described() {
    let (keys, offer) = fixtures::node();
    let issued_at = NOW_MS / 1000 - 7200;
    let chain = fixtures::certificate(&keys, issued_at, 3600);
    let expired = cert_view(|c| {
        c.inspected = inspect_certificate(&chain, NOW_MS / 1000);
        c.expected = crate::wire::cert::binding_of(&offer).unwrap();
    });
    let expired = expired.data().unwrap();
    assert_eq!(
        (expired.verdict, expired.validity),
        (CertVerdict::Expired, Validity::Expired)
    );
    assert_eq!(expired.not_after_ms, (issued_at + 3600) * 1000);
    assert!(expired.binds_this_node);

    let early = inspect_certificate(&chain, issued_at - 3600).unwrap();
    assert_eq!(early.1, Validity::NotYetValid);
}

#[test]
fn a_certificate_that_does_not_verify_is_unavailable_with_the_reason() {
    let (keys, _) = fixtures::node();
    let mut chain = fixtures::certificate(&keys, NOW_MS / 1000, 3600);
    chain.swap(0, 1);
    let view = cert_view(|c| c.inspected = inspect_certificate(&chain, NOW_MS / 1000));
    let Panel::Unavailable { error } = view else {
        panic!("{view:?}")
    };
    assert!(
        error.starts_with("the certificate does not verify:"),
        "{error}"
    );
}

#[test]
fn the_json_is_tagged_by_panel_state() {
    let mut i = inputs();
    i.traffic = Panel::unavailable("UAPI down");
    i.reputation = Panel::not_configured("no fullnode_url in [dashboard]");
    let json = serde_json::to_value(DashboardView::build(&i)).unwrap();
    assert_eq!(
        json["traffic"],
        serde_json::json!({"state": "unavailable", "error": "UAPI down"})
    );
    assert_eq!(json["reputation"]["state"], "not_configured");
    assert_eq!(json["sessions"]["state"], "ok");
    assert_eq!(json["sessions"]["data"]["open"][0]["order_id"], "7");
    assert_eq!(json["stake"]["data"]["staked"]["wei"], ETH.to_string());
    assert_eq!(json["stake"]["data"]["staked"]["eth"], "1");
    assert_eq!(json["stake"]["data"]["unstake"]["state"], "none");
    assert_eq!(json["certificate"]["data"]["verdict"], "valid");
    assert_eq!(
        json["earnings"]["data"]["claimable"]["data"]["wei"],
        "12345"
    );
    assert_eq!(json["generated_at_ms"], NOW_MS);
}
