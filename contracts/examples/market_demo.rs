//! Demo: start a local node, deploy both contracts, run one paid order end to end.
//!
//! Run after `contracts/scripts/setup.sh`:
//! `cargo run -p flowshield-chain --example market_demo`

use flowshield_chain::alloy::primitives::{B256, U256};
use flowshield_chain::voucher;
use flowshield_chain::{
    default_quality, governance, ChainError, DecaRegistryClient, LocalChain, MarketParams,
    ProviderTerms,
};

fn milli_eth(n: u64) -> U256 {
    U256::from(n) * U256::from(10u64).pow(U256::from(15u64))
}

#[tokio::main]
async fn main() -> Result<(), ChainError> {
    let chain = LocalChain::start().await?;
    println!("local chain at {}", chain.rpc_url());
    let signer = |i| {
        chain
            .dev_signer(i)
            .ok_or_else(|| ChainError::InvalidKey(format!("no dev account {i}")))
    };
    let (owner, provider, client) = (signer(0)?, signer(1)?, signer(2)?);

    let deca = DecaRegistryClient::deploy(chain.provider_for(owner.clone())?).await?;
    // The market is owned by a timelock (2-day delay) for which `owner` proposes.
    let (market, timelock) = governance::deploy_market(
        chain.provider_for(owner.clone())?,
        &MarketParams::default(),
        2 * 86_400,
        owner.address(),
    )
    .await?;
    println!(
        "DecaRegistry {}  BandwidthMarket {}  FlowShieldTimelock {}",
        deca.address(),
        market.address(),
        timelock.address()
    );

    let as_provider = market.with_provider(chain.provider_for(provider.clone())?);
    let as_client = market.with_provider(chain.provider_for(client.clone())?);
    let terms = ProviderTerms {
        price_per_gib: milli_eth(1),
        price_per_hour: milli_eth(2),
        peer_id_hash: B256::repeat_byte(1),
        wg_public_key: [7; 32],
        quality: default_quality(),
    };
    as_provider.register(milli_eth(1000), &terms).await?;
    let (order, _) = as_client
        .open_order(provider.address(), milli_eth(500))
        .await?;
    as_provider.accept_order(order).await?;
    println!("order {order} accepted");

    let domain = as_client.eip712_domain().await?;
    for used in [10u64, 25, 40] {
        let v = voucher::sign_voucher(&client, &domain, order, milli_eth(used))?;
        as_provider.redeem_voucher(&v).await?;
        println!("redeemed cumulative voucher of {used} mETH");
    }
    as_provider.settle(order).await?;
    println!(
        "settled: provider is owed {} wei, client refund {} wei",
        market.claimable(provider.address()).await?,
        market.claimable(client.address()).await?
    );
    Ok(())
}
