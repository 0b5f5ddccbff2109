//! Sending contract calls and turning failures into [`ChainError`].

use alloy::contract::{CallBuilder, CallDecoder};
use alloy::network::Ethereum;
use alloy::providers::Provider;
use alloy::rpc::types::TransactionReceipt;

use crate::error::{ChainError, ContractKind, Result};

/// Send a state-changing call, wait for its receipt, and require success.
///
/// Reverts surface at gas estimation (before anything is broadcast) and are
/// decoded into [`crate::Revert`].
pub(crate) async fn send<P, D>(
    kind: ContractKind,
    function: &'static str,
    call: CallBuilder<P, D, Ethereum>,
) -> Result<TransactionReceipt>
where
    P: Provider<Ethereum>,
    D: CallDecoder,
{
    let pending = call
        .send()
        .await
        .map_err(|e| ChainError::from_call(kind, function, e))?;
    let receipt = pending.get_receipt().await.map_err(Box::new)?;
    if !receipt.status() {
        return Err(ChainError::TxFailed(receipt.transaction_hash));
    }
    tracing::debug!(function, tx = %receipt.transaction_hash, gas = receipt.gas_used, "tx mined");
    Ok(receipt)
}

/// Run a read-only call.
pub(crate) async fn call<P, D>(
    kind: ContractKind,
    function: &'static str,
    call: CallBuilder<P, D, Ethereum>,
) -> Result<D::CallOutput>
where
    P: Provider<Ethereum>,
    D: CallDecoder,
{
    call.call()
        .await
        .map_err(|e| ChainError::from_call(kind, function, e))
}
