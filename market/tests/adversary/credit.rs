//! A client that connects with a real tunnel and then moves traffic without
//! paying. It gets about the credit limit's worth through (plus what one
//! credit check interval lets pass) before the provider stops forwarding
//! for it; a voucher covering the debt brings forwarding back; once what it
//! used costs the whole escrow the provider ends the session and settles,
//! paid what the client signed.

use crate::fixture::{refusal, Site, CAPACITY_MBPS};
use flowshield_chain::alloy::primitives::U256;
use flowshield_chain::OrderStatus;
use flowshield_market::wire::session::SessionResponse;
use flowshield_proto::WgPublicKey;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What the order escrows: room for the credit limit, a payment and a
/// little more traffic (1 wei per byte, see the fixture's prices).
const ESCROW: u64 = 10_000_000;
/// The attacker's datagrams: payload size, and how many per 10 ms.
const DATAGRAM: usize = 1000;
const PER_10_MS: u64 = 20;
/// Bytes of payload a second at that pace (2 MB/s).
const RATE: u64 = DATAGRAM as u64 * PER_10_MS * 100;
/// How often the provider weighs sessions (provider/mod.rs), plus the time
/// one UAPI round takes on a loaded machine.
const CHECK_SLACK: Duration = Duration::from_millis(500);
const PORT: u16 = 9000;

/// UDP from the client's namespace to the provider's tunnel address, paced,
/// and a receiver in the provider's namespace counting what got through.
struct Flood {
    received: Arc<AtomicU64>,
    sending: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Flood {
    fn start(site: &Site) -> Self {
        let target = SocketAddr::from((Ipv4Addr::new(10, 77, 0, 1), PORT));
        let rx = site
            .wg
            .ns
            .run_inside(|| UdpSocket::bind(target))
            .expect("provider namespace")
            .expect("bind the receiver");
        rx.set_read_timeout(Some(Duration::from_millis(50)))
            .expect("read timeout");
        let tx = site
            .client_wg
            .ns
            .run_inside(|| UdpSocket::bind((Ipv4Addr::new(10, 77, 0, 2), 0)))
            .expect("client namespace")
            .expect("bind the sender");
        let flood = Flood {
            received: Arc::default(),
            sending: Arc::new(AtomicBool::new(true)),
            stop: Arc::default(),
            threads: Vec::new(),
        };
        let (received, stop) = (flood.received.clone(), flood.stop.clone());
        let receiver = std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while !stop.load(Ordering::Relaxed) {
                if let Ok(n) = rx.recv(&mut buf) {
                    received.fetch_add(n as u64, Ordering::Relaxed);
                }
            }
        });
        let (sending, stop) = (flood.sending.clone(), flood.stop.clone());
        let sender = std::thread::spawn(move || {
            let payload = [0x5a; DATAGRAM];
            while !stop.load(Ordering::Relaxed) {
                if sending.load(Ordering::Relaxed) {
                    for _ in 0..PER_10_MS {
                        // Errors (no handshake yet) only mean less got through.
                        let _ = tx.send_to(&payload, target);
                    }
                }
                // Pacing, not synchronisation.
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        Flood {
            threads: vec![receiver, sender],
            ..flood
        }
    }

    fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }

    fn pause(&self, paused: bool) {
        self.sending.store(!paused, Ordering::Relaxed);
    }

    fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            t.join().expect("flood thread");
        }
    }
}

/// The allowed IPs the provider's data plane holds for `key`; `None` when
/// the peer is gone.
fn provider_allowed_ips(site: &Site, key: &WgPublicKey) -> Option<Vec<String>> {
    let snapshot = flowshield_tunnel::uapi::client::get(&site.iface).expect("uapi get");
    snapshot
        .peers
        .iter()
        .find(|p| p.public_key.0 == key.0)
        .map(|p| p.allowed_ips.iter().map(|n| n.to_string()).collect())
}

/// What the client's own data plane counted for the provider (rx + tx),
/// the basis of an honest voucher.
fn client_measured_bytes(site: &Site) -> u64 {
    let snapshot = flowshield_tunnel::uapi::client::get(&site.client_wg.iface).expect("uapi get");
    snapshot.peers.iter().map(|p| p.rx_bytes + p.tx_bytes).sum()
}

/// Polls `done` (a state read, every 50 ms) until it holds or `within` passes.
async fn wait_for(what: &str, within: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < within, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_does_not_pay_gets_no_more_than_its_credit() {
    let mut site = Site::start().await;
    let credit = site.host.prices().default_credit_limit(CAPACITY_MBPS);
    assert_eq!(credit, U256::from(6_255_000u64), "5 s at 10 Mbit/s");
    let wg = site.tunnel_client();
    let attacker = site.actor().await;
    let order = site.open_order(&attacker, ESCROW).await;
    let r = site
        .ask(&attacker, &site.connect(&attacker, order, wg))
        .await;
    let SessionResponse::Connected(info) = r else {
        panic!("expected Connected, got {r:?}")
    };
    assert_eq!(info.tunnel_address.addr().to_string(), "10.77.0.2");

    // Traffic, and never a voucher: forwarding stops near the credit limit.
    let flood = Flood::start(&site);
    wait_for("forwarding stopped", Duration::from_secs(30), || {
        provider_allowed_ips(&site, &wg) == Some(vec![])
    })
    .await;
    // Whatever was in flight lands; then nothing more gets through.
    tokio::time::sleep(CHECK_SLACK).await;
    let through = flood.received();
    eprintln!("unpaid: {through} payload bytes got through before forwarding stopped (credit {credit} wei = bytes)");
    let credit_bytes: u64 = credit.to::<u64>();
    let one_check = RATE * CHECK_SLACK.as_millis() as u64 / 1000;
    assert!(
        through <= credit_bytes + one_check,
        "{through} bytes got through unpaid, credit {credit_bytes} + one check {one_check}"
    );
    assert!(
        through >= credit_bytes / 2,
        "forwarding worked until the limit: only {through} bytes"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        flood.received(),
        through,
        "nothing is forwarded while the client owes more than its credit"
    );
    assert_eq!(site.host.session_count().await, 1, "blocked, not ended");

    // It pays what its own data plane counted: forwarding comes back.
    flood.pause(true);
    let paid = client_measured_bytes(&site) + 10_000;
    assert!(paid < ESCROW, "{paid}");
    let r = site
        .ask(
            &attacker,
            &site.voucher(&attacker.signer, order, paid).await,
        )
        .await;
    assert!(
        matches!(r, SessionResponse::VoucherAccepted { .. }),
        "{r:?}"
    );
    assert_eq!(
        provider_allowed_ips(&site, &wg),
        Some(vec!["10.77.0.2/32".to_string()]),
        "a voucher covering the debt restores forwarding at once"
    );
    flood.pause(false);
    wait_for("traffic flows again", Duration::from_secs(10), || {
        flood.received() > through
    })
    .await;

    // It stops paying again: when what it used costs the escrow, the
    // provider ends the session, removes the peer and settles, paid the
    // voucher the client signed.
    wait_for("session ended", Duration::from_secs(30), || {
        provider_allowed_ips(&site, &wg).is_none()
    })
    .await;
    tokio::time::sleep(CHECK_SLACK).await;
    let total = flood.received();
    eprintln!(
        "paid {paid}: {total} payload bytes in all before the session ended (escrow {ESCROW})"
    );
    flood.stop();
    assert!(
        total <= ESCROW + one_check,
        "{total} bytes got through on a {ESCROW} wei escrow"
    );
    // (Ending holds the session lock until the order is settled.)
    assert_eq!(site.host.session_count().await, 0);
    assert_eq!(
        site.market.order_status(order).await.unwrap(),
        OrderStatus::Settled
    );
    let settled = site.host.snapshot().await.settled;
    assert_eq!((settled.sessions, settled.paid), (1, U256::from(paid)));
    // The session is gone for the client too.
    let r = site
        .ask(
            &attacker,
            &site.voucher(&attacker.signer, order, paid + 1).await,
        )
        .await;
    assert_eq!(refusal(&r).0, "no_session", "{r:?}");
    site.shutdown(vec![attacker]).await;
}
