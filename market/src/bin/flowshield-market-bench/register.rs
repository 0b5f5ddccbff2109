//! Registers the simulated providers on a local chain, so that a fullnode
//! gating on stake admits them (benchmark only).
//!
//! Provider `i` gets a deterministic chain key and libp2p key derived from
//! `i` ([`chain_key`], [`node_key`]), so reruns against one chain find
//! their providers registered. Each account is funded with the dev node's
//! `hardhat_setBalance`, then signs its own `register` transaction (nonce
//! 0, fixed gas): real transactions, sent many at once, without the
//! per-transaction estimation round trips of the market client.

use anyhow::{bail, Context, Result};
use flowshield_chain::alloy::eips::Encodable2718;
use flowshield_chain::alloy::network::{EthereumWallet, TransactionBuilder};
use flowshield_chain::alloy::primitives::{keccak256, Address, Bytes, B256, U256};
use flowshield_chain::alloy::providers::{DynProvider, Provider};
use flowshield_chain::alloy::rpc::types::TransactionRequest;
use flowshield_chain::alloy::signers::local::PrivateKeySigner;
use flowshield_chain::alloy::sol_types::SolCall;
use flowshield_chain::bindings::BandwidthMarket;
use flowshield_chain::{rpc, MarketClient};
use flowshield_proto::{peer_id_hash, Keypair, Offer};
use std::time::Instant;
use tokio::task::JoinSet;

/// Registration transactions in flight at once.
const IN_FLIGHT: usize = 64;
/// Enough for `register` (about 150k).
const REGISTER_GAS: u64 = 400_000;

/// Where to register.
#[derive(Debug, Clone)]
pub struct ChainTarget {
    pub rpc_url: String,
    pub market: Address,
}

/// The chain key of simulated provider `i`.
pub fn chain_key(i: usize) -> Result<PrivateKeySigner> {
    let seed = keccak256(format!("flowshield-bench provider chain key {i}"));
    Ok(rpc::signer_from_key(&seed)?)
}

/// The libp2p key of simulated provider `i`.
pub fn node_key(i: usize) -> Result<Keypair> {
    let mut seed = keccak256(format!("flowshield-bench provider node key {i}")).0;
    Ok(Keypair::ed25519_from_bytes(&mut seed)?)
}

/// Registers every offer's provider (chain key `signers[i]`) that is not
/// yet registered, staking `minStake`.
pub async fn register_all(
    target: &ChainTarget,
    signers: &[PrivateKeySigner],
    offers: &[Offer],
) -> Result<()> {
    let started = Instant::now();
    let chain = rpc::connect_read_only(&target.rpc_url)?;
    let market = MarketClient::at(target.market, chain.clone());
    let min_stake = market.params().await?.min_stake;
    let chain_id = chain.get_chain_id().await.context("eth_chainId")?;
    let max_fee = chain.get_gas_price().await.context("eth_gasPrice")? * 2 + 1;
    let balance = min_stake + U256::from(max_fee) * U256::from(REGISTER_GAS) * U256::from(2);
    let mut tasks = JoinSet::new();
    let mut sent = 0usize;
    let mut done = 0usize;
    for (signer, offer) in signers.iter().zip(offers) {
        if tasks.len() >= IN_FLIGHT {
            done += joined(tasks.join_next().await)?;
        }
        let job = Job {
            chain: chain.clone(),
            market: market.clone(),
            signer: signer.clone(),
            terms: BandwidthMarket::registerCall {
                pricePerGiB: U256::from(offer.price_per_gib_wei),
                pricePerHour: U256::from(offer.price_per_hour_wei),
                peerIdHash: peer_id_hash(&offer.provider_peer_id),
                wgPublicKey: B256::from(offer.wg_public_key.0),
                quality: flowshield_chain::default_quality(),
            },
            stake: min_stake,
            balance,
            chain_id,
            max_fee,
        };
        tasks.spawn(job.run());
        sent += 1;
    }
    while let Some(result) = tasks.join_next().await {
        done += joined(Some(result))?;
    }
    tracing::info!(
        providers = sent,
        registered_now = done,
        seconds = format!("{:.1}", started.elapsed().as_secs_f64()),
        "simulated providers registered on chain"
    );
    Ok(())
}

fn joined(result: Option<Result<Result<bool>, tokio::task::JoinError>>) -> Result<usize> {
    match result {
        Some(Ok(Ok(registered))) => Ok(usize::from(registered)),
        Some(Ok(Err(e))) => Err(e),
        Some(Err(e)) => bail!("registration task: {e}"),
        None => Ok(0),
    }
}

struct Job {
    chain: DynProvider,
    market: MarketClient,
    signer: PrivateKeySigner,
    terms: BandwidthMarket::registerCall,
    stake: U256,
    balance: U256,
    chain_id: u64,
    max_fee: u128,
}

impl Job {
    /// `Ok(true)` once registered by this call, `Ok(false)` if it already was.
    async fn run(self) -> Result<bool> {
        let address = self.signer.address();
        let record = self.market.provider_record(address).await?;
        if record.registered {
            if record.peerIdHash != self.terms.peerIdHash
                || record.wgPublicKey != self.terms.wgPublicKey
            {
                bail!("{address:#x} is registered with another PeerId or WireGuard key");
            }
            return Ok(false);
        }
        self.chain
            .raw_request::<_, serde_json::Value>(
                "hardhat_setBalance".into(),
                (address, self.balance),
            )
            .await
            .context("hardhat_setBalance (is this a local dev chain?)")?;
        let tx = TransactionRequest::default()
            .with_from(address)
            .with_to(self.market.address())
            .with_input(Bytes::from(self.terms.abi_encode()))
            .with_value(self.stake)
            .with_nonce(0)
            .with_chain_id(self.chain_id)
            .with_gas_limit(REGISTER_GAS)
            .with_max_fee_per_gas(self.max_fee)
            .with_max_priority_fee_per_gas(0);
        let envelope = tx
            .build(&EthereumWallet::from(self.signer))
            .await
            .context("signing register")?;
        let receipt = self
            .chain
            .send_raw_transaction(&envelope.encoded_2718())
            .await
            .context("sending register")?
            .get_receipt()
            .await
            .context("register receipt")?;
        if !receipt.status() {
            bail!("register of {address:#x} reverted");
        }
        Ok(true)
    }
}
