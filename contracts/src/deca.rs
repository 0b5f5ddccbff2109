//! Typed client for `DecaRegistry`: DeCA operators, anchored log roots, revocations.

use alloy::primitives::{Address, B256};
use alloy::providers::DynProvider;
use alloy::rpc::types::TransactionReceipt;

use crate::bindings::DecaRegistry::{self, DecaRegistryInstance};
use crate::error::{ChainError, ContractKind, Result};
use crate::tx;

const KIND: ContractKind = ContractKind::Deca;

/// The latest root an operator anchored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnchoredRoot {
    /// Number of leaves in the log at this root (0 if never anchored).
    pub tree_size: u64,
    /// Merkle root (zero if never anchored).
    pub root: B256,
    /// Block timestamp of the anchoring transaction.
    pub timestamp: u64,
}

/// A `DecaRegistry` deployment seen through one signing provider.
#[derive(Debug, Clone)]
pub struct DecaRegistryClient {
    contract: DecaRegistryInstance<DynProvider>,
}

impl DecaRegistryClient {
    /// Deploy a new registry; the provider's account becomes its owner (governance).
    pub async fn deploy(provider: DynProvider) -> Result<Self> {
        let contract = DecaRegistry::deploy(provider)
            .await
            .map_err(|e| ChainError::from_call(KIND, "constructor", e))?;
        tracing::info!(address = %contract.address(), "DecaRegistry deployed");
        Ok(DecaRegistryClient { contract })
    }

    /// Attach to an existing deployment.
    pub fn at(address: Address, provider: DynProvider) -> Self {
        DecaRegistryClient {
            contract: DecaRegistryInstance::new(address, provider),
        }
    }

    /// The same deployment, acting through another provider (another account).
    pub fn with_provider(&self, provider: DynProvider) -> Self {
        Self::at(*self.contract.address(), provider)
    }

    /// Contract address.
    pub fn address(&self) -> Address {
        *self.contract.address()
    }

    /// The raw alloy instance, for anything not wrapped here (e.g. event filters).
    pub fn instance(&self) -> &DecaRegistryInstance<DynProvider> {
        &self.contract
    }

    /// Owner (governance) account.
    pub async fn owner(&self) -> Result<Address> {
        tx::call(KIND, "owner", self.contract.owner()).await
    }

    /// Owner only: admit a CA operator. Reverts `AlreadyOperator`, `ZeroAddress`,
    /// `OwnableUnauthorizedAccount`.
    pub async fn register_operator(
        &self,
        operator: Address,
        ca_cert_hash: B256,
        url: &str,
    ) -> Result<TransactionReceipt> {
        let call = self
            .contract
            .registerOperator(operator, ca_cert_hash, url.to_string());
        tx::send(KIND, "registerOperator", call).await
    }

    /// Owner only: remove an operator. Reverts `NotOperator`, `OwnableUnauthorizedAccount`.
    pub async fn remove_operator(&self, operator: Address) -> Result<TransactionReceipt> {
        tx::send(
            KIND,
            "removeOperator",
            self.contract.removeOperator(operator),
        )
        .await
    }

    /// Whether `operator` is currently admitted.
    pub async fn is_operator(&self, operator: Address) -> Result<bool> {
        tx::call(KIND, "isOperator", self.contract.isOperator(operator)).await
    }

    /// Hash of the operator's CA certificate (zero if not an operator).
    pub async fn operator_ca_cert_hash(&self, operator: Address) -> Result<B256> {
        let call = self.contract.operatorCaCertHash(operator);
        tx::call(KIND, "operatorCaCertHash", call).await
    }

    /// URL the operator registered (empty if not an operator).
    pub async fn operator_url(&self, operator: Address) -> Result<String> {
        tx::call(KIND, "operatorUrl", self.contract.operatorUrl(operator)).await
    }

    /// Operator only: anchor a log root; `tree_size` must strictly grow.
    /// Reverts `NotOperator`, `TreeSizeNotIncreasing`, `ZeroRoot`.
    pub async fn anchor_root(&self, tree_size: u64, root: B256) -> Result<TransactionReceipt> {
        tx::send(
            KIND,
            "anchorRoot",
            self.contract.anchorRoot(tree_size, root),
        )
        .await
    }

    /// The operator's latest anchored root (all zero if none).
    pub async fn latest_root(&self, operator: Address) -> Result<AnchoredRoot> {
        let r = tx::call(KIND, "latestRoot", self.contract.latestRoot(operator)).await?;
        Ok(AnchoredRoot {
            tree_size: r.treeSize,
            root: r.root,
            timestamp: r.timestamp,
        })
    }

    /// Root anchored at exactly `tree_size` (zero if never anchored).
    pub async fn root_at(&self, operator: Address, tree_size: u64) -> Result<B256> {
        tx::call(KIND, "rootAt", self.contract.rootAt(operator, tree_size)).await
    }

    /// Operator only: record a revocation. Reverts `NotOperator`, `AlreadyRevoked`.
    pub async fn record_revocation(&self, serial_hash: B256) -> Result<TransactionReceipt> {
        let call = self.contract.recordRevocation(serial_hash);
        tx::send(KIND, "recordRevocation", call).await
    }

    /// Whether `operator` revoked the certificate with `serial_hash`.
    pub async fn is_revoked(&self, operator: Address, serial_hash: B256) -> Result<bool> {
        let call = self.contract.isRevoked(operator, serial_hash);
        tx::call(KIND, "isRevoked", call).await
    }
}
