//! `flowshield-market dev-chain`: demo and test only — a local chain with
//! the market deployed, funded key files and staked verifiers, reachable
//! on `--listen` (see [`super::devnet`]). Runs until Ctrl-C/SIGTERM.

use super::{devnet, terminated};
use anyhow::{Context, Result};
use flowshield_chain::LocalChain;
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct DevChainArgs {
    /// Where the chain's JSON-RPC is served (forwarded to the node).
    #[arg(long)]
    listen: SocketAddr,
    /// Directory for <name>.key files and chain.json.
    #[arg(long)]
    dir: PathBuf,
    /// Funded accounts to create (comma-separated names).
    #[arg(long, value_delimiter = ',')]
    keys: Vec<String>,
    /// Funded accounts that also join as verifiers by staking.
    #[arg(long, value_delimiter = ',')]
    verifiers: Vec<String>,
}

pub async fn run(args: DevChainArgs) -> Result<()> {
    let DevChainArgs {
        listen,
        dir,
        keys,
        verifiers,
    } = args;
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let chain = LocalChain::start()
        .await
        .context("starting the local chain")?;
    let market = devnet::deploy(&chain, &devnet::demo_params()).await?;
    let mut accounts = devnet::funded_key_files(&chain, &dir, &keys).await?;
    let verifier_accounts = devnet::staked_verifiers(&chain, &market, &dir, &verifiers)
        .await
        .context("staking verifiers")?;
    accounts.extend(verifier_accounts);
    let target = devnet::url_addr(chain.rpc_url()).context("local chain URL")?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("listening on {listen}"))?;
    let forward = devnet::forward(listener, target);
    let info = serde_json::json!({
        "rpc_url": format!("http://{listen}"),
        "market_address": market.address().to_string(),
        "chain_id": chain.chain_id(),
        "accounts": accounts.iter().map(|(n, a)| (n.clone(), a.to_string())).collect::<std::collections::BTreeMap<_, _>>(),
    });
    std::fs::write(dir.join("chain.json"), info.to_string())?;
    println!("ready {info}");
    terminated().await;
    forward.abort();
    drop(chain);
    Ok(())
}
