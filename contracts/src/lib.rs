//! `flowshield-chain`: the FlowShield smart contracts and the Rust code that talks to them.
//!
//! What it is for:
//! - `BandwidthMarket` (provider stakes, escrowed orders, EIP-712 cumulative vouchers,
//!   slashing by a quorum of staked verifiers, owned by an OpenZeppelin timelock) and
//!   `DecaRegistry` (DeCA operators, anchored Merkle log
//!   roots, revocations): Solidity sources in `contracts/solidity/`, compiled by solc-js
//!   into the committed `contracts/build/*.json`, bound here with alloy's `sol!`.
//! - Typed async clients ([`MarketClient`], [`DecaRegistryClient`]) with decoded revert
//!   reasons ([`ChainError::Reverted`]).
//! - Pure, node-free voucher and report hashing/signing/verification ([`voucher`]).
//! - [`deployment`]: deploying to a real chain, and the deployment manifest the
//!   binaries read (`--deployment FILE`), checked against the chain it names.
//! - [`LocalChain`]: a throwaway Hardhat (EDR) node for tests and demos.
//!
//! What it is not for: it holds no market logic beyond the contracts (matching, pricing,
//! metering live in the market sidecar), does not manage real keys (callers pass signers),
//! and [`LocalChain`] is never a production node.

#![warn(missing_docs)]

pub mod bindings;
pub mod deca;
pub mod deployment;
pub mod error;
pub mod governance;
pub mod local_chain;
pub mod market;
pub mod quorum;
pub mod rpc;
mod tx;
pub mod voucher;

pub use deca::{AnchoredRoot, DecaRegistryClient};
pub use deployment::{DeployPlan, Deployment, DeploymentError};
pub use error::{ChainError, Result, Revert};
pub use governance::{Operation, Timelock};
pub use local_chain::{LocalChain, LocalChainOptions, DEV_BALANCE_WEI, LOCAL_CHAIN_ID};
pub use market::{
    default_quality, MarketClient, MarketParams, OrderRecord, OrderStatus, ProviderRecord,
    ProviderTerms, QualityPromise,
};
pub use quorum::{Tally, VerifierRecord};

/// Re-export of alloy so callers use the exact same types.
pub use alloy;
