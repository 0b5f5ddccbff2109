//! `flowshield-market-bench`: load generators for `scripts/bench-market.sh`
//! (a benchmark, not a test).
//!
//! ```text
//! flowshield-market-bench simulate --providers 10000 --interval-secs 5 \
//!     --bootstrap /ip4/127.0.0.1/tcp/4001/p2p/<id> [--duration-secs 60] \
//!     [--chain-rpc http://127.0.0.1:8545 --market 0x...]
//! flowshield-market-bench match --url http://127.0.0.1:8080 --requests 5000 --rate 200
//! ```
//! Results go to stdout as `key=value` lines.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
mod register;
mod simulate;

use libp2p::Multiaddr;
use register::ChainTarget;
use simulate::{match_load, simulate_providers, SimConfig};
use std::time::Duration;

#[derive(Parser)]
#[command(name = "flowshield-market-bench", about = "Fullnode load generators")]
struct Cli {
    #[command(flatten)]
    log: flowshield_logging::LogArgs,
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Subcommand)]
enum Mode {
    /// Heartbeats of many simulated providers through one libp2p node.
    Simulate {
        #[arg(long, default_value_t = 10_000)]
        providers: usize,
        #[arg(long, default_value_t = 5)]
        interval_secs: u64,
        /// The fullnode's multiaddr (repeatable).
        #[arg(long, required = true)]
        bootstrap: Vec<Multiaddr>,
        /// Stop after this many seconds (default: run until killed).
        #[arg(long)]
        duration_secs: Option<u64>,
        /// JSON-RPC of a local dev chain: register the simulated providers
        /// on its market first (deterministic keys per index, funded with
        /// `hardhat_setBalance`, staking `minStake`).
        #[arg(long, requires = "market")]
        chain_rpc: Option<String>,
        /// The BandwidthMarket contract address.
        #[arg(long, requires = "chain_rpc")]
        market: Option<String>,
    },
    /// `POST /v1/match` at a bounded rate; prints latency percentiles.
    Match {
        #[arg(long)]
        url: String,
        #[arg(long, default_value_t = 5000)]
        requests: usize,
        /// Requests per second.
        #[arg(long, default_value_t = 200.0)]
        rate: f64,
    },
}

#[tokio::main]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    cli.log.init()?;
    match cli.mode {
        Mode::Simulate {
            providers,
            interval_secs,
            bootstrap,
            duration_secs,
            chain_rpc,
            market,
        } => {
            let chain = match (chain_rpc, market) {
                (Some(rpc_url), Some(market)) => Some(ChainTarget {
                    rpc_url,
                    market: market
                        .parse()
                        .with_context(|| format!("--market {market:?} is not an address"))?,
                }),
                _ => None,
            };
            let report = simulate_providers(SimConfig {
                providers,
                interval: Duration::from_secs(interval_secs.max(1)),
                bootstrap,
                duration: duration_secs.map(Duration::from_secs),
                chain,
            })
            .await
            .context("simulating providers")?;
            println!("published={}", report.published);
            println!("failed={}", report.failed);
            println!("elapsed_s={:.1}", report.elapsed.as_secs_f64());
            println!("rate_per_s={:.0}", report.rate());
        }
        Mode::Match {
            url,
            requests,
            rate,
        } => {
            let r = match_load(&url, requests, rate).await;
            let ms = |d: Duration| d.as_secs_f64() * 1000.0;
            println!("requests={}", r.requests);
            println!("ok={}", r.ok);
            println!("not_found={}", r.not_found);
            println!("errors={}", r.errors);
            println!("p50_ms={:.3}", ms(r.p50));
            println!("p90_ms={:.3}", ms(r.p90));
            println!("p99_ms={:.3}", ms(r.p99));
            println!("max_ms={:.3}", ms(r.max));
            println!("elapsed_s={:.1}", r.elapsed.as_secs_f64());
        }
    }
    Ok(())
}
