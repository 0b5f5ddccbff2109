//! EIP-712 vouchers and verifier reports, sans IO.
//!
//! A client pays a provider off chain by signing *cumulative* vouchers
//! `Voucher(uint256 orderId,uint256 cumulativeAmount)` under the domain
//! `{name: "FlowShield", version: "1", chainId, verifyingContract: market}`. Each new
//! voucher supersedes the previous one; the provider redeems only the latest. This module
//! hashes, signs and verifies exactly as `BandwidthMarket.sol` does (checked on chain by
//! the integration tests), and [`VoucherLedger`] is the provider-side bookkeeping of the
//! best voucher seen per order. Nothing here touches the network.
//!
//! The domain, the verifier `Report` struct, its digest and the strict recovery are
//! defined once in `flowshield_proto::eip712` (a verifier, a fullnode and this crate all
//! hash reports the same way) and re-exported here; signing stays here, with the keys.

use alloy::primitives::{Address, Bytes, B256, U256};
use alloy::signers::local::PrivateKeySigner;
use alloy::signers::SignerSync;
use alloy::sol_types::{Eip712Domain, SolStruct};

use crate::error::{ChainError, Result};

#[cfg(test)]
use flowshield_proto::eip712::SECP256K1N_HALF;
pub use flowshield_proto::eip712::{
    market_domain, published_report_digest, report_digest, Report, DOMAIN_NAME, DOMAIN_VERSION,
};

alloy::sol! {
    /// EIP-712 `Voucher`: the client owes `cumulativeAmount` wei in total on `orderId`.
    #[derive(Debug, PartialEq, Eq)]
    struct Voucher {
        uint256 orderId;
        uint256 cumulativeAmount;
    }
}

/// The digest the client signs for a voucher (`BandwidthMarket.voucherDigest`).
pub fn voucher_digest(domain: &Eip712Domain, order_id: U256, cumulative_amount: U256) -> B256 {
    Voucher {
        orderId: order_id,
        cumulativeAmount: cumulative_amount,
    }
    .eip712_signing_hash(domain)
}

/// A voucher with the client's 65-byte signature (`r || s || v`, v in {27, 28}).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedVoucher {
    /// Order the voucher pays for.
    pub order_id: U256,
    /// Total owed on the order so far, in wei.
    pub cumulative_amount: U256,
    /// Client signature over [`voucher_digest`].
    pub signature: Bytes,
}

/// Sign `digest` producing the 65-byte `r || s || v` form the contract accepts.
pub fn sign_digest(signer: &PrivateKeySigner, digest: &B256) -> Result<Bytes> {
    let sig = signer.sign_hash_sync(digest)?;
    // k256 already yields low-s; normalise defensively so the contract never rejects it.
    let sig = sig.normalized_s();
    Ok(Bytes::from(sig.as_bytes().to_vec()))
}

/// Client side: sign a cumulative voucher.
pub fn sign_voucher(
    signer: &PrivateKeySigner,
    domain: &Eip712Domain,
    order_id: U256,
    cumulative_amount: U256,
) -> Result<SignedVoucher> {
    let digest = voucher_digest(domain, order_id, cumulative_amount);
    Ok(SignedVoucher {
        order_id,
        cumulative_amount,
        signature: sign_digest(signer, &digest)?,
    })
}

/// Verifier side: sign an on-chain vote for relaying with `submitSignedReport`. A
/// verifier never publishes this signature (see [`sign_published_report`]).
pub fn sign_report(
    signer: &PrivateKeySigner,
    domain: &Eip712Domain,
    report: &Report,
) -> Result<Bytes> {
    sign_digest(signer, &report_digest(domain, report))
}

/// Verifier side: sign a report to publish to fullnodes and gossip (EIP-712
/// `PublishedReport`); the contract never accepts it as a vote.
pub fn sign_published_report(
    signer: &PrivateKeySigner,
    domain: &Eip712Domain,
    report: &Report,
) -> Result<Bytes> {
    sign_digest(signer, &published_report_digest(domain, report))
}

/// Recover the signer of `digest` with the same strictness as the contract (OpenZeppelin
/// ECDSA): exactly 65 bytes, v in {27, 28}, s in the lower half order, r and s non-zero.
pub fn recover_signer(digest: &B256, signature: &[u8]) -> Result<Address> {
    flowshield_proto::eip712::recover_signer(digest, signature)
        .map_err(|e| ChainError::InvalidSignature(e.to_string()))
}

/// Check that `voucher` is signed by `client` under `domain`.
pub fn verify_voucher(
    domain: &Eip712Domain,
    voucher: &SignedVoucher,
    client: Address,
) -> Result<()> {
    let digest = voucher_digest(domain, voucher.order_id, voucher.cumulative_amount);
    let recovered = recover_signer(&digest, &voucher.signature)?;
    if recovered != client {
        return Err(ChainError::InvalidSignature(format!(
            "signed by {recovered}, expected client {client}"
        )));
    }
    Ok(())
}

/// Why a [`VoucherLedger`] refused a voucher.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VoucherError {
    /// The voucher is for another order.
    #[error("voucher for order {got}, ledger is for order {expected}")]
    WrongOrder {
        /// Ledger's order.
        expected: U256,
        /// Voucher's order.
        got: U256,
    },
    /// Not more than the best voucher already held (replay or stale voucher).
    #[error("voucher amount {given} does not exceed the current {current}")]
    NotIncreasing {
        /// Offered cumulative amount.
        given: U256,
        /// Best cumulative amount held.
        current: U256,
    },
    /// More than the order's escrow: the contract would reject it.
    #[error("voucher amount {given} exceeds escrow {escrow}")]
    ExceedsEscrow {
        /// Offered cumulative amount.
        given: U256,
        /// Order escrow.
        escrow: U256,
    },
    /// Malformed, malleable, or foreign signature.
    #[error("bad voucher signature: {0}")]
    BadSignature(String),
}

/// Provider-side state of one order's vouchers: keeps the best valid voucher and knows
/// what is still worth redeeming. Mirrors the contract's checks so a voucher accepted
/// here will not revert on chain (unless escrow or state changed there).
#[derive(Debug, Clone)]
pub struct VoucherLedger {
    domain: Eip712Domain,
    order_id: U256,
    client: Address,
    escrow: U256,
    redeemed: U256,
    best: Option<SignedVoucher>,
}

impl VoucherLedger {
    /// A ledger for `order_id` paid by `client` with `escrow` wei escrowed.
    pub fn new(domain: Eip712Domain, order_id: U256, client: Address, escrow: U256) -> Self {
        VoucherLedger {
            domain,
            order_id,
            client,
            escrow,
            redeemed: U256::ZERO,
            best: None,
        }
    }

    /// Offer a voucher from the client; returns by how much it raised the amount owed.
    pub fn offer(&mut self, voucher: SignedVoucher) -> Result<U256, VoucherError> {
        if voucher.order_id != self.order_id {
            return Err(VoucherError::WrongOrder {
                expected: self.order_id,
                got: voucher.order_id,
            });
        }
        let current = self.owed();
        if voucher.cumulative_amount <= current {
            return Err(VoucherError::NotIncreasing {
                given: voucher.cumulative_amount,
                current,
            });
        }
        if voucher.cumulative_amount > self.escrow {
            return Err(VoucherError::ExceedsEscrow {
                given: voucher.cumulative_amount,
                escrow: self.escrow,
            });
        }
        verify_voucher(&self.domain, &voucher, self.client)
            .map_err(|e| VoucherError::BadSignature(e.to_string()))?;
        let increase = voucher.cumulative_amount - current;
        self.best = Some(voucher);
        Ok(increase)
    }

    /// Highest cumulative amount the client has signed (or already redeemed).
    pub fn owed(&self) -> U256 {
        self.best
            .as_ref()
            .map_or(self.redeemed, |v| v.cumulative_amount.max(self.redeemed))
    }

    /// The voucher to redeem next, if it pays more than what was already redeemed.
    pub fn to_redeem(&self) -> Option<&SignedVoucher> {
        self.best
            .as_ref()
            .filter(|v| v.cumulative_amount > self.redeemed)
    }

    /// Record that the chain redeemed up to `cumulative_amount`.
    pub fn mark_redeemed(&mut self, cumulative_amount: U256) {
        self.redeemed = self.redeemed.max(cumulative_amount);
    }

    /// Record an escrow top-up seen on chain.
    pub fn set_escrow(&mut self, escrow: U256) {
        self.escrow = escrow;
    }
}

#[cfg(test)]
#[path = "voucher_tests.rs"]
mod tests;
