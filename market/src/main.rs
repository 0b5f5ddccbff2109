//! `flowshield-market`: the market sidecar's command line. Argument parsing
//! and dispatch only; each subcommand's wiring is in [`cli`], the roles in
//! the library.

mod cli;

/// mimalloc rather than the system allocator: a fullnode allocates and
/// frees small buffers for every gossip message (thousands a second), and
/// glibc's malloc took about an eighth of its CPU in
/// `scripts/bench-market.sh`.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use anyhow::Result;
use clap::{Parser, Subcommand};
use flowshield_logging::LogArgs;

#[derive(Parser)]
#[command(
    name = "flowshield-market",
    version,
    about = "FlowShield bandwidth market sidecar"
)]
struct Cli {
    #[command(flatten)]
    log: LogArgs,
    #[command(subcommand)]
    role: Role,
}

#[derive(Subcommand)]
enum Role {
    /// Index providers from gossip and serve the HTTP API.
    Fullnode(cli::fullnode::FullnodeArgs),
    /// Announce an offer: signed heartbeats on gossip, presence in the DHT.
    Provider(cli::provider::ProviderArgs),
    /// Buy bandwidth: `connect` runs in the foreground, `disconnect` settles.
    Client {
        #[command(subcommand)]
        action: cli::client::ClientAction,
    },
    /// Demo/test only: a local chain with the market deployed and funded
    /// key files, reachable on --listen. Runs until Ctrl-C/SIGTERM.
    DevChain(cli::devchain::DevChainArgs),
    /// Print the node's PeerId and chain address, creating the key files
    /// (mode 0600) that are absent. Never prints a private key.
    Keys(cli::keys::KeysArgs),
    /// Print balances, claimable amounts and an order as JSON.
    ChainStatus(cli::chain_status::ChainStatusArgs),
    /// Deploy timelock, market and DeCA registry to a chain and write the
    /// deployment manifest the other binaries read (--deployment FILE).
    Deploy(cli::deploy::DeployArgs),
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    // stdout carries the client's JSON lines; logs go to stderr.
    cli.log.init()?;
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime.enable_all();
    if let Role::Fullnode(args) = &cli.role {
        runtime.worker_threads(args.runtime_threads());
    }
    runtime.build()?.block_on(run(cli))
}

async fn run(cli: Cli) -> Result<()> {
    match cli.role {
        Role::Fullnode(args) => cli::fullnode::run(args).await,
        Role::Provider(args) => cli::provider::run(args).await,
        Role::Client { action } => cli::client::run(action).await,
        Role::DevChain(args) => cli::devchain::run(args).await,
        Role::Keys(args) => cli::keys::run(args),
        Role::ChainStatus(args) => cli::chain_status::run(args).await,
        Role::Deploy(args) => cli::deploy::run(args).await,
    }
}
