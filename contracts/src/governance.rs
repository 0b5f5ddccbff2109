//! Governance: the market's owner is OpenZeppelin's `TimelockController`
//! (`FlowShieldTimelock`). Parameter changes and pauses are scheduled in public
//! (`CallScheduled` events) and executable only after the timelock's minimum delay, so no
//! single key changes slashing rules or touches funds at once.
//!
//! [`deploy_market`] deploys a timelock (admin = nobody, so roles cannot be re-granted
//! around the delay) and a market it owns.

use alloy::primitives::{Address, Bytes, B256, U256};
use alloy::providers::DynProvider;
use alloy::rpc::types::TransactionReceipt;
use alloy::sol_types::SolCall;

use crate::bindings::BandwidthMarket;
use crate::bindings::FlowShieldTimelock::{self, FlowShieldTimelockInstance};
use crate::error::{ChainError, ContractKind, Result};
use crate::market::{MarketClient, MarketParams};
use crate::tx;

const KIND: ContractKind = ContractKind::Timelock;

/// A deployed `FlowShieldTimelock` seen through one signing provider.
#[derive(Debug, Clone)]
pub struct Timelock {
    contract: FlowShieldTimelockInstance<DynProvider>,
}

/// One call the timelock will make: target, calldata and the salt that makes it unique.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation {
    /// Contract called by the timelock.
    pub target: Address,
    /// ABI-encoded call.
    pub data: Bytes,
    /// Distinguishes otherwise identical operations.
    pub salt: B256,
}

impl Operation {
    /// `market.setParams(params)`.
    pub fn set_params(market: Address, params: &MarketParams, salt: B256) -> Self {
        let call = BandwidthMarket::setParamsCall { p: params.into() };
        Operation {
            target: market,
            data: call.abi_encode().into(),
            salt,
        }
    }

    /// `market.pause()` (`pause == true`) or `market.unpause()`.
    pub fn pause(market: Address, pause: bool, salt: B256) -> Self {
        let data = if pause {
            BandwidthMarket::pauseCall {}.abi_encode()
        } else {
            BandwidthMarket::unpauseCall {}.abi_encode()
        };
        Operation {
            target: market,
            data: data.into(),
            salt,
        }
    }
}

impl Timelock {
    /// Deploy a timelock with `min_delay` seconds; `proposers` may schedule (and cancel),
    /// `executors` may execute ready operations (`Address::ZERO` in it: anyone). No admin.
    pub async fn deploy(
        provider: DynProvider,
        min_delay: u64,
        proposers: Vec<Address>,
        executors: Vec<Address>,
    ) -> Result<Self> {
        let contract = FlowShieldTimelock::deploy(
            provider,
            U256::from(min_delay),
            proposers,
            executors,
            Address::ZERO,
        )
        .await
        .map_err(|e| ChainError::from_call(KIND, "constructor", e))?;
        tracing::info!(address = %contract.address(), min_delay, "FlowShieldTimelock deployed");
        Ok(Timelock { contract })
    }

    /// Attach to an existing timelock.
    pub fn at(address: Address, provider: DynProvider) -> Self {
        Timelock {
            contract: FlowShieldTimelockInstance::new(address, provider),
        }
    }

    /// Contract address.
    pub fn address(&self) -> Address {
        *self.contract.address()
    }

    /// The minimum delay in seconds.
    pub async fn min_delay(&self) -> Result<u64> {
        let d = tx::call(KIND, "getMinDelay", self.contract.getMinDelay()).await?;
        Ok(d.saturating_to())
    }

    /// The operation id (`hashOperation`, no predecessor).
    pub async fn operation_id(&self, op: &Operation) -> Result<B256> {
        let call = self.contract.hashOperation(
            op.target,
            U256::ZERO,
            op.data.clone(),
            B256::ZERO,
            op.salt,
        );
        tx::call(KIND, "hashOperation", call).await
    }

    /// Whether `op` is scheduled and its delay has passed.
    pub async fn is_ready(&self, op: &Operation) -> Result<bool> {
        let id = self.operation_id(op).await?;
        tx::call(KIND, "isOperationReady", self.contract.isOperationReady(id)).await
    }

    /// Proposer: schedule `op` to be executable after `delay` (>= the minimum delay).
    /// Reverts `TimelockInsufficientDelay`, `TimelockUnexpectedOperationState`,
    /// `AccessControlUnauthorizedAccount`.
    pub async fn schedule(&self, op: &Operation, delay: u64) -> Result<TransactionReceipt> {
        let call = self.contract.schedule(
            op.target,
            U256::ZERO,
            op.data.clone(),
            B256::ZERO,
            op.salt,
            U256::from(delay),
        );
        tx::send(KIND, "schedule", call).await
    }

    /// Executor: run a ready `op`. Reverts `TimelockUnexpectedOperationState` before the
    /// delay, or the target's own error.
    pub async fn execute(&self, op: &Operation) -> Result<TransactionReceipt> {
        let call =
            self.contract
                .execute(op.target, U256::ZERO, op.data.clone(), B256::ZERO, op.salt);
        tx::send(KIND, "execute", call).await
    }
}

/// Deploy a timelock (`min_delay`, `proposer` proposes and executes) and a market owned
/// by it.
pub async fn deploy_market(
    provider: DynProvider,
    params: &MarketParams,
    min_delay: u64,
    proposer: Address,
) -> Result<(MarketClient, Timelock)> {
    let timelock =
        Timelock::deploy(provider.clone(), min_delay, vec![proposer], vec![proposer]).await?;
    let market = MarketClient::deploy(provider, params, timelock.address()).await?;
    Ok((market, timelock))
}
