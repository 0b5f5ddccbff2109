//! `flowshield-market chain-status`: balances, claimable amounts and an
//! order, as JSON (for scripts and the demo).

use anyhow::{Context, Result};
use flowshield_chain::alloy::primitives::Address;
use flowshield_chain::alloy::providers::Provider as _;
use flowshield_chain::{rpc as chain_rpc, MarketClient, OrderStatus};
use flowshield_market::wire::session::parse_u256;

#[derive(clap::Args)]
pub struct ChainStatusArgs {
    #[arg(long)]
    rpc: String,
    /// BandwidthMarket address (or --deployment).
    #[arg(
        long,
        required_unless_present = "deployment",
        conflicts_with = "deployment"
    )]
    market: Option<String>,
    /// Deployment manifest (`flowshield-market deploy`), checked against --rpc.
    #[arg(long)]
    deployment: Option<std::path::PathBuf>,
    /// Account to report (repeatable).
    #[arg(long)]
    account: Vec<String>,
    #[arg(long)]
    order: Option<String>,
}

pub async fn run(args: ChainStatusArgs) -> Result<()> {
    let reader = chain_rpc::connect_read_only(&args.rpc)?;
    let market = match (&args.market, &args.deployment) {
        (Some(text), _) => {
            MarketClient::at(text.parse::<Address>().context("--market")?, reader.clone())
        }
        (None, Some(path)) => flowshield_chain::Deployment::load(path)?
            .market(reader.clone())
            .await
            .context("--deployment")?,
        (None, None) => anyhow::bail!("--market or --deployment is required"),
    };
    let mut out = serde_json::json!({"accounts": {}});
    for account in &args.account {
        let address: Address = account
            .parse()
            .with_context(|| format!("--account {account}"))?;
        let balance = reader.get_balance(address).await?;
        let claimable = market.claimable(address).await?;
        out["accounts"][address.to_string()] = serde_json::json!({
            "balance_wei": balance.to_string(),
            "claimable_wei": claimable.to_string(),
        });
    }
    if let Some(order) = &args.order {
        let id = parse_u256("order", order)?;
        let o = market.order(id).await?;
        out["order"] = serde_json::json!({
            "id": id.to_string(),
            "client": o.client.to_string(),
            "provider": o.provider.to_string(),
            "status": format!("{:?}", OrderStatus::from_u8(o.status).unwrap_or(OrderStatus::None)),
            "escrow_wei": o.escrow.to_string(),
            "redeemed_wei": o.redeemed.to_string(),
        });
    }
    println!("{out}");
    Ok(())
}
