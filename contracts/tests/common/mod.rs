//! Shared fixtures for the integration tests: a fresh node, a fresh market, and
//! funded actors.
#![allow(dead_code)]

use flowshield_chain::alloy::primitives::{Address, B256, U256};
use flowshield_chain::alloy::rpc::types::TransactionReceipt;
use flowshield_chain::alloy::signers::local::PrivateKeySigner;
use flowshield_chain::governance::{self, Timelock};
use flowshield_chain::voucher::{self, SignedVoucher};
use flowshield_chain::{
    default_quality, LocalChain, MarketClient, MarketParams, OrderRecord, OrderStatus,
    ProviderRecord, ProviderTerms,
};

/// Minimum delay of the fixture's governance timelock (seconds).
pub const TIMELOCK_DELAY: u64 = 2 * 86_400;

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
        peer_id_hash: B256::repeat_byte(tag),
        wg_public_key: [tag.max(1); 32],
        quality: default_quality(),
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

    /// Open an order with `provider`, escrowing `escrow` (self is the client).
    pub async fn open(&self, provider: &Actor, escrow: U256) -> U256 {
        let (id, _) = self
            .market
            .open_order(provider.addr(), escrow)
            .await
            .expect("open order");
        id
    }
}

/// A node with one freshly deployed market and handy actors.
pub struct Fixture {
    pub chain: LocalChain,
    /// The governance key: proposer and executor on the timelock that owns the market.
    pub owner: Actor,
    pub timelock: Timelock,
    pub params: MarketParams,
}

impl Fixture {
    pub async fn new(params: MarketParams) -> Fixture {
        let chain = LocalChain::start().await.expect("local chain");
        let signer = chain.funded_signer().await.expect("owner");
        let provider = chain.provider_for(signer.clone()).expect("provider");
        let (market, timelock) =
            governance::deploy_market(provider, &params, TIMELOCK_DELAY, signer.address())
                .await
                .expect("deploy market");
        Fixture {
            chain,
            owner: Actor { signer, market },
            timelock,
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

    /// `client` opens an order with `provider` and the provider accepts it.
    pub async fn open_accepted(&self, client: &Actor, provider: &Actor, escrow: U256) -> U256 {
        let id = client.open(provider, escrow).await;
        provider
            .market
            .accept_order(id)
            .await
            .expect("accept order");
        id
    }

    /// `verifier` joins by staking the minimum plus ten report bonds.
    pub async fn admit_verifier(&self, verifier: &Actor) {
        let stake = self.params.min_verifier_stake + self.params.report_bond * U256::from(10u64);
        verifier
            .market
            .join_verifiers(stake)
            .await
            .expect("join verifiers");
    }

    /// Move past `period`'s challenge window and finalize it (as `by`).
    pub async fn finalize(&self, by: &Actor, provider: Address, period: u64) -> TransactionReceipt {
        let closes = self
            .owner
            .market
            .challenge_closes_at(period)
            .await
            .expect("closes at");
        let now = self.chain.latest_timestamp().await.expect("now");
        if now < closes {
            self.advance(closes - now).await;
        }
        by.market
            .finalize(provider, period)
            .await
            .expect("finalize")
    }

    /// Move the node's clock forward by `seconds`.
    pub async fn advance(&self, seconds: u64) {
        self.chain
            .increase_time(seconds)
            .await
            .expect("time travel");
    }

    /// The owner's client, for views.
    fn view(&self) -> &MarketClient {
        &self.owner.market
    }

    pub async fn order(&self, id: U256) -> OrderRecord {
        self.view().order(id).await.expect("order")
    }

    pub async fn status(&self, id: U256) -> OrderStatus {
        self.view().order_status(id).await.expect("order status")
    }

    pub async fn claimable(&self, account: Address) -> U256 {
        self.view().claimable(account).await.expect("claimable")
    }

    pub async fn record(&self, provider: Address) -> ProviderRecord {
        self.view().provider_record(provider).await.expect("record")
    }

    pub async fn is_active(&self, provider: Address) -> bool {
        self.view()
            .is_active_provider(provider)
            .await
            .expect("active")
    }

    pub async fn active_orders(&self, provider: Address) -> Vec<U256> {
        self.view().active_orders(provider).await.expect("orders")
    }

    pub async fn has_reported(&self, verifier: Address, provider: Address, period: u64) -> bool {
        self.view()
            .has_reported(verifier, provider, period)
            .await
            .expect("has reported")
    }

    pub async fn fail_reports(&self, provider: Address, period: u64) -> u64 {
        self.view()
            .fail_reports(provider, period)
            .await
            .expect("fails")
    }

    pub async fn slashed(&self, provider: Address, period: u64) -> bool {
        self.view()
            .slashed(provider, period)
            .await
            .expect("slashed")
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

/// The cast of most order tests, as `(fx, provider, client, stranger)`: a default market,
/// a provider registered with `stake`, a client, and a stranger (a funded account with no
/// part in the orders).
pub async fn parties(stake: U256) -> (Fixture, Actor, Actor, Actor) {
    let fx = Fixture::new(MarketParams::default()).await;
    let provider = fx.provider(stake).await;
    let client = fx.actor().await;
    let stranger = fx.actor().await;
    (fx, provider, client, stranger)
}

/// Assert that `result` failed with the custom error `$variant` of the contract errors
/// enum `$errors`, as decoded by `ChainError::$decode`; evaluates to the error's fields.
/// Optional trailing `format!` arguments say which case failed.
#[macro_export]
macro_rules! assert_revert {
    ($result:expr, $decode:ident, $errors:ident, $variant:ident $(, $($case:tt)+)?) => {{
        #[allow(unused_imports)]
        use flowshield_chain::bindings::{
            BandwidthMarket::BandwidthMarketErrors, DecaRegistry::DecaRegistryErrors,
        };
        let case: String = String::new() $(+ &format!($($case)+) + ": ")?;
        let want = stringify!($variant);
        match $result {
            Ok(_) => panic!("{case}expected revert {want}, call succeeded"),
            Err(e) => match e.$decode() {
                Some($errors::$variant(inner)) => inner.clone(),
                _ => panic!("{case}expected revert {want}, got: {e}"),
            },
        }
    }};
}

/// Assert that `result` failed with the given `BandwidthMarket` custom error variant.
#[macro_export]
macro_rules! assert_market_revert {
    ($result:expr, $variant:ident $(, $($case:tt)+)?) => {
        $crate::assert_revert!($result, market_error, BandwidthMarketErrors, $variant
            $(, $($case)+)?)
    };
}

/// Assert that `result` failed with the given `DecaRegistry` custom error variant.
#[macro_export]
macro_rules! assert_deca_revert {
    ($result:expr, $variant:ident) => {
        $crate::assert_revert!($result, deca_error, DecaRegistryErrors, $variant)
    };
}
