//! Typed client for `BandwidthMarket`: parameters, providers, orders, vouchers (verifiers,
//! reports and slashing: [`crate::quorum`]).
//!
//! Every state-changing method sends one transaction, waits for its receipt and returns
//! it; a revert comes back as [`ChainError::Reverted`] with the decoded custom error.
//! Payouts (voucher payments, refunds, slash shares) are credited on chain and pulled
//! with [`MarketClient::withdraw`]; only [`MarketClient::withdraw_stake`] pays directly.

use alloy::primitives::{Address, Bytes, B256, U256};
use alloy::providers::{DynProvider, Provider as _};
use alloy::rpc::types::TransactionReceipt;
use alloy::sol_types::Eip712Domain;

use crate::bindings::BandwidthMarket::{self, BandwidthMarketInstance};
use crate::bindings::MarketBase;
use crate::error::{ChainError, ContractKind, Result};
use crate::tx;
use crate::voucher::{market_domain, SignedVoucher};

pub(crate) const KIND: ContractKind = ContractKind::Market;

/// On-chain provider record (`BandwidthMarket.Provider`).
pub type ProviderRecord = MarketBase::Provider;
/// On-chain order record (`BandwidthMarket.Order`).
pub type OrderRecord = MarketBase::Order;
/// The quality a provider promises on chain (`MarketBase.QualityPromise`); verifiers
/// judge the provider against it.
pub type QualityPromise = MarketBase::QualityPromise;

/// Order lifecycle, as stored on chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderStatus {
    /// No such order.
    None,
    /// Opened, escrow held, waiting for the provider to accept.
    Pending,
    /// Accepted; vouchers can be redeemed.
    Active,
    /// Client asked to close; provider may still redeem during the grace period.
    Closing,
    /// Ended: provider paid what it redeemed, client refunded the rest.
    Settled,
    /// Never accepted (cancelled, timed out or rejected): client refunded in full.
    Cancelled,
}

impl OrderStatus {
    /// Decode the Solidity enum value.
    pub fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            0 => OrderStatus::None,
            1 => OrderStatus::Pending,
            2 => OrderStatus::Active,
            3 => OrderStatus::Closing,
            4 => OrderStatus::Settled,
            5 => OrderStatus::Cancelled,
            _ => return None,
        })
    }
}

/// Market parameters: set at deployment, changed afterwards only by governance (the
/// timelock) through `setParams`; the report period never changes. In a
/// deployment manifest the wei amounts are decimal strings.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MarketParams {
    /// Minimum stake (wei) to register and to stay active.
    #[serde(with = "crate::deployment::decimal")]
    pub min_stake: U256,
    /// Minimum stake (wei) for a verifier to report.
    #[serde(with = "crate::deployment::decimal")]
    pub min_verifier_stake: U256,
    /// Wei each report locks out of its verifier's stake; forfeited to the verifiers that
    /// were right when the period's outcome contradicts the report. At most
    /// `min_verifier_stake`.
    #[serde(with = "crate::deployment::decimal")]
    pub report_bond: U256,
    /// Seconds between `requestUnstake` and `withdrawStake`.
    pub unstake_delay: u64,
    /// Seconds between `requestVerifierUnstake` and `withdrawVerifierStake`.
    pub verifier_unbond_delay: u64,
    /// Seconds a provider has to accept an order before the client can be refunded.
    pub accept_timeout: u64,
    /// Seconds the provider keeps to redeem after the client requests close.
    pub close_grace: u64,
    /// Length of a verifier report period in seconds.
    pub report_period: u64,
    /// Seconds after a period ends during which reports for it are still accepted;
    /// `finalize` opens afterwards.
    pub challenge_window: u64,
    /// Distinct failing reporters needed for a slash (at least 3).
    pub min_reporters: u32,
    /// Share of all of a period's reports that must be failing for a slash, in basis
    /// points (more than 5 000).
    pub fail_quorum_bps: u16,
    /// Share of the provider's stake slashed, in basis points.
    pub slash_bps: u16,
    /// Share of a slash paid to the verifiers that were right, in basis points; the rest
    /// goes to the clients of the provider's accepted orders, weighted by escrow.
    pub verifier_share_bps: u16,
    /// Consecutive failing probes a verifier needs within a period before it reports
    /// failure (read by the verifier).
    pub fail_streak: u16,
}

impl Default for MarketParams {
    /// Values suited to tests and demos: 1 ETH min stake, 0.1 ETH verifier stake with a
    /// 0.01 ETH bond per report, 1-day unbonding delays, 1-hour periods and challenge
    /// window, slash at 3 failing reporters that are 2/3 of all reports, 10 % slash with
    /// 20 % of it to verifiers, 3 consecutive failing probes.
    fn default() -> Self {
        let milli = U256::from(10u64).pow(U256::from(15u64));
        MarketParams {
            min_stake: milli * U256::from(1_000u64),
            min_verifier_stake: milli * U256::from(100u64),
            report_bond: milli * U256::from(10u64),
            unstake_delay: 86_400,
            verifier_unbond_delay: 86_400,
            accept_timeout: 3_600,
            close_grace: 3_600,
            report_period: 3_600,
            challenge_window: 3_600,
            min_reporters: 3,
            fail_quorum_bps: 6_667,
            slash_bps: 1_000,
            verifier_share_bps: 2_000,
            fail_streak: 3,
        }
    }
}

impl From<&MarketParams> for MarketBase::Params {
    fn from(p: &MarketParams) -> Self {
        MarketBase::Params {
            minStake: p.min_stake,
            minVerifierStake: p.min_verifier_stake,
            reportBond: p.report_bond,
            unstakeDelay: p.unstake_delay,
            verifierUnbondDelay: p.verifier_unbond_delay,
            acceptTimeout: p.accept_timeout,
            closeGrace: p.close_grace,
            reportPeriod: p.report_period,
            challengeWindow: p.challenge_window,
            minReporters: p.min_reporters,
            failQuorumBps: p.fail_quorum_bps,
            slashBps: p.slash_bps,
            verifierShareBps: p.verifier_share_bps,
            failStreak: p.fail_streak,
        }
    }
}

impl From<MarketBase::Params> for MarketParams {
    fn from(p: MarketBase::Params) -> Self {
        MarketParams {
            min_stake: p.minStake,
            min_verifier_stake: p.minVerifierStake,
            report_bond: p.reportBond,
            unstake_delay: p.unstakeDelay,
            verifier_unbond_delay: p.verifierUnbondDelay,
            accept_timeout: p.acceptTimeout,
            close_grace: p.closeGrace,
            report_period: p.reportPeriod,
            challenge_window: p.challengeWindow,
            min_reporters: p.minReporters,
            fail_quorum_bps: p.failQuorumBps,
            slash_bps: p.slashBps,
            verifier_share_bps: p.verifierShareBps,
            fail_streak: p.failStreak,
        }
    }
}

/// What a provider publishes about itself when registering or updating.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderTerms {
    /// Price per GiB transferred, in wei.
    pub price_per_gib: U256,
    /// Price per hour connected, in wei.
    pub price_per_hour: U256,
    /// keccak256 of the provider's libp2p PeerId bytes (`flowshield_proto::peer_id_hash`):
    /// fullnodes admit only heartbeats signed by this PeerId.
    pub peer_id_hash: B256,
    /// WireGuard (X25519) public key; must be non-zero.
    pub wg_public_key: [u8; 32],
    /// The quality promised (verifiers judge against it); `max_rtt_ms` must be non-zero
    /// and `max_loss_bps` at most 10 000.
    pub quality: QualityPromise,
}

/// A modest promise for tests and demos: 1 Mbit/s, 1 s RTT, 5 % loss.
pub fn default_quality() -> QualityPromise {
    QualityPromise {
        minThroughputKbps: 1_000,
        maxRttMs: 1_000,
        maxLossBps: 500,
    }
}

/// A `BandwidthMarket` deployment seen through one signing provider.
#[derive(Debug, Clone)]
pub struct MarketClient {
    contract: BandwidthMarketInstance<DynProvider>,
}

impl MarketClient {
    /// Deploy a new market owned by `governance` (a timelock: see
    /// [`crate::governance::Timelock`]). Reverts `InvalidParams(field)` on a bad parameter.
    pub async fn deploy(
        provider: DynProvider,
        params: &MarketParams,
        governance: Address,
    ) -> Result<Self> {
        let contract = BandwidthMarket::deploy(provider, params.into(), governance)
            .await
            .map_err(|e| ChainError::from_call(KIND, "constructor", e))?;
        tracing::info!(address = %contract.address(), "BandwidthMarket deployed");
        Ok(MarketClient { contract })
    }

    /// Attach to an existing deployment.
    pub fn at(address: Address, provider: DynProvider) -> Self {
        MarketClient {
            contract: BandwidthMarketInstance::new(address, provider),
        }
    }

    /// The same deployment, acting through another provider (another account).
    pub fn with_provider(&self, provider: DynProvider) -> Self {
        Self::at(self.address(), provider)
    }

    /// Contract address.
    pub fn address(&self) -> Address {
        *self.contract.address()
    }

    /// The raw alloy instance (event filters, anything not wrapped here).
    pub fn instance(&self) -> &BandwidthMarketInstance<DynProvider> {
        &self.contract
    }

    /// The EIP-712 domain vouchers and reports for this deployment are signed under.
    pub async fn eip712_domain(&self) -> Result<Eip712Domain> {
        let chain_id = self
            .contract
            .provider()
            .get_chain_id()
            .await
            .map_err(|source| ChainError::Rpc {
                method: "eth_chainId",
                source: Box::new(source),
            })?;
        Ok(market_domain(chain_id, self.address()))
    }

    // ------------------------------------------------------------- views

    /// Owner (governance: the timelock).
    pub async fn owner(&self) -> Result<Address> {
        tx::call(KIND, "owner", self.contract.owner()).await
    }

    /// Current parameters.
    pub async fn params(&self) -> Result<MarketParams> {
        let p = tx::call(KIND, "getParams", self.contract.getParams()).await?;
        Ok(p.into())
    }

    /// Provider record (all zero / `registered == false` if unknown).
    pub async fn provider_record(&self, provider: Address) -> Result<ProviderRecord> {
        tx::call(KIND, "getProvider", self.contract.getProvider(provider)).await
    }

    /// Registered with at least the minimum stake.
    pub async fn is_active_provider(&self, provider: Address) -> Result<bool> {
        let call = self.contract.isActiveProvider(provider);
        tx::call(KIND, "isActiveProvider", call).await
    }

    /// Ids of the provider's accepted, unsettled orders.
    pub async fn active_orders(&self, provider: Address) -> Result<Vec<U256>> {
        tx::call(KIND, "activeOrders", self.contract.activeOrders(provider)).await
    }

    /// Order record (status `None` if unknown).
    pub async fn order(&self, order_id: U256) -> Result<OrderRecord> {
        tx::call(KIND, "getOrder", self.contract.getOrder(order_id)).await
    }

    /// Order status.
    pub async fn order_status(&self, order_id: U256) -> Result<OrderStatus> {
        let o = self.order(order_id).await?;
        let raw: u8 = o.status;
        OrderStatus::from_u8(raw)
            .ok_or_else(|| ChainError::UnexpectedValue(format!("order status {raw}")))
    }

    /// Amount credited to `account` and not yet withdrawn.
    pub async fn claimable(&self, account: Address) -> Result<U256> {
        tx::call(KIND, "claimable", self.contract.claimable(account)).await
    }

    /// totalStake + totalEscrow + totalClaimable: what the contract owes; equals its balance.
    pub async fn total_obligations(&self) -> Result<U256> {
        let call = self.contract.totalObligations();
        tx::call(KIND, "totalObligations", call).await
    }

    /// `(totalStake, totalEscrow, totalClaimable)`.
    pub async fn totals(&self) -> Result<(U256, U256, U256)> {
        let stake = tx::call(KIND, "totalStake", self.contract.totalStake()).await?;
        let escrow = tx::call(KIND, "totalEscrow", self.contract.totalEscrow()).await?;
        let claim = tx::call(KIND, "totalClaimable", self.contract.totalClaimable()).await?;
        Ok((stake, escrow, claim))
    }

    /// `(totalVerifierStake, totalBonds, totalSlashPool)`: the verifier side of the books.
    pub async fn verifier_totals(&self) -> Result<(U256, U256, U256)> {
        let c = &self.contract;
        let stake = tx::call(KIND, "totalVerifierStake", c.totalVerifierStake()).await?;
        let bonds = tx::call(KIND, "totalBonds", c.totalBonds()).await?;
        let pool = tx::call(KIND, "totalSlashPool", c.totalSlashPool()).await?;
        Ok((stake, bonds, pool))
    }

    /// The contract's own voucher digest (for cross-checking [`crate::voucher`]).
    pub async fn voucher_digest_on_chain(&self, order_id: U256, amount: U256) -> Result<B256> {
        let call = self.contract.voucherDigest(order_id, amount);
        tx::call(KIND, "voucherDigest", call).await
    }

    // ------------------------------------------------------------- providers

    /// Register the caller as a provider with `stake` wei.
    /// Reverts `AlreadyRegistered`, `InsufficientStake`, `InvalidWgKey`.
    pub async fn register(&self, stake: U256, terms: &ProviderTerms) -> Result<TransactionReceipt> {
        let call = self
            .contract
            .register(
                terms.price_per_gib,
                terms.price_per_hour,
                terms.peer_id_hash,
                B256::from(terms.wg_public_key),
                terms.quality.clone(),
            )
            .value(stake);
        tx::send(KIND, "register", call).await
    }

    /// Change prices, PeerId hash or WireGuard key. Reverts `NotRegistered`, `InvalidWgKey`.
    pub async fn update_provider(&self, terms: &ProviderTerms) -> Result<TransactionReceipt> {
        let call = self.contract.updateProvider(
            terms.price_per_gib,
            terms.price_per_hour,
            terms.peer_id_hash,
            B256::from(terms.wg_public_key),
            terms.quality.clone(),
        );
        tx::send(KIND, "updateProvider", call).await
    }

    /// Add stake. Reverts `NotRegistered`, `ZeroAmount`.
    pub async fn add_stake(&self, amount: U256) -> Result<TransactionReceipt> {
        tx::send(KIND, "addStake", self.contract.addStake().value(amount)).await
    }

    /// Start unbonding `amount`. Reverts `NotRegistered`, `ZeroAmount`,
    /// `AmountExceedsStake`, `StakeBelowMinimum`.
    pub async fn request_unstake(&self, amount: U256) -> Result<TransactionReceipt> {
        tx::send(KIND, "requestUnstake", self.contract.requestUnstake(amount)).await
    }

    /// Withdraw unbonded stake after the delay. Reverts `NotRegistered`,
    /// `NothingToWithdraw`, `UnbondingLocked`, `TransferFailed`.
    pub async fn withdraw_stake(&self) -> Result<TransactionReceipt> {
        tx::send(KIND, "withdrawStake", self.contract.withdrawStake()).await
    }

    // ------------------------------------------------------------- orders

    /// Open an order with `provider`, escrowing `escrow` wei (the maximum spend).
    /// Returns the new order id. Reverts `ZeroAmount`, `ProviderNotActive`.
    pub async fn open_order(
        &self,
        provider: Address,
        escrow: U256,
    ) -> Result<(U256, TransactionReceipt)> {
        let call = self.contract.openOrder(provider).value(escrow);
        let receipt = tx::send(KIND, "openOrder", call).await?;
        let id = receipt
            .inner
            .logs()
            .iter()
            .find_map(|log| log.log_decode::<BandwidthMarket::OrderOpened>().ok())
            .map(|log| log.inner.data.orderId)
            .ok_or(ChainError::TxFailed(receipt.transaction_hash))?;
        Ok((id, receipt))
    }

    /// Client adds escrow. Reverts `UnknownOrder`, `Unauthorized`, `InvalidOrderStatus`, `ZeroAmount`.
    pub async fn top_up(&self, order_id: U256, amount: U256) -> Result<TransactionReceipt> {
        tx::send(KIND, "topUp", self.contract.topUp(order_id).value(amount)).await
    }

    /// Provider accepts. Reverts `UnknownOrder`, `Unauthorized`, `InvalidOrderStatus`,
    /// `AcceptDeadlinePassed`, `ProviderNotActive`, `TooManyActiveOrders`.
    pub async fn accept_order(&self, order_id: U256) -> Result<TransactionReceipt> {
        tx::send(KIND, "acceptOrder", self.contract.acceptOrder(order_id)).await
    }

    /// Provider declines a pending order (full refund). Reverts `UnknownOrder`,
    /// `Unauthorized`, `InvalidOrderStatus`.
    pub async fn reject_order(&self, order_id: U256) -> Result<TransactionReceipt> {
        tx::send(KIND, "rejectOrder", self.contract.rejectOrder(order_id)).await
    }

    /// Cancel a pending order: client any time, anyone after the accept deadline.
    /// Reverts `UnknownOrder`, `InvalidOrderStatus`, `AcceptWindowOpen`.
    pub async fn cancel_order(&self, order_id: U256) -> Result<TransactionReceipt> {
        tx::send(KIND, "cancelOrder", self.contract.cancelOrder(order_id)).await
    }

    /// Provider redeems the latest voucher. Reverts `UnknownOrder`, `Unauthorized`,
    /// `InvalidOrderStatus`, `VoucherNotIncreasing`, `VoucherExceedsEscrow`,
    /// `InvalidSignature`, `InvalidSigner`.
    pub async fn redeem_voucher(&self, voucher: &SignedVoucher) -> Result<TransactionReceipt> {
        self.redeem_raw(
            voucher.order_id,
            voucher.cumulative_amount,
            voucher.signature.clone(),
        )
        .await
    }

    /// [`Self::redeem_voucher`] with raw parts (lets tests submit malformed signatures).
    pub async fn redeem_raw(
        &self,
        order_id: U256,
        amount: U256,
        signature: Bytes,
    ) -> Result<TransactionReceipt> {
        let call = self.contract.redeemVoucher(order_id, amount, signature);
        tx::send(KIND, "redeemVoucher", call).await
    }

    /// Client asks to close. Reverts `UnknownOrder`, `Unauthorized`, `InvalidOrderStatus`.
    pub async fn request_close(&self, order_id: U256) -> Result<TransactionReceipt> {
        tx::send(KIND, "requestClose", self.contract.requestClose(order_id)).await
    }

    /// Settle: provider any time; client after `request_close` + grace. Reverts
    /// `UnknownOrder`, `Unauthorized`, `InvalidOrderStatus`, `CloseGraceActive`.
    pub async fn settle(&self, order_id: U256) -> Result<TransactionReceipt> {
        tx::send(KIND, "settle", self.contract.settle(order_id)).await
    }

    /// Provider redeems a final voucher and settles in one transaction.
    pub async fn redeem_and_settle(&self, voucher: &SignedVoucher) -> Result<TransactionReceipt> {
        let call = self.contract.redeemAndSettle(
            voucher.order_id,
            voucher.cumulative_amount,
            voucher.signature.clone(),
        );
        tx::send(KIND, "redeemAndSettle", call).await
    }

    /// Pull everything credited to the caller. Reverts `NothingToWithdraw`, `TransferFailed`.
    pub async fn withdraw(&self) -> Result<TransactionReceipt> {
        tx::send(KIND, "withdraw", self.contract.withdraw()).await
    }
}
