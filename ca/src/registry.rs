//! The on-chain operator registry, behind a small trait so the core stays sans-IO.
//!
//! [`ChainRegistry`] is the real implementation: it drives the `DecaRegistry` contract through
//! `flowshield-chain`'s typed client (one set of bindings for the whole workspace). The
//! contract is the source of truth for which operators exist, their CA certificate hashes,
//! anchored log roots and revocations.

use alloy::primitives::{Address, B256};
use alloy::signers::local::PrivateKeySigner;
use async_trait::async_trait;
use flowshield_chain::{ChainError, DecaRegistryClient};

pub use flowshield_chain::AnchoredRoot;

/// Chain access failed; carries the call that failed.
#[derive(Debug, thiserror::Error)]
#[error("registry call {call} failed: {detail}")]
pub struct RegistryError {
    /// Contract function name.
    pub call: &'static str,
    /// Transport error or decoded revert.
    pub detail: String,
}

fn err(call: &'static str) -> impl FnOnce(ChainError) -> RegistryError {
    move |e| RegistryError {
        call,
        detail: e.to_string(),
    }
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
#[derive(Clone, Debug)]
pub struct ChainRegistry {
    client: DecaRegistryClient,
}

impl ChainRegistry {
    /// Connects to `rpc_url`, signing transactions with `signer` (the operator key; for a
    /// read-only verifier any key works).
    pub fn connect(
        rpc_url: &str,
        contract: Address,
        signer: PrivateKeySigner,
    ) -> Result<Self, RegistryError> {
        let provider = flowshield_chain::rpc::connect(rpc_url, signer).map_err(err("connect"))?;
        Ok(ChainRegistry {
            client: DecaRegistryClient::at(contract, provider),
        })
    }

    /// Wraps an existing client (e.g. one a test deployed).
    pub fn from_client(client: DecaRegistryClient) -> Self {
        ChainRegistry { client }
    }

    /// The typed contract client, for owner-only calls such as `register_operator`.
    pub fn client(&self) -> &DecaRegistryClient {
        &self.client
    }
}

#[async_trait]
impl Registry for ChainRegistry {
    async fn is_operator(&self, operator: Address) -> Result<bool, RegistryError> {
        self.client
            .is_operator(operator)
            .await
            .map_err(err("isOperator"))
    }

    async fn operator_ca_cert_hash(&self, operator: Address) -> Result<B256, RegistryError> {
        self.client
            .operator_ca_cert_hash(operator)
            .await
            .map_err(err("operatorCaCertHash"))
    }

    async fn anchor_root(&self, tree_size: u64, root: B256) -> Result<(), RegistryError> {
        self.client
            .anchor_root(tree_size, root)
            .await
            .map(drop)
            .map_err(err("anchorRoot"))
    }

    async fn latest_root(&self, operator: Address) -> Result<AnchoredRoot, RegistryError> {
        self.client
            .latest_root(operator)
            .await
            .map_err(err("latestRoot"))
    }

    async fn root_at(&self, operator: Address, tree_size: u64) -> Result<B256, RegistryError> {
        self.client
            .root_at(operator, tree_size)
            .await
            .map_err(err("rootAt"))
    }

    async fn record_revocation(&self, serial_hash: B256) -> Result<(), RegistryError> {
        self.client
            .record_revocation(serial_hash)
            .await
            .map(drop)
            .map_err(err("recordRevocation"))
    }

    async fn is_revoked(
        &self,
        operator: Address,
        serial_hash: B256,
    ) -> Result<bool, RegistryError> {
        self.client
            .is_revoked(operator, serial_hash)
            .await
            .map_err(err("isRevoked"))
    }
}
