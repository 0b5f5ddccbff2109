//! `flowshield-market deploy`: deploy the timelock, the market it owns and the DeCA
//! registry to a chain, and write the deployment manifest the other binaries read
//! (`--deployment FILE`; see `flowshield_chain::deployment`).
//!
//! The deployer's key comes from a file (hex secp256k1, mode 0600 enforced), never
//! from the command line; it is never printed or logged. Every market parameter has
//! the default of `MarketParams::default()` (shown by `--help`); a bad one is refused
//! by the contract's constructor, naming it (`InvalidParams(field)`).

use anyhow::{Context, Result};
use flowshield_chain::alloy::primitives::{Address, U256};
use flowshield_chain::deployment::{self, DeployPlan};
use flowshield_chain::{rpc, MarketParams};
use flowshield_market::chain::read_key_file;
use std::path::PathBuf;

/// Default minimum delay of governance changes: two days.
pub const DEFAULT_TIMELOCK_DELAY: u64 = 2 * 86_400;

#[derive(clap::Args)]
pub struct DeployArgs {
    /// JSON-RPC URL of the chain.
    #[arg(long)]
    rpc_url: String,
    /// The deployer's key file (hex secp256k1, mode 0600); it pays for the deployment.
    #[arg(long)]
    key_file: PathBuf,
    /// Where to write the deployment manifest (refused if it exists).
    #[arg(long)]
    out: PathBuf,
    /// Minimum delay of every governance change (timelock), seconds.
    #[arg(long, default_value_t = DEFAULT_TIMELOCK_DELAY)]
    timelock_delay: u64,
    /// May propose governance changes (repeatable; default: the deployer).
    #[arg(long)]
    proposer: Vec<Address>,
    /// May execute ready changes (repeatable; default: the proposers;
    /// 0x0000000000000000000000000000000000000000: anyone).
    #[arg(long)]
    executor: Vec<Address>,
    #[command(flatten)]
    params: ParamArgs,
}

/// Market parameters; each defaults to `MarketParams::default()`'s value.
#[derive(clap::Args)]
struct ParamArgs {
    /// Provider minimum stake, wei [default: 1 ETH].
    #[arg(long)]
    min_stake: Option<U256>,
    /// Verifier minimum stake, wei [default: 0.1 ETH].
    #[arg(long)]
    min_verifier_stake: Option<U256>,
    /// Bond each report locks, wei (at most the verifier minimum) [default: 0.01 ETH].
    #[arg(long)]
    report_bond: Option<U256>,
    /// Provider unbonding delay, seconds [default: 86400].
    #[arg(long)]
    unstake_delay: Option<u64>,
    /// Verifier unbonding delay, seconds [default: 86400].
    #[arg(long)]
    verifier_unbond_delay: Option<u64>,
    /// Seconds a provider has to accept an order [default: 3600].
    #[arg(long)]
    accept_timeout: Option<u64>,
    /// Seconds a provider keeps to redeem after a close request [default: 3600].
    #[arg(long)]
    close_grace: Option<u64>,
    /// Report period, seconds [default: 3600].
    #[arg(long)]
    report_period: Option<u64>,
    /// Challenge window after a period, seconds [default: 3600].
    #[arg(long)]
    challenge_window: Option<u64>,
    /// Distinct failing reporters a slash needs (at least 3) [default: 3].
    #[arg(long)]
    min_reporters: Option<u32>,
    /// Failing share of a period's reports a slash needs, basis points (> 5000)
    /// [default: 6667].
    #[arg(long)]
    fail_quorum_bps: Option<u16>,
    /// Share of the stake slashed, basis points [default: 1000].
    #[arg(long)]
    slash_bps: Option<u16>,
    /// Share of a slash to the verifiers that were right, basis points [default: 2000].
    #[arg(long)]
    verifier_share_bps: Option<u16>,
    /// Consecutive failing probes before a verifier reports failure [default: 3].
    #[arg(long)]
    fail_streak: Option<u16>,
}

impl ParamArgs {
    fn params(&self) -> MarketParams {
        let d = MarketParams::default();
        MarketParams {
            min_stake: self.min_stake.unwrap_or(d.min_stake),
            min_verifier_stake: self.min_verifier_stake.unwrap_or(d.min_verifier_stake),
            report_bond: self.report_bond.unwrap_or(d.report_bond),
            unstake_delay: self.unstake_delay.unwrap_or(d.unstake_delay),
            verifier_unbond_delay: self
                .verifier_unbond_delay
                .unwrap_or(d.verifier_unbond_delay),
            accept_timeout: self.accept_timeout.unwrap_or(d.accept_timeout),
            close_grace: self.close_grace.unwrap_or(d.close_grace),
            report_period: self.report_period.unwrap_or(d.report_period),
            challenge_window: self.challenge_window.unwrap_or(d.challenge_window),
            min_reporters: self.min_reporters.unwrap_or(d.min_reporters),
            fail_quorum_bps: self.fail_quorum_bps.unwrap_or(d.fail_quorum_bps),
            slash_bps: self.slash_bps.unwrap_or(d.slash_bps),
            verifier_share_bps: self.verifier_share_bps.unwrap_or(d.verifier_share_bps),
            fail_streak: self.fail_streak.unwrap_or(d.fail_streak),
        }
    }
}

pub async fn run(args: DeployArgs) -> Result<()> {
    anyhow::ensure!(
        std::fs::symlink_metadata(&args.out).is_err(),
        "--out {}: exists; a manifest is never overwritten",
        args.out.display()
    );
    let signer = read_key_file(&args.key_file).context("--key-file")?;
    let deployer = signer.address();
    let provider = rpc::connect(&args.rpc_url, signer).context("--rpc-url")?;
    let proposers = if args.proposer.is_empty() {
        vec![deployer]
    } else {
        args.proposer
    };
    let executors = if args.executor.is_empty() {
        proposers.clone()
    } else {
        args.executor
    };
    let plan = DeployPlan {
        params: args.params.params(),
        timelock_delay: args.timelock_delay,
        proposers,
        executors,
    };
    tracing::info!(%deployer, rpc = %args.rpc_url, "deploying");
    let manifest = deployment::deploy(provider.clone(), &plan)
        .await
        .context("deploying")?;
    manifest
        .verify(&provider)
        .await
        .context("checking the new deployment")?;
    manifest.write(&args.out)?;
    let c = &manifest.contracts;
    println!(
        "{}",
        serde_json::json!({
            "manifest": args.out.display().to_string(),
            "chain_id": manifest.chain_id,
            "market": c.market.address.to_string(),
            "timelock": c.timelock.address.to_string(),
            "deca_registry": c.deca_registry.address.to_string(),
        })
    );
    Ok(())
}
