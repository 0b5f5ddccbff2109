//! Market nodes in this process on 127.0.0.1, for the network and trust
//! tests: listen addresses, a base offer and provider configuration with
//! test timings, fullnodes on a fresh index, and bounded waits on events.

use super::WAIT;
use flowshield_market::fullnode::{Fullnode, FullnodeConfig, FullnodeEvent};
use flowshield_market::provider::ProviderConfig;
use flowshield_proto::{Keypair, Offer, Region, WgPublicKey};
use libp2p::Multiaddr;
use std::future::Future;
use std::time::Duration;
use tokio::sync::broadcast;

/// Any free TCP port on 127.0.0.1.
pub fn listen_tcp() -> Vec<Multiaddr> {
    vec![loopback("/ip4/127.0.0.1/tcp/0")]
}

/// Any free TCP and QUIC ports on 127.0.0.1.
pub fn listen_tcp_and_quic() -> Vec<Multiaddr> {
    vec![
        loopback("/ip4/127.0.0.1/tcp/0"),
        loopback("/ip4/127.0.0.1/udp/0/quic-v1"),
    ]
}

fn loopback(addr: &str) -> Multiaddr {
    addr.parse()
        .unwrap_or_else(|e| panic!("multiaddr {addr}: {e}"))
}

/// The first TCP address among a node's listen addresses.
pub fn tcp_addr(addrs: &[Multiaddr]) -> Multiaddr {
    find_addr(addrs, "/tcp/")
}

/// The first QUIC address among a node's listen addresses.
pub fn quic_addr(addrs: &[Multiaddr]) -> Multiaddr {
    find_addr(addrs, "/quic-v1")
}

fn find_addr(addrs: &[Multiaddr], protocol: &str) -> Multiaddr {
    addrs
        .iter()
        .find(|a| a.to_string().contains(protocol))
        .unwrap_or_else(|| panic!("no {protocol} address in {addrs:?}"))
        .clone()
}

/// `fut`'s output; panics naming `what` after [`WAIT`].
pub async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(WAIT, fut)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

/// The next fullnode event satisfying `pred` (lagging is not an error).
pub async fn wait_fullnode(
    events: &mut broadcast::Receiver<FullnodeEvent>,
    what: &str,
    pred: impl Fn(&FullnodeEvent) -> bool,
) -> FullnodeEvent {
    within(what, async {
        loop {
            match events.recv().await {
                Ok(event) if pred(&event) => return event,
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(e) => panic!("fullnode events closed: {e}"),
            }
        }
    })
    .await
}

/// An offer from `keypair`'s peer in eu-west, endpoint 127.0.0.1:51820,
/// free, 100 Mbit/s for 8 clients; tests change the fields they test.
pub fn offer(keypair: &Keypair) -> Offer {
    Offer {
        provider_peer_id: keypair.public().to_peer_id(),
        chain_address: "0x00000000000000000000000000000000000000aa"
            .parse()
            .expect("chain address"),
        wg_public_key: WgPublicKey([9; 32]),
        endpoint: "127.0.0.1:51820".parse().expect("endpoint"),
        region: Region::new("eu-west").expect("region"),
        price_per_gib_wei: 0,
        price_per_hour_wei: 0,
        capacity_mbps: 100,
        max_clients: 8,
        tunnel_subnet: None,
    }
}

/// A provider offering `offer` on [`listen_tcp`], no bootstrap, no
/// sessions, no certificate, a heartbeat every 200 ms with the DHT
/// refreshed every second one.
pub fn provider_config(keypair: Keypair, offer: Offer) -> ProviderConfig {
    ProviderConfig {
        offer,
        keypair,
        listen: listen_tcp(),
        bootstrap: vec![],
        heartbeat_interval: Duration::from_millis(200),
        dht_refresh_every: 2,
        sessions: None,
        certificate: None,
        cert_announce_every: Duration::from_secs(60),
        egress: None,
        net_tools: Default::default(),
    }
}

/// A fullnode on [`listen_tcp`] with a fresh SQLite index in the returned
/// directory, after `configure` changed its configuration.
pub async fn start_fullnode(
    configure: impl FnOnce(&mut FullnodeConfig),
) -> (tempfile::TempDir, Fullnode) {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("index.db").display());
    let mut config = FullnodeConfig::new(Keypair::generate_ed25519(), url);
    config.listen = listen_tcp();
    configure(&mut config);
    let fullnode = Fullnode::start(config).await.expect("fullnode starts");
    (dir, fullnode)
}
