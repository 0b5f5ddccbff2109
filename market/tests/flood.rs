//! A fullnode under a sybil flood, on 127.0.0.1.
//!
//! - A peer that relays forged heartbeats is graylisted by gossip scoring.
//! - `FLOOD_PEERS` (default 100,000) distinct fake providers, each heartbeat
//!   correctly signed by its own fresh key, are gossiped at a fullnode run
//!   as its own process (the built `flowshield-market fullnode`, so its
//!   memory is its own: VmRSS from /proc). Its replay guard is capped
//!   below the flood so eviction is exercised, and so is its live index
//!   (`--max-live-providers`); both must stay under their caps throughout
//!   the flood; its RSS must stay under
//!   `RSS_BOUND_MIB`, and a real provider started mid-flood must be matched
//!   by `POST /v1/match` within its first heartbeats.
//! - The same flood at a fullnode gating on a local chain (`LocalChain`,
//!   hardhat; run `bash contracts/scripts/setup.sh` once) with
//!   `--chain-rpc/--market`: half the fakes claim chain addresses never
//!   registered (each one a stake lookup, the attacker's way to keep the
//!   gate's lookup slots busy), half claim the real provider's registered
//!   address (impostors). The real provider, registered on chain with its
//!   PeerId hash and WireGuard key, starts mid-flood and must be admitted
//!   and matched within its first heartbeats; no fake is ever live.

mod common;

use common::chain::{chain_address, eth, register_provider};
use common::http::request as http;
use flowshield_chain::{LocalChain, MarketClient, MarketParams};
use flowshield_market::fullnode::{Fullnode, FullnodeConfig, FullnodeEvent};
use flowshield_market::net::{self, NetConfig, NetEvent, NetHandle, GRAYLIST_THRESHOLD};
use flowshield_market::provider::{Provider, ProviderConfig, ProviderEvent};
use flowshield_market::unix_ms;
use flowshield_proto::{
    ChainAddress, Heartbeat, Keypair, Offer, PeerId, Region, SignedMessage, WgPublicKey,
};
use libp2p::Multiaddr;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::sync::{broadcast, mpsc};

const WAIT: Duration = Duration::from_secs(30);
/// The fullnode's resident memory stays under this during the flood (see
/// README, "Bounded under floods", for the measurement it is based on).
const RSS_BOUND_MIB: u64 = 512;
/// The real provider must be matched by this heartbeat at the latest.
const FIRST_HEARTBEATS: u64 = 5;

/// The WireGuard key every offer here names (the real provider registers
/// it; impostors copy it).
const WG_KEY: [u8; 32] = [9; 32];

fn offer(keypair: &Keypair, region: &str) -> Offer {
    Offer {
        provider_peer_id: keypair.public().to_peer_id(),
        chain_address: "0x00000000000000000000000000000000000000aa"
            .parse()
            .unwrap(),
        wg_public_key: WgPublicKey(WG_KEY),
        endpoint: "127.0.0.1:51820".parse().unwrap(),
        region: Region::new(region).unwrap(),
        price_per_gib_wei: 10,
        price_per_hour_wei: 0,
        capacity_mbps: 100,
        max_clients: 8,
        tunnel_subnet: None,
    }
}

async fn start_node(bootstrap: Vec<Multiaddr>) -> (NetHandle, mpsc::Receiver<NetEvent>) {
    let mut config = NetConfig::new(Keypair::generate_ed25519());
    config.listen = vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()];
    config.bootstrap = bootstrap;
    net::spawn(config).await.unwrap()
}

async fn wait_subscribed(events: &mut mpsc::Receiver<NetEvent>, peer: PeerId) {
    let subscribed = async {
        while let Some(event) = events.recv().await {
            if matches!(event, NetEvent::PeerSubscribed { peer: p } if p == peer) {
                return;
            }
        }
        panic!("net events closed");
    };
    tokio::time::timeout(WAIT, subscribed)
        .await
        .expect("gossip subscription in time");
}

fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series).map(|v| v.trim().parse().unwrap()))
        .unwrap_or_else(|| panic!("no series {series} in\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_relaying_forged_heartbeats_is_graylisted() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("index.db").display());
    let mut config = FullnodeConfig::new(Keypair::generate_ed25519(), url);
    config.listen = vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()];
    let fullnode = Fullnode::start(config).await.unwrap();
    let mut events = fullnode.subscribe();
    let (attacker, mut attacker_events) = start_node(fullnode.net.listen_addrs().to_vec()).await;
    wait_subscribed(&mut attacker_events, fullnode.net.peer_id()).await;

    // Heartbeats naming a provider but signed by another key, each one
    // different (gossip drops byte-identical copies before validation).
    let provider = Keypair::generate_ed25519();
    let thief = Keypair::generate_ed25519();
    // Three refusals cost -10 × 3² = -90: graylisted. (Anything it sends
    // after that is dropped unread, so wait for no more than three.)
    const FORGED: u64 = 3;
    for seq in 1..=FORGED {
        let heartbeat = Heartbeat {
            offer: offer(&provider, "eu-west"),
            seq,
            timestamp_ms: unix_ms(),
        };
        let payload = SignedMessage::encode_payload(&heartbeat).unwrap();
        let signature = thief
            .sign(&SignedMessage::<Heartbeat>::signing_input(&payload))
            .unwrap();
        let forged = SignedMessage::<Heartbeat>::from_parts(
            payload,
            provider.public().encode_protobuf(),
            signature,
        );
        attacker.publish_raw(forged.to_bytes()).await.unwrap();
    }
    let refused = async {
        let mut seen = 0;
        while seen < FORGED {
            match events.recv().await {
                Ok(FullnodeEvent::Rejected { reason: "forged" }) => seen += 1,
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(e) => panic!("fullnode events closed: {e}"),
            }
        }
    };
    tokio::time::timeout(WAIT, refused)
        .await
        .expect("every forgery refused");
    // Validation results are reported to gossip before the event is sent,
    // so the score already reflects them.
    let score = fullnode
        .net
        .peer_score(attacker.peer_id())
        .await
        .unwrap()
        .expect("the attacker is scored");
    assert!(
        score < GRAYLIST_THRESHOLD,
        "score {score} not below the graylist threshold {GRAYLIST_THRESHOLD}"
    );
    attacker.shutdown().await;
    fullnode.shutdown().await;
}

/// The fullnode binary, killed when dropped.
struct FullnodeProcess {
    child: Child,
    http: SocketAddr,
    p2p: Multiaddr,
}

impl FullnodeProcess {
    /// `market`: the chain's RPC URL and market address to gate on.
    fn start(
        dir: &std::path::Path,
        tracked_cap: usize,
        live_cap: usize,
        market: Option<(&str, String)>,
    ) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_flowshield-market"));
        command.args(["--log", "warn", "fullnode"]);
        if let Some((rpc, address)) = market {
            command.args(["--chain-rpc", rpc, "--market", &address]);
        }
        let mut child = command
            .args(["--listen", "/ip4/127.0.0.1/tcp/0", "--http", "127.0.0.1:0"])
            .arg("--db")
            .arg(format!("sqlite://{}", dir.join("index.db").display()))
            .arg("--identity")
            .arg(dir.join("fullnode.key"))
            .args(["--max-tracked-peers", &tracked_cap.to_string()])
            .args(["--max-live-providers", &live_cap.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (mut http, mut p2p) = (None, None);
        // The binary prints its addresses once it serves (readiness).
        for line in BufReader::new(stdout).lines() {
            let line = line.unwrap();
            if let Some(addr) = line.strip_prefix("listening ") {
                p2p = Some(addr.parse().unwrap());
            } else if let Some(addr) = line.strip_prefix("http ") {
                http = Some(addr.parse().unwrap());
                break;
            }
        }
        Self {
            http: http.expect("fullnode printed its HTTP address"),
            p2p: p2p.expect("fullnode printed its libp2p address"),
            child,
        }
    }

    fn rss_mib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc/PID/status");
        kib / 1024
    }
}

impl Drop for FullnodeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `POST /v1/match` for the real provider's region until it is the
/// answer; returns how many heartbeats it had published by then, and when.
async fn wait_matched(
    http_addr: SocketAddr,
    mut events: broadcast::Receiver<ProviderEvent>,
    real: PeerId,
) -> (u64, Duration) {
    let started = Instant::now();
    let body = r#"{"region":"real","max_price_per_gib_wei":"1000"}"#;
    let mut heartbeats = 0;
    loop {
        // Counted before asking, so a match is never credited to a
        // heartbeat sent after it.
        while let Ok(event) = events.try_recv() {
            if matches!(event, ProviderEvent::Published { .. }) {
                heartbeats += 1;
            }
        }
        let (status, text) = http(http_addr, "POST", "/v1/match", body).await;
        if status == 200 {
            let view: Value = serde_json::from_str(&text).unwrap();
            let signed = view["signed_heartbeat"].as_str().unwrap().as_bytes();
            let heartbeat = SignedMessage::<Heartbeat>::from_bytes(signed)
                .unwrap()
                .verify()
                .unwrap();
            assert_eq!(heartbeat.offer.provider_peer_id, real);
            return (heartbeats, started.elapsed());
        }
        assert_eq!(status, 404, "{text}");
        assert!(
            started.elapsed() < WAIT,
            "the real provider was not matched within {WAIT:?}"
        );
        // Polled: the fullnode has no push channel for "matchable now".
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What the fakes claim as their chain address.
#[derive(Debug, Clone, Copy)]
enum Claim {
    /// One fixed address (no chain: nothing checks it).
    Fixed,
    /// Every other fake an address of its own that was never registered
    /// (a stake lookup each), the rest this registered one (impostors).
    UnregisteredOr(ChainAddress),
}

/// Signs one heartbeat for each of `count` fresh keys.
fn fake_heartbeats(count: usize, claim: Claim) -> Vec<Vec<u8>> {
    (0..count)
        .map(|i| {
            let key = Keypair::generate_ed25519();
            let mut offer = offer(&key, "flood");
            if let Claim::UnregisteredOr(registered) = claim {
                offer.chain_address = if i % 2 == 0 {
                    // The PeerId's last 20 bytes: distinct per fake.
                    let id = offer.provider_peer_id.to_bytes();
                    let mut address = [0u8; 20];
                    address.copy_from_slice(&id[id.len() - 20..]);
                    ChainAddress(address)
                } else {
                    registered
                };
            }
            let heartbeat = Heartbeat {
                offer,
                seq: 1,
                timestamp_ms: unix_ms(),
            };
            SignedMessage::sign(&heartbeat, &key).unwrap().to_bytes()
        })
        .collect()
}

/// How many fakes: `FLOOD_PEERS`, else 100,000 in an optimised build and
/// 5,000 in a debug one (signing and verifying 100k Ed25519 heartbeats is
/// seconds optimised but minutes unoptimised).
fn flood_peers() -> usize {
    let default_peers = if cfg!(debug_assertions) {
        5_000
    } else {
        100_000
    };
    std::env::var("FLOOD_PEERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default_peers)
}

/// The market a gated flood runs against, with the real provider
/// registered on it.
struct Gate {
    _chain: LocalChain,
    rpc: String,
    market: String,
    /// The real provider's libp2p key and registered chain address.
    real_key: Keypair,
    real_address: ChainAddress,
}

impl Gate {
    async fn start() -> Self {
        let chain = LocalChain::start()
            .await
            .expect("local chain (run contracts/scripts/setup.sh)");
        let owner = MarketClient::deploy(
            chain.provider_for(chain.dev_signer(0).unwrap()).unwrap(),
            &MarketParams::default(),
            // Governance: a plain account is enough here (no parameter changes).
            chain.dev_signer(0).unwrap().address(),
        )
        .await
        .unwrap();
        let real_key = Keypair::generate_ed25519();
        let (signer, _) = register_provider(&chain, &owner, &real_key, WG_KEY, eth(1)).await;
        Self {
            rpc: chain.rpc_url().to_string(),
            market: owner.address().to_string(),
            real_address: chain_address(signer.address()),
            real_key,
            _chain: chain,
        }
    }
}

/// What one flood measured.
struct Measured {
    metrics: String,
    heartbeats_sent: u64,
    live_max: f64,
    rss_max: u64,
}

/// Floods a fullnode process with `peers` fakes (through one gossip peer)
/// and starts the real provider halfway through; returns once the real
/// provider is matched (or panics if it is not within `WAIT`).
async fn flood(peers: usize, tracked_cap: usize, live_cap: usize, gate: Option<&Gate>) -> Measured {
    let dir = tempfile::tempdir().unwrap();
    let market = gate.map(|g| (g.rpc.as_str(), g.market.clone()));
    let fullnode = FullnodeProcess::start(dir.path(), tracked_cap, live_cap, market);
    let (flooder, mut flooder_events) = start_node(vec![fullnode.p2p.clone()]).await;
    let fullnode_id = match fullnode.p2p.iter().last() {
        Some(libp2p::multiaddr::Protocol::P2p(id)) => id,
        _ => panic!("no /p2p/ in {}", fullnode.p2p),
    };
    wait_subscribed(&mut flooder_events, fullnode_id).await;
    tokio::spawn(async move { while flooder_events.recv().await.is_some() {} });
    let rss_start = fullnode.rss_mib();

    // Signed in chunks on a blocking thread while the previous chunk is
    // published: heartbeats must be fresh (30 s staleness window).
    const CHUNK: usize = 2_000;
    let claim = match gate {
        Some(g) => Claim::UnregisteredOr(g.real_address),
        None => Claim::Fixed,
    };
    let started = Instant::now();
    let (chunks_tx, mut chunks) = mpsc::channel::<Vec<Vec<u8>>>(2);
    let signer = tokio::task::spawn_blocking(move || {
        let mut left = peers;
        while left > 0 {
            let n = left.min(CHUNK);
            if chunks_tx.blocking_send(fake_heartbeats(n, claim)).is_err() {
                return;
            }
            left -= n;
        }
    });

    let mut published = 0usize;
    let mut refused_publishes = 0usize;
    let mut rss_max = rss_start;
    let mut live_max = 0.0f64;
    let mut provider: Option<Provider> = None;
    let mut watch = None;
    while let Some(chunk) = chunks.recv().await {
        for bytes in chunk {
            // A full send queue is back-pressure, not a reason to stop.
            match flooder.publish_raw(bytes).await {
                Ok(()) => published += 1,
                Err(_) => refused_publishes += 1,
            }
        }
        rss_max = rss_max.max(fullnode.rss_mib());
        let (_, metrics) = http(fullnode.http, "GET", "/metrics", "").await;
        live_max = live_max.max(metric(
            &metrics,
            "flowshield_tracked_peers{map=\"live_offers\"}",
        ));
        // Halfway through, a real provider starts; it is watched for
        // while the flood goes on.
        if provider.is_none() && published >= peers / 2 {
            let (keypair, offer) = match gate {
                Some(g) => {
                    let mut offer = offer(&g.real_key, "real");
                    offer.chain_address = g.real_address;
                    (g.real_key.clone(), offer)
                }
                None => {
                    let keypair = Keypair::generate_ed25519();
                    (keypair.clone(), offer(&keypair, "real"))
                }
            };
            let real_id = keypair.public().to_peer_id();
            let real = Provider::start(ProviderConfig {
                offer,
                keypair,
                listen: vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()],
                bootstrap: vec![fullnode.p2p.clone()],
                heartbeat_interval: Duration::from_secs(1),
                dht_refresh_every: 100,
                sessions: None,
                certificate: None,
                cert_announce_every: Duration::from_secs(60),
                egress: None,
                net_tools: Default::default(),
            })
            .await
            .unwrap();
            watch = Some(tokio::spawn(wait_matched(
                fullnode.http,
                real.subscribe(),
                real_id,
            )));
            provider = Some(real);
        }
    }
    signer.await.unwrap();
    let flood_secs = started.elapsed().as_secs_f64();
    let real = provider.expect("the real provider started");
    let (heartbeats_sent, matched_after) = watch.expect("watched").await.unwrap();
    let (_, metrics) = http(fullnode.http, "GET", "/metrics", "").await;
    let live = metric(&metrics, "flowshield_tracked_peers{map=\"live_offers\"}");
    live_max = live_max.max(live);
    let rss_end = fullnode.rss_mib();
    rss_max = rss_max.max(rss_end);
    let count = |result: &str| {
        metric(
            &metrics,
            &format!("flowshield_heartbeats_total{{result=\"{result}\"}}"),
        )
    };
    let gated = match gate {
        Some(_) => format!(
            "; stake gate refused unregistered {}, peer_id_mismatch {}, chain_checks_busy {}, \
             chain_unavailable {}",
            count("unregistered"),
            count("peer_id_mismatch"),
            count("chain_checks_busy"),
            count("chain_unavailable"),
        ),
        None => String::new(),
    };
    eprintln!(
        "flood: {peers} fake providers, {published} published ({refused_publishes} refused by \
         the local send queue) in {flood_secs:.1} s; fullnode accepted {}, replay guard \
         tracks {} (evicted {}); live offers {live} (max {live_max}, evicted {}){gated}; \
         RSS {rss_start} MiB at start, max {rss_max} MiB, end {rss_end} MiB; real provider \
         matched after {heartbeats_sent} heartbeats, {:.1} s",
        count("accepted"),
        metric(&metrics, "flowshield_tracked_peers{map=\"replay_guard\"}"),
        metric(&metrics, "flowshield_evictions_total{map=\"replay_guard\"}"),
        metric(&metrics, "flowshield_evictions_total{map=\"live_offers\"}"),
        matched_after.as_secs_f64()
    );
    real.shutdown().await;
    flooder.shutdown().await;
    Measured {
        metrics,
        heartbeats_sent,
        live_max,
        rss_max,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fullnode_stays_bounded_under_a_sybil_flood_and_matches_a_real_provider() {
    let peers = flood_peers();
    // The replay guard holds a tenth of the flood: eviction is exercised.
    let tracked_cap = (peers / 10).max(100);
    // So does the live index (a real provider is matched within 100 ms of
    // a heartbeat; evicting it takes a tenth of the flood after it).
    let live_cap = tracked_cap;
    let Measured {
        metrics,
        heartbeats_sent,
        live_max,
        rss_max,
    } = flood(peers, tracked_cap, live_cap, None).await;
    let tracked = metric(&metrics, "flowshield_tracked_peers{map=\"replay_guard\"}");
    let evicted = metric(&metrics, "flowshield_evictions_total{map=\"replay_guard\"}");
    let accepted = metric(&metrics, "flowshield_heartbeats_total{result=\"accepted\"}");
    let live_evicted = metric(&metrics, "flowshield_evictions_total{map=\"live_offers\"}");
    let indexed = metric(&metrics, "flowshield_providers_indexed");
    assert!(
        heartbeats_sent <= FIRST_HEARTBEATS,
        "matched only after {heartbeats_sent} heartbeats"
    );
    assert!(
        tracked <= tracked_cap as f64,
        "replay guard holds {tracked}"
    );
    if accepted > tracked_cap as f64 {
        assert!(evicted > 0.0, "over the cap but nothing evicted");
    }
    assert!(
        live_max <= live_cap as f64 && indexed <= live_cap as f64,
        "live index reached {live_max} (now {indexed}), cap {live_cap}"
    );
    if accepted > live_cap as f64 {
        assert!(
            live_evicted > 0.0,
            "live index over its cap but nothing evicted"
        );
    }
    assert!(
        rss_max < RSS_BOUND_MIB,
        "fullnode RSS reached {rss_max} MiB, bound {RSS_BOUND_MIB} MiB"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stake_gated_fullnode_admits_a_registered_provider_during_a_sybil_flood() {
    let peers = flood_peers();
    let tracked_cap = (peers / 10).max(100);
    let gate = Gate::start().await;
    let Measured {
        metrics,
        heartbeats_sent,
        live_max,
        rss_max,
    } = flood(peers, tracked_cap, tracked_cap, Some(&gate)).await;
    let tracked = metric(&metrics, "flowshield_tracked_peers{map=\"replay_guard\"}");
    let indexed = metric(&metrics, "flowshield_providers_indexed");
    assert!(
        heartbeats_sent <= FIRST_HEARTBEATS,
        "the registered provider was matched only after {heartbeats_sent} heartbeats"
    );
    // Only the real provider is ever live: no fake got past the gate.
    assert!(
        live_max <= 1.0 && indexed == 1.0,
        "live offers reached {live_max} (now {indexed} indexed): a fake was admitted"
    );
    assert!(
        tracked <= tracked_cap as f64,
        "replay guard holds {tracked}"
    );
    assert!(
        rss_max < RSS_BOUND_MIB,
        "fullnode RSS reached {rss_max} MiB, bound {RSS_BOUND_MIB} MiB"
    );
}
