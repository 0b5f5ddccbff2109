//! A paying client uses the provider as an exit and aims at what lies
//! behind it: the provider's LAN, the cloud metadata service
//! (169.254.169.254), another client's tunnel address, and SMTP on the
//! internet (spam from the provider's IP). Without the egress filter it
//! reaches all of them; with the default `[egress]` policy it reaches the
//! "internet" host and nothing else, and the filter's table is gone once
//! the provider stops.
//!
//! ```text
//!  client A (10.77.0.2) ──veth── provider ns ──veth "wan0"── internet 203.0.113.2 (:80, :25)
//!  client B (10.77.0.3) ──veth──┘    │
//!                                    └──veth── LAN 192.168.50.2 (:80), 169.254.169.254 (:80)
//! ```

use crate::fixture::{Actor, Options, Site, ESCROW};
use flowshield_e2e::daemon::Implementation;
use flowshield_e2e::netns::{Netns, VethPair};
use flowshield_e2e::site::{self as e2e, PeerSpec};
use flowshield_market::provider::egress::{ruleset, Egress, EgressFile, NetTools};
use flowshield_market::wire::session::SessionResponse;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

const UPLINK: &str = "wan0";
const INTERNET: &str = "203.0.113.2:80";
const SMTP: &str = "203.0.113.2:25";
const LAN: &str = "192.168.50.2:80";
const METADATA: &str = "169.254.169.254:80";
const OTHER_CLIENT: &str = "10.77.0.3:80";

/// The hosts around the provider, with their listeners (kept open: the
/// kernel completes handshakes for a listening socket without accept).
struct Around {
    internet: Netns,
    _lan: Netns,
    _other: e2e::Site,
    _actors: Vec<Actor>,
    _listeners: Vec<TcpListener>,
}

fn listen(ns: &Netns, addr: &str) -> TcpListener {
    let addr: SocketAddr = addr.parse().expect("address");
    ns.run_inside(|| TcpListener::bind(addr))
        .expect("namespace")
        .unwrap_or_else(|e| panic!("listen on {addr}: {e}"))
}

/// Whether a TCP connection from `ns` to `addr` completes within 2 s.
fn reaches(ns: &Netns, addr: &str) -> bool {
    let addr: SocketAddr = addr.parse().expect("address");
    ns.run_inside(|| TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_ok())
        .expect("namespace")
}

/// Builds the hosts, connects clients A and B through the market (real
/// orders, real tunnels) and routes A's traffic for every target into its
/// tunnel.
async fn surround(site: &mut Site) -> Around {
    let p = &site.wg.ns;
    let internet = Netns::new().expect("internet namespace");
    let wan = VethPair::new(p, "203.0.113.1/24", &internet, "203.0.113.2/24").expect("uplink");
    p.ip(&["link", "set", &wan.a_dev, "down"]).expect("down");
    p.ip(&["link", "set", &wan.a_dev, "name", UPLINK])
        .expect("rename");
    p.ip(&["link", "set", UPLINK, "up"]).expect("up");
    p.ip(&["route", "add", "default", "via", "203.0.113.2"])
        .expect("default route");
    // Routes back to the clients, so that without a filter (and without
    // masquerading) the attacker's connections would complete.
    internet
        .ip(&["route", "add", "10.77.0.0/24", "via", "203.0.113.1"])
        .expect("route back");
    let lan = Netns::new().expect("LAN namespace");
    VethPair::new(p, "192.168.50.1/24", &lan, "192.168.50.2/24").expect("LAN");
    lan.ip(&["addr", "add", "169.254.169.254/32", "dev", "lo"])
        .expect("metadata address");
    lan.ip(&["route", "add", "10.77.0.0/24", "via", "192.168.50.1"])
        .expect("route back");
    p.ip(&["route", "add", "169.254.169.254/32", "via", "192.168.50.2"])
        .expect("metadata route");
    p.run(&["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"])
        .expect("forwarding");

    // Client B: its own namespace and data plane, a second veth to the provider.
    let mut other = e2e::Site::new("198.18.1.2", "10.77.0.3", 51822).expect("client B");
    VethPair::new(p, "198.18.1.1/24", &other.ns, "198.18.1.2/24").expect("client B veth");
    other
        .start(Implementation::Flowshield)
        .expect("client B data plane");
    let to_provider = PeerSpec::new(&site.wg)
        .endpoint("198.18.1.1:51820")
        .allowed_ips(&["10.77.0.0/24"])
        .keepalive(1);
    other.wg_set(&[to_provider]).expect("client B peer");
    other.link_up().expect("client B address");
    let b_key = other.keys.public.parse().expect("key");

    let a_key = site.tunnel_client_routing(&["0.0.0.0/0"], Some(1));
    let c = &site.client_wg;
    for net in ["203.0.113.0/24", "192.168.50.0/24", "169.254.169.254/32"] {
        c.ns.ip(&["route", "add", net, "dev", &c.iface])
            .expect("client route");
    }
    let mut actors = Vec::new();
    for (key, address) in [(a_key, "10.77.0.2"), (b_key, "10.77.0.3")] {
        let actor = site.actor().await;
        let order = site.open_order(&actor, ESCROW).await;
        let r = site.ask(&actor, &site.connect(&actor, order, key)).await;
        let SessionResponse::Connected(info) = r else {
            panic!("expected Connected, got {r:?}")
        };
        assert_eq!(info.tunnel_address.addr().to_string(), address);
        actors.push(actor);
    }
    let listeners = vec![
        listen(&internet, INTERNET),
        listen(&internet, SMTP),
        listen(&lan, "0.0.0.0:80"),
        listen(&other.ns, OTHER_CLIENT),
    ];
    // Client B's first handshake reached a provider that did not know its
    // key yet; wait for its retry (its tunnel is up once it pings the
    // provider's tunnel address), so that whether A reaches B says
    // something about the filter, not about timing.
    let start = Instant::now();
    while other
        .ns
        .run(&["ping", "-c", "1", "-W", "1", "10.77.0.1"])
        .is_err()
    {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "client B's tunnel never came up"
        );
    }
    // The tunnel is up once the internet host answers (handshake done).
    let start = Instant::now();
    while !reaches(&site.client_wg.ns, INTERNET) {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "client A never reached the internet host through the provider"
        );
    }
    Around {
        internet,
        _lan: lan,
        _other: other,
        _actors: actors,
        _listeners: listeners,
    }
}

/// Which of the attacker's targets client A reaches, by name.
fn attack(site: &Site) -> Vec<(&'static str, bool)> {
    let ns = &site.client_wg.ns;
    [
        ("internet", INTERNET),
        ("smtp", SMTP),
        ("lan", LAN),
        ("metadata", METADATA),
        ("other client", OTHER_CLIENT),
    ]
    .into_iter()
    .map(|(name, addr)| (name, reaches(ns, addr)))
    .collect()
}

fn tables(site: &Site) -> String {
    site.wg
        .ns
        .run(&["nft", "list", "tables"])
        .expect("nft list tables")
}

/// The hole, as the packaged example left it: forwarding with no filter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_filter_a_client_reaches_the_lan_metadata_smtp_and_other_clients() {
    let mut site = Site::start_with(Options::default()).await;
    let around = surround(&mut site).await;
    let reach = attack(&site);
    eprintln!("no filter: {reach:?}");
    assert!(reach.iter().all(|(_, reached)| *reached), "{reach:?}");
    assert!(!tables(&site).contains("flowshield_"));
    drop(around);
    site.shutdown(vec![]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_filter_lets_a_client_reach_the_internet_and_nothing_behind_the_provider() {
    let mut site = Site::start_with(Options {
        egress: Some(EgressFile {
            uplink: Some(UPLINK.into()),
            ..EgressFile::default()
        }),
        ..Options::default()
    })
    .await;
    let table = ruleset::table_name(&site.iface);
    assert!(tables(&site).contains(&table), "{}", tables(&site));
    let around = surround(&mut site).await;
    // The internet host knows no way back to the clients: only the
    // provider's masquerading brings answers home.
    around
        .internet
        .ip(&["route", "del", "10.77.0.0/24"])
        .expect("drop the route back");
    let reach = attack(&site);
    eprintln!("default filter: {reach:?}");
    assert_eq!(
        reach,
        [
            ("internet", true),
            ("smtp", false),
            ("lan", false),
            ("metadata", false),
            ("other client", false),
        ]
    );
    // What a provider restarted after kill -9 does: apply again. The table
    // is replaced, not doubled, and the filter still holds.
    let again = site
        .provider
        .egress()
        .expect("filter applied")
        .policy()
        .clone();
    let reapplied = Egress::apply(again, NetTools::in_netns(site.wg.ns.name())).expect("re-apply");
    let listed = site
        .wg
        .ns
        .run(&["nft", "list", "table", "inet", &table])
        .expect("list");
    assert_eq!(listed.matches("masquerade").count(), 1, "{listed}");
    assert!(!reaches(&site.client_wg.ns, METADATA));
    drop(reapplied);
    drop(around);
    // Stopped, the provider leaves no rules behind.
    let wg = site.stop(vec![]).await;
    let left = wg
        .ns
        .run(&["nft", "list", "tables"])
        .expect("nft list tables");
    assert!(!left.contains(&table), "left behind: {left}");
}
