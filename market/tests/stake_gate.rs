//! Stake admission on a real local chain (`LocalChain`, hardhat; run
//! `bash contracts/scripts/setup.sh` once) with real fullnodes and
//! providers: a fullnode with a market contract indexes a provider only if
//! the chain vouches for it (registered, staked, not unbonding, its PeerId
//! and WireGuard key the ones registered), and counts each refusal in
//! `/metrics`.
//!
//! The attackers are plain providers with their own libp2p keys: they
//! sign correct heartbeats, but claim a chain address that is not theirs
//! (a registered provider's, or one never registered).

mod common;

use common::chain::{chain_address, eth, register_provider};
use common::http::{request, request_json as http};
use common::net::{provider_config, start_fullnode, wait_fullnode};
use flowshield_chain::alloy::primitives::Address;
use flowshield_chain::{LocalChain, MarketClient, MarketParams};
use flowshield_market::fullnode::{Fullnode, FullnodeEvent};
use flowshield_market::net::{self, NetConfig, NetEvent};
use flowshield_market::provider::{Provider, ProviderConfig};
use flowshield_proto::{
    ChainAddress, Heartbeat, Keypair, Offer, PeerId, SignedMessage, WgPublicKey,
};
use libp2p::Multiaddr;
use std::time::Duration;

fn offer(keypair: &Keypair, wg: [u8; 32], chain: ChainAddress, price: u128) -> Offer {
    Offer {
        chain_address: chain,
        wg_public_key: WgPublicKey(wg),
        price_per_gib_wei: price,
        ..common::net::offer(keypair)
    }
}

async fn start_provider(keypair: &Keypair, offer: Offer, bootstrap: Vec<Multiaddr>) -> Provider {
    Provider::start(ProviderConfig {
        bootstrap,
        heartbeat_interval: Duration::from_millis(200),
        ..provider_config(keypair.clone(), offer)
    })
    .await
    .expect("provider starts")
}

/// A market on a fresh local chain and a fullnode gating on it.
async fn market_and_fullnode() -> (LocalChain, MarketClient, tempfile::TempDir, Fullnode) {
    let chain = LocalChain::start()
        .await
        .expect("local chain (run contracts/scripts/setup.sh)");
    let owner = MarketClient::deploy(
        chain.provider_for(chain.dev_signer(0).unwrap()).unwrap(),
        &MarketParams::default(),
    )
    .await
    .unwrap();
    let reader = MarketClient::at(owner.address(), chain.reader().clone());
    let (dir, fullnode) = start_fullnode(|c| {
        c.market = Some(reader.clone());
        c.chain_poll_interval = Duration::from_millis(200);
    })
    .await;
    (chain, owner, dir, fullnode)
}

/// The winner of `/v1/match` (any price).
async fn best(fullnode: &Fullnode) -> String {
    let (status, body) = http(
        fullnode.http_addr,
        "POST",
        "/v1/match",
        r#"{"max_price_per_gib_wei":"1000"}"#,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["offer"]["provider_peer_id"]
        .as_str()
        .expect("offer.provider_peer_id")
        .to_string()
}

/// `flowshield_heartbeats_total{result}` as `/metrics` shows it.
async fn heartbeats(fullnode: &Fullnode, result: &str) -> u64 {
    let (status, text) = request(fullnode.http_addr, "GET", "/metrics", "").await;
    assert_eq!(status, 200);
    let series = format!("flowshield_heartbeats_total{{result=\"{result}\"}} ");
    text.lines()
        .find_map(|line| line.strip_prefix(&series))
        .unwrap_or_else(|| panic!("no {series} in /metrics"))
        .parse()
        .expect("a count")
}

fn indexed(id: PeerId) -> impl Fn(&FullnodeEvent) -> bool {
    move |e| matches!(e, FullnodeEvent::Indexed { provider, .. } if *provider == id)
}

/// The heartbeat of `id` was decided: indexed (the attack worked) or
/// refused for `reason`.
fn decided(id: PeerId, reason: &'static str) -> impl Fn(&FullnodeEvent) -> bool {
    move |e| match e {
        FullnodeEvent::Indexed { provider, .. } => *provider == id,
        FullnodeEvent::Rejected { reason: r } => *r == reason,
        FullnodeEvent::Expired { .. } => false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strangers_cannot_claim_a_staked_address_or_join_unregistered() {
    let (chain, owner, _dir, fullnode) = market_and_fullnode().await;
    let bootstrap = fullnode.net.listen_addrs().to_vec();
    let mut events = fullnode.subscribe();

    let honest_key = Keypair::generate_ed25519();
    let (honest, _) = register_provider(&chain, &owner, &honest_key, [1; 32], eth(1)).await;
    let _honest = start_provider(
        &honest_key,
        offer(&honest_key, [1; 32], chain_address(honest.address()), 100),
        bootstrap.clone(),
    )
    .await;
    let honest_id = honest_key.public().to_peer_id();
    wait_fullnode(
        &mut events,
        "the registered provider indexed",
        indexed(honest_id),
    )
    .await;
    assert_eq!(best(&fullnode).await, honest_id.to_string());

    // Attacker 1: its own PeerId, the honest provider's chain address and
    // WireGuard key, a cheaper price to win every match.
    let impostor_key = Keypair::generate_ed25519();
    let impostor_id = impostor_key.public().to_peer_id();
    let _impostor = start_provider(
        &impostor_key,
        offer(&impostor_key, [1; 32], chain_address(honest.address()), 1),
        bootstrap.clone(),
    )
    .await;
    // Attacker 2: an address that never registered, cheaper still.
    let stranger_key = Keypair::generate_ed25519();
    let stranger_id = stranger_key.public().to_peer_id();
    let _stranger = start_provider(
        &stranger_key,
        offer(
            &stranger_key,
            [5; 32],
            chain_address(Address::repeat_byte(0xc1)),
            0,
        ),
        bootstrap,
    )
    .await;
    wait_fullnode(
        &mut events,
        "the impostor's heartbeat decided",
        decided(impostor_id, "peer_id_mismatch"),
    )
    .await;
    wait_fullnode(
        &mut events,
        "the stranger's heartbeat decided",
        decided(stranger_id, "unregistered"),
    )
    .await;
    let live = fullnode.live.read().map(|l| l.len()).unwrap_or(0);
    assert_eq!(
        best(&fullnode).await,
        honest_id.to_string(),
        "an attacker won /v1/match ({live} live providers; impostor {impostor_id}, stranger {stranger_id})"
    );
    assert_eq!(live, 1, "only the registered provider is live");
    assert!(heartbeats(&fullnode, "peer_id_mismatch").await >= 1);
    assert!(heartbeats(&fullnode, "unregistered").await >= 1);
    assert!(heartbeats(&fullnode, "accepted").await >= 1);
    fullnode.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_wireguard_key_and_unbonding_stake_are_refused() {
    let (chain, owner, _dir, fullnode) = market_and_fullnode().await;
    let bootstrap = fullnode.net.listen_addrs().to_vec();
    let mut events = fullnode.subscribe();

    // Registered with WireGuard key [2; 32], announcing [3; 32].
    let rekeyed_key = Keypair::generate_ed25519();
    let (rekeyed, _) = register_provider(&chain, &owner, &rekeyed_key, [2; 32], eth(1)).await;
    let _rekeyed = start_provider(
        &rekeyed_key,
        offer(&rekeyed_key, [3; 32], chain_address(rekeyed.address()), 1),
        bootstrap.clone(),
    )
    .await;
    wait_fullnode(
        &mut events,
        "the rekeyed provider refused",
        decided(rekeyed_key.public().to_peer_id(), "wg_key_mismatch"),
    )
    .await;

    // Admitted while staked, dropped once it asks for its stake back.
    let leaving_key = Keypair::generate_ed25519();
    let leaving_id = leaving_key.public().to_peer_id();
    let (leaving, as_leaving) =
        register_provider(&chain, &owner, &leaving_key, [4; 32], eth(1)).await;
    let _leaving = start_provider(
        &leaving_key,
        offer(&leaving_key, [4; 32], chain_address(leaving.address()), 50),
        bootstrap,
    )
    .await;
    wait_fullnode(
        &mut events,
        "the staked provider indexed",
        indexed(leaving_id),
    )
    .await;
    assert_eq!(best(&fullnode).await, leaving_id.to_string());
    as_leaving.request_unstake(eth(1)).await.expect("unstake");
    // The event reaches the fullnode within a poll, far before the
    // cached record's TTL (600 s).
    wait_fullnode(&mut events, "the unbonding provider refused", |e| {
        matches!(
            e,
            FullnodeEvent::Rejected {
                reason: "unbonding"
            }
        )
    })
    .await;
    let live = fullnode.live.read().map(|l| l.len()).unwrap_or(usize::MAX);
    assert_eq!(live, 0, "no provider is live");
    let (status, body) = http(
        fullnode.http_addr,
        "POST",
        "/v1/match",
        r#"{"max_price_per_gib_wei":"1000"}"#,
    )
    .await;
    assert_eq!(status, 404, "{body}");
    assert!(heartbeats(&fullnode, "wg_key_mismatch").await >= 1);
    assert!(heartbeats(&fullnode, "unbonding").await >= 1);
    fullnode.shutdown().await;
}

/// A bare libp2p node that gossips `keypair`'s signed heartbeats for
/// `offer` every 200 ms. It listens nowhere, so no other node can reach
/// it: it talks only to the nodes in `bootstrap`.
async fn gossip_heartbeats(
    keypair: Keypair,
    offer: Offer,
    bootstrap: Vec<Multiaddr>,
) -> (net::NetHandle, tokio::task::JoinHandle<()>) {
    let (node, _events) = net::spawn(NetConfig {
        bootstrap,
        ..NetConfig::new(keypair.clone())
    })
    .await
    .expect("publisher starts");
    let publisher = node.clone();
    let task = tokio::spawn(async move {
        for seq in 1.. {
            let heartbeat = Heartbeat {
                offer: offer.clone(),
                seq,
                timestamp_ms: flowshield_market::unix_ms(),
            };
            let signed = SignedMessage::sign(&heartbeat, &keypair).expect("sign");
            // Before the mesh forms, publishing finds no peer: try again.
            let _ = publisher.publish_heartbeat(&signed).await;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    (node, task)
}

/// A gated fullnode is a gossip relay too: before its stake check told
/// gossip what to do, it forwarded every heartbeat whose signature held,
/// so an unregistered flooder reached every peer behind it. A peer that
/// hears the market only through the fullnode must get the registered
/// provider's heartbeats and never the stranger's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gated_fullnode_forwards_only_heartbeats_it_admitted() {
    let (chain, owner, _dir, fullnode) = market_and_fullnode().await;
    let bootstrap = fullnode.net.listen_addrs().to_vec();
    let fullnode_id = fullnode.net.peer_id();
    let mut events = fullnode.subscribe();

    // Listens nowhere, nor do the publishers: all it hears comes through
    // the fullnode.
    let (observer, mut heard) = net::spawn(NetConfig {
        bootstrap: bootstrap.clone(),
        ..NetConfig::new(Keypair::generate_ed25519())
    })
    .await
    .expect("observer starts");

    let honest_key = Keypair::generate_ed25519();
    let honest_id = honest_key.public().to_peer_id();
    let (honest, _) = register_provider(&chain, &owner, &honest_key, [1; 32], eth(1)).await;
    let (honest_node, honest_task) = gossip_heartbeats(
        honest_key.clone(),
        offer(&honest_key, [1; 32], chain_address(honest.address()), 100),
        bootstrap.clone(),
    )
    .await;
    let stranger_key = Keypair::generate_ed25519();
    let stranger_id = stranger_key.public().to_peer_id();
    let (stranger_node, stranger_task) = gossip_heartbeats(
        stranger_key.clone(),
        offer(
            &stranger_key,
            [5; 32],
            chain_address(Address::repeat_byte(0xc2)),
            0,
        ),
        bootstrap,
    )
    .await;
    wait_fullnode(
        &mut events,
        "the stranger refused",
        decided(stranger_id, "unregistered"),
    )
    .await;

    // Both heartbeat every 200 ms: while ten of the honest provider's
    // arrive, the stranger sends as many.
    let mut honest_heard = 0;
    common::net::within("ten honest heartbeats through the fullnode", async {
        while honest_heard < 10 {
            let Some(event) = heard.recv().await else {
                panic!("observer stopped");
            };
            if let NetEvent::HeartbeatAccepted { heartbeat, via, .. } = event {
                assert_eq!(via, fullnode_id, "heard only through the fullnode");
                let author = heartbeat.offer.provider_peer_id;
                assert_ne!(
                    author, stranger_id,
                    "the fullnode forwarded the unregistered stranger's heartbeat"
                );
                if author == honest_id {
                    honest_heard += 1;
                }
            }
        }
    })
    .await;
    assert!(heartbeats(&fullnode, "unregistered").await >= 5);
    honest_task.abort();
    stranger_task.abort();
    for node in [observer, honest_node, stranger_node] {
        node.shutdown().await;
    }
    fullnode.shutdown().await;
}
