use super::*;
use flowshield_chain::alloy::primitives::U256;

fn info() -> ConnectedInfo {
    ConnectedInfo {
        order_id: U256::from(1),
        tunnel_address: "10.77.0.2/24".parse().unwrap(),
        provider_wg_public_key: WgPublicKey([7; 32]),
        endpoint: "10.250.0.11:51820".parse().unwrap(),
        allowed_ips: vec![
            "10.77.0.0/24".parse().unwrap(),
            "198.18.99.1/32".parse().unwrap(),
        ],
        persistent_keepalive: 25,
        provider_tunnel_ip: "10.77.0.1".parse().unwrap(),
    }
}

fn nets(list: &[&str]) -> Vec<IpNet> {
    list.iter().map(|n| n.parse().unwrap()).collect()
}

/// Checks `info` as a client of a provider advertising 10.77.0.0/24 that
/// asked for 198.18.99.1/32, on a LAN 10.250.0.0/24 behind 10.250.0.1.
fn check(info: &ConnectedInfo, subnet: Option<&str>) -> Result<(), Distrust> {
    let requested = nets(&["198.18.99.1/32"]);
    let underlay = nets(&[
        "10.250.0.11/32",
        "10.250.0.0/24",
        "10.250.0.1/32",
        "127.0.0.0/8",
    ]);
    check_routes(
        info,
        &RouteRules {
            subnet: subnet.map(|s| s.parse().unwrap()),
            requested: &requested,
            underlay: &underlay,
        },
    )
}

fn field_of(result: Result<(), Distrust>) -> &'static str {
    result.expect_err("refused").field
}

#[test]
fn honest_answers_pass_with_and_without_an_advertised_subnet() {
    assert_eq!(check(&info(), Some("10.77.0.0/24")), Ok(()));
    assert_eq!(check(&info(), Some("10.77.0.0/16")), Ok(()));
    assert_eq!(check(&info(), None), Ok(()));
}

#[test]
fn hijacking_tunnel_addresses_are_refused() {
    for (address, subnet) in [
        ("0.0.0.0/0", Some("10.77.0.0/24")),
        ("0.0.0.0/0", None),
        ("10.77.0.2/8", Some("10.77.0.0/24")),
        ("10.78.0.2/24", Some("10.77.0.0/24")),
        ("10.250.0.7/24", None),
        ("10.77.0.0/24", None),
        ("10.77.0.255/24", None),
    ] {
        let evil = ConnectedInfo {
            tunnel_address: address.parse().unwrap(),
            ..info()
        };
        assert_eq!(
            field_of(check(&evil, subnet)),
            "tunnel_address",
            "{address}"
        );
    }
    let evil = ConnectedInfo {
        provider_tunnel_ip: "10.250.0.1".parse().unwrap(),
        ..info()
    };
    assert_eq!(field_of(check(&evil, None)), "provider_tunnel_ip");
}

#[test]
fn routes_outside_the_subnet_or_over_the_underlay_are_refused() {
    for (routes, subnet) in [
        (vec!["0.0.0.0/0"], Some("10.77.0.0/24")),
        (vec!["10.77.0.0/24", "10.250.0.11/32"], Some("10.77.0.0/24")),
        (vec!["10.77.0.0/24", "127.0.0.0/8"], None),
        (vec!["10.77.0.0/16"], Some("10.77.0.0/24")),
        (vec!["10.77.0.0/24", "198.18.99.0/24"], Some("10.77.0.0/24")),
        (vec!["10.77.0.0/24", "::/0"], None),
        (vec!["10.77.0.128/25"], None),
        (vec![], None),
    ] {
        let evil = ConnectedInfo {
            allowed_ips: nets(&routes),
            ..info()
        };
        assert_eq!(field_of(check(&evil, subnet)), "allowed_ips", "{routes:?}");
    }
    // A requested route that the underlay needs is still refused.
    let requested = nets(&["0.0.0.0/0"]);
    let underlay = nets(&["10.250.0.11/32"]);
    let evil = ConnectedInfo {
        allowed_ips: nets(&["10.77.0.0/24", "0.0.0.0/0"]),
        ..info()
    };
    let rules = RouteRules {
        subnet: None,
        requested: &requested,
        underlay: &underlay,
    };
    assert_eq!(field_of(check_routes(&evil, &rules)), "allowed_ips");
}

#[test]
fn order_and_key_must_match_the_chain() {
    let me = Address::repeat_byte(1);
    let chosen = Address::repeat_byte(2);
    let order = OrderOnChain {
        client: me,
        provider: chosen,
        status: OrderStatus::Active,
    };
    assert_eq!(check_order(&order, me, chosen), Ok(()));
    let pending = OrderOnChain {
        status: OrderStatus::Pending,
        ..order
    };
    assert_eq!(field_of(check_order(&pending, me, chosen)), "order.status");
    let other = OrderOnChain {
        provider: Address::repeat_byte(3),
        ..order
    };
    assert_eq!(field_of(check_order(&other, me, chosen)), "order.provider");
    let theirs = OrderOnChain {
        client: Address::repeat_byte(4),
        ..order
    };
    assert_eq!(field_of(check_order(&theirs, me, chosen)), "order.client");
    assert_eq!(check_provider_key([7; 32], &WgPublicKey([7; 32])), Ok(()));
    let err = check_provider_key([7; 32], &WgPublicKey([8; 32])).unwrap_err();
    assert_eq!(err.field, "provider_wg_public_key");
    assert!(err.to_string().contains("wgPublicKey"), "{err}");
}
