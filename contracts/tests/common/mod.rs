//! Shared fixtures for the integration tests: a fresh node, a fresh market, and
//! funded actors.
#![allow(dead_code)]

use flowshield_chain::alloy::primitives::{Address, B256, U256};
use flowshield_chain::alloy::rpc::types::TransactionReceipt;
use flowshield_chain::alloy::signers::local::PrivateKeySigner;
use flowshield_chain::voucher::{self, SignedVoucher};
use flowshield_chain::{LocalChain, MarketClient, MarketParams, ProviderTerms};

/// `n` ether in wei.
pub fn eth(n: u64) -> U256 {
    U256::from(n) * U256::from(10u64).pow(U256::from(18u64))
}

/// `n` milli-ether in wei.
pub fn meth(n: u64) -> U256 {
    U256::from(n) * U256::from(10u64).pow(U256::from(15u64))
}

/// Wei spent on gas by a mined transaction.
pub fn gas_cost(r: &TransactionReceipt) -> U256 {
    U256::from(r.gas_used) * U256::from(r.effective_gas_price)
}

pub fn terms(tag: u8) -> ProviderTerms {
    ProviderTerms {
        price_per_gib: meth(1),
        price_per_hour: meth(2),
        metadata_hash: B256::repeat_byte(tag),
        wg_public_key: [tag.max(1); 32],
    }
}

/// One account acting on one market.
pub struct Actor {
    pub signer: PrivateKeySigner,
    pub market: MarketClient,
}

impl Actor {
    pub fn addr(&self) -> Address {
        self.signer.address()
    }

    /// Sign a voucher for this market (self must be the client).
    pub async fn voucher(&self, order_id: U256, amount: U256) -> SignedVoucher {
        let domain = self.market.eip712_domain().await.expect("domain");
        voucher::sign_voucher(&self.signer, &domain, order_id, amount).expect("sign voucher")
    }
}

/// A node with one freshly deployed market and handy actors.
pub struct Fixture {
    pub chain: LocalChain,
    pub owner: Actor,
    pub params: MarketParams,
}

impl Fixture {
    pub async fn new(params: MarketParams) -> Fixture {
        let chain = LocalChain::start().await.expect("local chain");
        let signer = chain.funded_signer().await.expect("owner");
        let provider = chain.provider_for(signer.clone()).expect("provider");
        let market = MarketClient::deploy(provider, &params)
            .await
            .expect("deploy market");
        Fixture {
            chain,
            owner: Actor { signer, market },
            params,
        }
    }

    /// A new funded account on the same market.
    pub async fn actor(&self) -> Actor {
        let signer = self.chain.funded_signer().await.expect("funded signer");
        let provider = self.chain.provider_for(signer.clone()).expect("provider");
        Actor {
            market: self.owner.market.with_provider(provider),
            signer,
        }
    }

    /// A registered provider with `stake`.
    pub async fn provider(&self, stake: U256) -> Actor {
        let p = self.actor().await;
        p.market
            .register(stake, &terms(7))
            .await
            .expect("register provider");
        p
    }

    pub async fn balance(&self, a: Address) -> U256 {
        self.chain.balance(a).await.expect("balance")
    }

    /// The contract's balance must equal its recorded obligations.
    pub async fn assert_solvent(&self) {
        let bal = self.balance(self.owner.market.address()).await;
        let owed = self
            .owner
            .market
            .total_obligations()
            .await
            .expect("obligations");
        assert_eq!(bal, owed, "contract balance != obligations");
    }
}

/// Assert that `result` failed with the given `BandwidthMarket` custom error variant.
#[macro_export]
macro_rules! assert_market_revert {
    ($result:expr, $variant:ident) => {{
        match $result {
            Ok(_) => panic!("expected revert {}, call succeeded", stringify!($variant)),
            Err(e) => match e.market_error() {
                Some(
                    flowshield_chain::bindings::BandwidthMarket::BandwidthMarketErrors::$variant(
                        inner,
                    ),
                ) => inner.clone(),
                _ => panic!("expected revert {}, got: {e}", stringify!($variant)),
            },
        }
    }};
}
