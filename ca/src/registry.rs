//! The on-chain operator registry, behind a small trait so the core stays sans-IO.
//!
//! [`ChainRegistry`] talks to the `DecaRegistry` contract with alloy; the contract is the source
//! of truth for which operators exist, their CA certificate hashes, anchored log roots and
//! revocations.

use alloy::network::EthereumWallet;
use alloy::primitives::{Address, B256};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::signers::local::PrivateKeySigner;
use alloy::sol;
use async_trait::async_trait;

sol! {
    #[sol(rpc)]
    interface IDecaRegistry {
        function registerOperator(address operator, bytes32 caCertHash, string calldata url) external;
        function removeOperator(address operator) external;
        function isOperator(address operator) external view returns (bool);
        function operatorCaCertHash(address operator) external view returns (bytes32);
        function anchorRoot(uint64 treeSize, bytes32 root) external;
        function latestRoot(address operator) external view returns (uint64 treeSize, bytes32 root, uint64 timestamp);
        function rootAt(address operator, uint64 treeSize) external view returns (bytes32);
        function recordRevocation(bytes32 serialHash) external;
        function isRevoked(address operator, bytes32 serialHash) external view returns (bool);
    }
}

/// Chain access failed; carries the call that failed.
#[derive(Debug, thiserror::Error)]
#[error("registry call {call} failed: {detail}")]
pub struct RegistryError {
    /// Contract function name.
    pub call: &'static str,
    /// Transport or revert detail.
    pub detail: String,
}

fn err(call: &'static str) -> impl FnOnce(alloy::contract::Error) -> RegistryError {
    move |e| RegistryError {
        call,
        detail: e.to_string(),
    }
}

/// The latest root an operator anchored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AnchoredRoot {
    /// Log size the root covers.
    pub tree_size: u64,
    /// RFC 6962 root.
    pub root: B256,
    /// Block timestamp of the anchoring.
    pub timestamp: u64,
}

/// What DeCA needs from the chain. Writes act as the operator the implementation signs for.
#[async_trait]
pub trait Registry: Send + Sync {
    /// Whether `operator` is registered.
    async fn is_operator(&self, operator: Address) -> Result<bool, RegistryError>;
    /// The registered CA certificate hash (zero if none).
    async fn operator_ca_cert_hash(&self, operator: Address) -> Result<B256, RegistryError>;
    /// Anchors `root` for `tree_size` as this operator.
    async fn anchor_root(&self, tree_size: u64, root: B256) -> Result<(), RegistryError>;
    /// The latest anchored root of `operator`.
    async fn latest_root(&self, operator: Address) -> Result<AnchoredRoot, RegistryError>;
    /// The root `operator` anchored for exactly `tree_size` (zero if none).
    async fn root_at(&self, operator: Address, tree_size: u64) -> Result<B256, RegistryError>;
    /// Records a revocation as this operator.
    async fn record_revocation(&self, serial_hash: B256) -> Result<(), RegistryError>;
    /// Whether `operator` recorded `serial_hash` as revoked.
    async fn is_revoked(&self, operator: Address, serial_hash: B256)
        -> Result<bool, RegistryError>;
}

/// [`Registry`] backed by the `DecaRegistry` contract over JSON-RPC.
#[derive(Clone)]
pub struct ChainRegistry {
    contract: IDecaRegistry::IDecaRegistryInstance<DynProvider>,
}

impl std::fmt::Debug for ChainRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChainRegistry")
            .field("address", self.contract.address())
            .finish()
    }
}

impl ChainRegistry {
    /// Connects to `rpc_url`, signing transactions with `signer` (the operator key; for a
    /// read-only verifier any key works).
    pub fn connect(
        rpc_url: &str,
        contract: Address,
        signer: PrivateKeySigner,
    ) -> Result<Self, RegistryError> {
        let url: reqwest::Url = rpc_url.parse().map_err(|e| RegistryError {
            call: "connect",
            detail: format!("rpc url {rpc_url}: {e}"),
        })?;
        let provider = ProviderBuilder::new()
            .wallet(EthereumWallet::from(signer))
            .connect_http(url)
            .erased();
        Ok(ChainRegistry {
            contract: IDecaRegistry::new(contract, provider),
        })
    }

    /// Owner-only: registers an operator (used by deploy scripts and tests).
    pub async fn register_operator(
        &self,
        operator: Address,
        ca_cert_hash: B256,
        url: &str,
    ) -> Result<(), RegistryError> {
        let call = self
            .contract
            .registerOperator(operator, ca_cert_hash, url.to_string());
        send(call.send().await, "registerOperator").await
    }

    /// Owner-only: removes an operator.
    pub async fn remove_operator(&self, operator: Address) -> Result<(), RegistryError> {
        send(
            self.contract.removeOperator(operator).send().await,
            "removeOperator",
        )
        .await
    }
}

async fn send<N: alloy::network::Network>(
    pending: Result<alloy::providers::PendingTransactionBuilder<N>, alloy::contract::Error>,
    call: &'static str,
) -> Result<(), RegistryError> {
    let receipt = pending
        .map_err(err(call))?
        .get_receipt()
        .await
        .map_err(|e| RegistryError {
            call,
            detail: e.to_string(),
        })?;
    if !alloy::network::ReceiptResponse::status(&receipt) {
        return Err(RegistryError {
            call,
            detail: "transaction reverted".into(),
        });
    }
    Ok(())
}

#[async_trait]
impl Registry for ChainRegistry {
    async fn is_operator(&self, operator: Address) -> Result<bool, RegistryError> {
        self.contract
            .isOperator(operator)
            .call()
            .await
            .map_err(err("isOperator"))
    }

    async fn operator_ca_cert_hash(&self, operator: Address) -> Result<B256, RegistryError> {
        self.contract
            .operatorCaCertHash(operator)
            .call()
            .await
            .map_err(err("operatorCaCertHash"))
    }

    async fn anchor_root(&self, tree_size: u64, root: B256) -> Result<(), RegistryError> {
        send(
            self.contract.anchorRoot(tree_size, root).send().await,
            "anchorRoot",
        )
        .await
    }

    async fn latest_root(&self, operator: Address) -> Result<AnchoredRoot, RegistryError> {
        let r = self
            .contract
            .latestRoot(operator)
            .call()
            .await
            .map_err(err("latestRoot"))?;
        Ok(AnchoredRoot {
            tree_size: r.treeSize,
            root: r.root,
            timestamp: r.timestamp,
        })
    }

    async fn root_at(&self, operator: Address, tree_size: u64) -> Result<B256, RegistryError> {
        self.contract
            .rootAt(operator, tree_size)
            .call()
            .await
            .map_err(err("rootAt"))
    }

    async fn record_revocation(&self, serial_hash: B256) -> Result<(), RegistryError> {
        send(
            self.contract.recordRevocation(serial_hash).send().await,
            "recordRevocation",
        )
        .await
    }

    async fn is_revoked(
        &self,
        operator: Address,
        serial_hash: B256,
    ) -> Result<bool, RegistryError> {
        self.contract
            .isRevoked(operator, serial_hash)
            .call()
            .await
            .map_err(err("isRevoked"))
    }
}
