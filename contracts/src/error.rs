//! The crate's error type.

use alloy::primitives::{Bytes, TxHash};

use crate::bindings::{
    BandwidthMarket::BandwidthMarketErrors, DecaRegistry::DecaRegistryErrors,
    FlowShieldTimelock::FlowShieldTimelockErrors,
};

/// A contract revert, decoded against the ABI of the contract that was called.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revert {
    /// A custom error of `BandwidthMarket` (including inherited OpenZeppelin errors).
    Market(BandwidthMarketErrors),
    /// A custom error of `DecaRegistry` (including inherited OpenZeppelin errors).
    Deca(DecaRegistryErrors),
    /// A custom error of the governance timelock (OpenZeppelin `TimelockController`).
    Timelock(FlowShieldTimelockErrors),
    /// Revert data that matches no error of the called contract (e.g. a panic or a
    /// plain `revert()`), kept raw.
    Unknown(Bytes),
}

/// Which contract a call went to; selects the error ABI used to decode reverts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ContractKind {
    Market,
    Deca,
    Timelock,
}

/// Everything that can go wrong talking to the FlowShield contracts or the local node.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// The contract rejected the call; the decoded custom error says why.
    #[error("{contract} call `{function}` reverted: {revert:?}")]
    Reverted {
        /// Contract name.
        contract: &'static str,
        /// Solidity function name.
        function: &'static str,
        /// Decoded revert reason (boxed: custom errors can be large).
        revert: Box<Revert>,
    },
    /// The transaction was mined but failed (status 0) without revert data reaching us.
    #[error("transaction {0} was mined with status 0")]
    TxFailed(TxHash),
    /// Any other RPC / ABI / transport failure during a contract call.
    #[error("{contract} call `{function}` failed: {source}")]
    Call {
        /// Contract name.
        contract: &'static str,
        /// Solidity function name.
        function: &'static str,
        /// Underlying alloy error.
        #[source]
        source: Box<alloy::contract::Error>,
    },
    /// Waiting for a transaction receipt failed.
    #[error("waiting for receipt failed: {0}")]
    Pending(#[from] Box<alloy::providers::PendingTransactionError>),
    /// A raw JSON-RPC request (e.g. `evm_increaseTime`) failed.
    #[error("rpc `{method}` failed: {source}")]
    Rpc {
        /// JSON-RPC method.
        method: &'static str,
        /// Underlying transport error.
        #[source]
        source: Box<alloy::transports::TransportError>,
    },
    /// An RPC URL could not be parsed.
    #[error("invalid rpc url `{url}`: {reason}")]
    InvalidUrl {
        /// The offending URL.
        url: String,
        /// Parser message.
        reason: String,
    },
    /// A private key was not a valid secp256k1 scalar.
    #[error("invalid private key: {0}")]
    InvalidKey(String),
    /// Signing failed.
    #[error("signing failed: {0}")]
    Signer(#[from] alloy::signers::Error),
    /// A signature was malformed, malleable, or not from the expected signer.
    #[error("invalid signature: {0}")]
    InvalidSignature(String),
    /// The chain returned a value this crate does not understand (e.g. an unknown enum).
    #[error("unexpected value from chain: {0}")]
    UnexpectedValue(String),
    /// The local node could not be started.
    #[error("cannot start local chain (`{command}` in {dir}): {source}")]
    NodeSpawn {
        /// Command line that failed.
        command: String,
        /// Working directory.
        dir: String,
        /// OS error.
        #[source]
        source: std::io::Error,
    },
    /// The local node exited or never answered `eth_chainId` before the deadline.
    #[error("local chain at {url} not ready: {reason}; node output tail:\n{log_tail}")]
    NodeNotReady {
        /// RPC URL polled.
        url: String,
        /// What happened.
        reason: String,
        /// Last lines of the node's output (never contains keys: stdout is discarded).
        log_tail: String,
    },
}

impl ChainError {
    /// The decoded revert, if this error is a contract revert.
    pub fn revert(&self) -> Option<&Revert> {
        match self {
            ChainError::Reverted { revert, .. } => Some(revert.as_ref()),
            _ => None,
        }
    }

    /// The decoded `BandwidthMarket` custom error, if this is one.
    pub fn market_error(&self) -> Option<&BandwidthMarketErrors> {
        match self.revert() {
            Some(Revert::Market(e)) => Some(e),
            _ => None,
        }
    }

    /// The decoded timelock custom error, if this is one.
    pub fn timelock_error(&self) -> Option<&FlowShieldTimelockErrors> {
        match self.revert() {
            Some(Revert::Timelock(e)) => Some(e),
            _ => None,
        }
    }

    /// The decoded `DecaRegistry` custom error, if this is one.
    pub fn deca_error(&self) -> Option<&DecaRegistryErrors> {
        match self.revert() {
            Some(Revert::Deca(e)) => Some(e),
            _ => None,
        }
    }

    pub(crate) fn from_call(
        kind: ContractKind,
        function: &'static str,
        source: alloy::contract::Error,
    ) -> Self {
        let contract = match kind {
            ContractKind::Market => "BandwidthMarket",
            ContractKind::Deca => "DecaRegistry",
            ContractKind::Timelock => "FlowShieldTimelock",
        };
        let Some(data) = source.as_revert_data() else {
            return ChainError::Call {
                contract,
                function,
                source: Box::new(source),
            };
        };
        let revert = match kind {
            ContractKind::Market => source
                .as_decoded_interface_error::<BandwidthMarketErrors>()
                .map(Revert::Market),
            ContractKind::Deca => source
                .as_decoded_interface_error::<DecaRegistryErrors>()
                .map(Revert::Deca),
            ContractKind::Timelock => source
                .as_decoded_interface_error::<FlowShieldTimelockErrors>()
                .map(Revert::Timelock),
        }
        .unwrap_or(Revert::Unknown(data));
        ChainError::Reverted {
            contract,
            function,
            revert: Box::new(revert),
        }
    }
}

/// Result alias for this crate.
pub type Result<T, E = ChainError> = std::result::Result<T, E>;
