//! Load generation for the fullnode benchmark (not used by any role).
//!
//! [`simulate_providers`] plays many providers through one libp2p node:
//! each simulated provider has its own Ed25519 identity and signs its own
//! heartbeats, exactly as a real provider does, and heartbeats go out
//! evenly spread over the interval (provider `i` at phase `i/N`), so the
//! fullnode sees the steady aggregate rate `N / interval`. With a chain
//! target the providers are first registered there ([`crate::register`]),
//! so a fullnode gating on stake admits them.
//!
//! [`match_load`] fires `POST /v1/match` requests at a bounded rate over
//! one keep-alive connection and reports latency percentiles.

use crate::register::{self, ChainTarget};
use anyhow::Context;
use flowshield_market::net::{self, NetConfig, NetEvent};
use flowshield_proto::{Heartbeat, Keypair, Offer, Region, SignedMessage, WgPublicKey};
use libp2p::Multiaddr;
use std::time::{Duration, Instant};

/// Regions the simulated providers are spread over.
pub const REGIONS: [&str; 8] = [
    "eu-west", "eu-north", "us-east", "us-west", "ap-south", "ap-east", "sa-east", "af-south",
];

/// How to simulate.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub providers: usize,
    pub interval: Duration,
    pub bootstrap: Vec<Multiaddr>,
    /// Stop after this long (`None`: run until the future is dropped).
    pub duration: Option<Duration>,
    /// Register the providers on this chain first (deterministic keys per
    /// index); `None`: random keys, nothing registered.
    pub chain: Option<ChainTarget>,
}

/// What a simulation did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SimReport {
    pub published: u64,
    pub failed: u64,
    pub elapsed: Duration,
}

impl SimReport {
    pub fn rate(&self) -> f64 {
        self.published as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// A deterministic, varied offer for simulated provider `i`.
pub fn simulated_offer(keypair: &Keypair, i: usize) -> Offer {
    let spread = (i as u128).wrapping_mul(2_654_435_761) % 1000;
    Offer {
        provider_peer_id: keypair.public().to_peer_id(),
        chain_address: flowshield_proto::ChainAddress({
            let mut a = [0u8; 20];
            a[12..].copy_from_slice(&(i as u64).to_be_bytes());
            a
        }),
        wg_public_key: WgPublicKey([(i % 251) as u8 + 1; 32]),
        endpoint: std::net::SocketAddr::from((
            [10, (i >> 16) as u8, (i >> 8) as u8, i as u8],
            51820,
        )),
        region: Region::new(REGIONS[i % REGIONS.len()]).unwrap_or_else(|_| unreachable!()),
        price_per_gib_wei: 1_000_000_000 * (1 + spread),
        price_per_hour_wei: 0,
        capacity_mbps: 50 + (spread as u32 % 20) * 50,
        max_clients: 16,
        tunnel_subnet: None,
    }
}

/// Publishes signed heartbeats for `config.providers` identities.
pub async fn simulate_providers(config: SimConfig) -> anyhow::Result<SimReport> {
    let (keys, offers) = match &config.chain {
        None => {
            let keys: Vec<Keypair> = (0..config.providers)
                .map(|_| Keypair::generate_ed25519())
                .collect();
            let offers = keys
                .iter()
                .enumerate()
                .map(|(i, k)| simulated_offer(k, i))
                .collect();
            (keys, offers)
        }
        Some(target) => {
            let mut keys = Vec::with_capacity(config.providers);
            let mut signers = Vec::with_capacity(config.providers);
            let mut offers = Vec::with_capacity(config.providers);
            for i in 0..config.providers {
                let key = register::node_key(i)?;
                let signer = register::chain_key(i)?;
                offers.push(Offer {
                    chain_address: flowshield_proto::ChainAddress(signer.address().into_array()),
                    ..simulated_offer(&key, i)
                });
                keys.push(key);
                signers.push(signer);
            }
            register::register_all(target, &signers, &offers).await?;
            (keys, offers)
        }
    };
    let mut net_config = NetConfig::new(Keypair::generate_ed25519());
    net_config.listen = vec!["/ip4/127.0.0.1/tcp/0".parse().context("listen address")?];
    net_config.bootstrap = config.bootstrap.clone();
    let (net, mut events) = net::spawn(net_config).await?;
    // Wait until some peer (the fullnode) takes our heartbeats, then keep
    // draining events so the network task never blocks on us.
    let subscribed = async {
        while let Some(event) = events.recv().await {
            if matches!(event, NetEvent::PeerSubscribed { .. }) {
                return true;
            }
        }
        false
    };
    if !tokio::time::timeout(Duration::from_secs(30), subscribed)
        .await
        .unwrap_or(false)
    {
        anyhow::bail!("no peer subscribed to heartbeats within 30 s");
    }
    tokio::spawn(async move { while events.recv().await.is_some() {} });

    let n = config.providers.max(1);
    let slot = config.interval.as_secs_f64() / n as f64;
    let start = Instant::now();
    let mut report = SimReport::default();
    let mut seqs = vec![0u64; n];
    let mut next = 0usize; // index into the endless schedule
    let mut tick = tokio::time::interval(Duration::from_millis(5));
    let mut last_log = Instant::now();
    loop {
        tick.tick().await;
        let elapsed = start.elapsed();
        if config.duration.is_some_and(|d| elapsed >= d) {
            break;
        }
        // Every heartbeat whose slot has come.
        let due = (elapsed.as_secs_f64() / slot) as usize;
        while next <= due {
            let i = next % n;
            next += 1;
            seqs[i] += 1;
            let heartbeat = Heartbeat {
                offer: offers[i].clone(),
                seq: seqs[i],
                timestamp_ms: flowshield_market::unix_ms(),
            };
            let published = match SignedMessage::sign(&heartbeat, &keys[i]) {
                Ok(signed) => net.publish_heartbeat(&signed).await.is_ok(),
                Err(_) => false,
            };
            if published {
                report.published += 1;
            } else {
                report.failed += 1;
            }
        }
        if last_log.elapsed() >= Duration::from_secs(5) {
            last_log = Instant::now();
            report.elapsed = start.elapsed();
            tracing::info!(
                published = report.published,
                failed = report.failed,
                rate = format!("{:.0}/s", report.rate()),
                "simulating"
            );
        }
    }
    report.elapsed = start.elapsed();
    net.shutdown().await;
    Ok(report)
}

/// Latency percentiles of a match load run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoadReport {
    pub requests: usize,
    pub ok: usize,
    pub not_found: usize,
    pub errors: usize,
    pub p50: Duration,
    pub p90: Duration,
    pub p99: Duration,
    pub max: Duration,
    pub elapsed: Duration,
}

/// The `q`-quantile (0..=1) of sorted samples.
pub fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// Sends `requests` match requests to `base_url` at most `rate` per second.
pub async fn match_load(base_url: &str, requests: usize, rate: f64) -> LoadReport {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap_or_default();
    let url = format!("{}/v1/match", base_url.trim_end_matches('/'));
    let mut samples = Vec::with_capacity(requests);
    let mut report = LoadReport {
        requests,
        ..LoadReport::default()
    };
    let period = Duration::from_secs_f64(1.0 / rate.max(0.001));
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let start = Instant::now();
    for i in 0..requests {
        tick.tick().await;
        let body = format!(
            r#"{{"region":"{}","max_price_per_gib_wei":"{}","min_capacity_mbps":{}}}"#,
            REGIONS[i % REGIONS.len()],
            1_000_000_000u128 * (200 + (i as u128 * 37) % 800),
            (i % 5) * 100
        );
        let sent = Instant::now();
        let result = client
            .post(&url)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await;
        match result {
            Ok(response) => {
                let status = response.status().as_u16();
                let _ = response.bytes().await;
                samples.push(sent.elapsed());
                match status {
                    200 => report.ok += 1,
                    404 => report.not_found += 1,
                    _ => report.errors += 1,
                }
            }
            Err(_) => report.errors += 1,
        }
    }
    report.elapsed = start.elapsed();
    samples.sort();
    report.p50 = quantile(&samples, 0.50);
    report.p90 = quantile(&samples, 0.90);
    report.p99 = quantile(&samples, 0.99);
    report.max = samples.last().copied().unwrap_or_default();
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_of_sorted_samples() {
        let samples: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(quantile(&samples, 0.5), Duration::from_millis(50));
        assert_eq!(quantile(&samples, 0.99), Duration::from_millis(99));
        assert_eq!(quantile(&samples, 1.0), Duration::from_millis(100));
        assert_eq!(quantile(&[], 0.5), Duration::ZERO);
    }

    #[test]
    fn simulated_offers_are_valid_and_varied() {
        let keys: Vec<Keypair> = (0..50).map(|_| Keypair::generate_ed25519()).collect();
        let offers: Vec<Offer> = keys
            .iter()
            .enumerate()
            .map(|(i, k)| simulated_offer(k, i))
            .collect();
        assert!(offers.iter().all(|o| o.validate().is_ok()));
        let prices: std::collections::HashSet<u128> =
            offers.iter().map(|o| o.price_per_gib_wei).collect();
        assert!(prices.len() > 10);
    }
}
