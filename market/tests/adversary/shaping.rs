//! A client that takes more bandwidth than the offer promises: iperf3
//! through its real tunnel, both directions. With per-client shaping at a
//! capacity of 20 Mbit/s it measures between 15 and 22 Mbit/s each way (HTB
//! towards the client, a policer from it); its tc class and filters are
//! gone once the session ends, and the whole tree once the provider stops.

use crate::fixture::{Options, Site};
use flowshield_chain::alloy::primitives::U256;
use flowshield_market::wire::session::{SessionRequest, SessionResponse};
use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};

const CAPACITY_MBPS: u32 = 20;

/// `iperf3 -s -1` in the provider's namespace on its tunnel address, once
/// it says it listens.
fn iperf_server(site: &Site) -> Child {
    let mut child = site
        .wg
        .ns
        .command("iperf3")
        .args(["-s", "-1", "--forceflush", "-B", "10.77.0.1", "-p", "5201"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("iperf3 -s (apt install iperf3)");
    let out = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(out).lines();
    loop {
        let line = lines
            .next()
            .expect("iperf3 server ended before listening")
            .expect("read iperf3");
        if line.contains("Server listening") {
            break;
        }
    }
    // Keep draining so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    child
}

/// Mbit/s the receiver measured, 4 s after 1 s of warm-up; `reverse`:
/// the provider sends (the client's download).
fn iperf(site: &Site, reverse: bool) -> f64 {
    let mut server = iperf_server(site);
    let mut args = vec!["-c", "10.77.0.1", "-p", "5201", "-t", "4", "-O", "1", "-J"];
    if reverse {
        args.push("-R");
    }
    let out = site
        .client_wg
        .ns
        .command("iperf3")
        .args(&args)
        .output()
        .expect("iperf3 -c");
    let _ = server.wait();
    let text = String::from_utf8_lossy(&out.stdout);
    let json: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("iperf3 -J output: {e}: {text}"));
    let bps = json["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .unwrap_or_else(|| panic!("no end.sum_received in {text}"));
    bps / 1e6
}

fn tc(site: &Site, what: &str) -> String {
    site.wg
        .ns
        .run(&["tc", what, "show", "dev", &site.iface])
        .unwrap_or_else(|e| panic!("tc {what} show: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_gets_the_offered_rate_and_no_more_each_way() {
    let mut site = Site::start_with(Options {
        shaping_mbps: Some(CAPACITY_MBPS),
        // Never in debt here: this test is about rate, not payment.
        credit_limit: Some(U256::from(u64::MAX)),
        ..Options::default()
    })
    .await;
    let wg = site.tunnel_client();
    let client = site.actor().await;
    let order = site.open_order(&client, 10u64.pow(17)).await;
    let r = site.ask(&client, &site.connect(&client, order, wg)).await;
    assert!(matches!(r, SessionResponse::Connected(_)), "{r:?}");
    assert!(
        tc(&site, "class").contains("class htb 1:2 "),
        "{}",
        tc(&site, "class")
    );

    let down = iperf(&site, true);
    let up = iperf(&site, false);
    eprintln!("shaped at {CAPACITY_MBPS} Mbit/s: download {down:.1} Mbit/s, upload {up:.1} Mbit/s");
    for (way, mbps) in [("download", down), ("upload", up)] {
        assert!(
            (15.0..=22.0).contains(&mbps),
            "{way}: {mbps:.1} Mbit/s, offered {CAPACITY_MBPS}"
        );
    }

    // Session over: the client's class and filters are gone.
    let r = site
        .ask(&client, &SessionRequest::Disconnect { order_id: order })
        .await;
    assert!(matches!(r, SessionResponse::Disconnected { .. }), "{r:?}");
    assert!(
        !tc(&site, "class").contains("1:2 "),
        "{}",
        tc(&site, "class")
    );
    let filters = site
        .wg
        .ns
        .run(&["tc", "filter", "show", "dev", &site.iface, "ingress"])
        .expect("tc filter show");
    assert!(
        !filters.contains("10.77.0.2") && !filters.contains("0a4d0002"),
        "{filters}"
    );
    // Provider stopped: no tree, no ingress redirect, no IFB device left.
    let iface = site.iface.clone();
    let wg = site.stop(vec![client]).await;
    let qdiscs = wg
        .ns
        .run(&["tc", "qdisc", "show", "dev", &iface])
        .expect("tc qdisc show");
    assert!(
        !qdiscs.contains("htb") && !qdiscs.contains("ingress"),
        "{qdiscs}"
    );
    let links = wg.ns.run(&["ip", "-o", "link", "show"]).expect("ip link");
    let ifb: String = iface.chars().take(12).collect();
    assert!(!links.contains(&format!("{ifb}-up")), "{links}");
}

/// Without shaping (as before): the same client takes far more than 20.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unshaped_a_client_takes_more_than_the_offer() {
    let mut site = Site::start_with(Options {
        credit_limit: Some(U256::from(u64::MAX)),
        ..Options::default()
    })
    .await;
    let wg = site.tunnel_client();
    let client = site.actor().await;
    let order = site.open_order(&client, 10u64.pow(17)).await;
    let r = site.ask(&client, &site.connect(&client, order, wg)).await;
    assert!(matches!(r, SessionResponse::Connected(_)), "{r:?}");
    let down = iperf(&site, true);
    eprintln!("unshaped: download {down:.1} Mbit/s");
    assert!(down > 22.0, "unshaped download only {down:.1} Mbit/s");
    site.shutdown(vec![client]).await;
}
