//! The market contract's EIP-712 domain, the verifier `Report` struct and
//! signature recovery as strict as the contract's.
//!
//! `BandwidthMarket.sol` signs under `{name: "FlowShield", version: "1",
//! chainId, verifyingContract: market}`. A verifier's verdict on a provider
//! is the struct `Report(address provider,uint64 period,bool passed,bytes32
//! metricsHash)`. Everything that hashes or checks a report (the verifier
//! signing it, a fullnode receiving it, `flowshield-chain` submitting it)
//! uses these definitions, so the three cannot drift apart.
//!
//! Two digests over the same fields, never interchangeable:
//! - [`report_digest`] (type `Report`) is an on-chain vote: the contract's
//!   `submitSignedReport` accepts it as the signer's one vote for the period.
//! - [`published_report_digest`] (type `PublishedReport`) is what a verifier
//!   signs for fullnodes and gossip during a period. The contract never
//!   accepts it, so nobody can relay a published report on chain and spend
//!   the verifier's vote (a provider relaying an early pass would make the
//!   verifier's later failure a `DuplicateReport`).

use alloy_primitives::{keccak256, Address, Signature, B256, U256};
use alloy_sol_types::{eip712_domain, Eip712Domain, SolStruct};

/// EIP-712 domain name used by `BandwidthMarket`.
pub const DOMAIN_NAME: &str = "FlowShield";
/// EIP-712 domain version used by `BandwidthMarket`.
pub const DOMAIN_VERSION: &str = "1";

/// secp256k1 group order / 2: signatures with a larger `s` are malleable and rejected.
pub const SECP256K1N_HALF: U256 = U256::from_limbs([
    0xdfe92f46681b20a0,
    0x5d576e7357a4501d,
    0xffffffffffffffff,
    0x7fffffffffffffff,
]);

alloy_sol_types::sol! {
    /// EIP-712 `Report`: a verifier's verdict on a provider for one report period.
    #[derive(Debug, PartialEq, Eq)]
    struct Report {
        address provider;
        uint64 period;
        bool passed;
        bytes32 metricsHash;
    }
}

/// The EIP-712 type of a report published off chain (fullnodes, gossip): the
/// fields of [`Report`] under another type name, so its digest is never a
/// valid on-chain vote.
pub const PUBLISHED_REPORT_TYPE: &str =
    "PublishedReport(address provider,uint64 period,bool passed,bytes32 metricsHash)";

/// The EIP-712 domain of the market deployed at `market` on chain `chain_id`.
pub fn market_domain(chain_id: u64, market: Address) -> Eip712Domain {
    eip712_domain! {
        name: DOMAIN_NAME,
        version: DOMAIN_VERSION,
        chain_id: chain_id,
        verifying_contract: market,
    }
}

/// The digest a verifier signs for a report (`BandwidthMarket.reportDigest`).
pub fn report_digest(domain: &Eip712Domain, report: &Report) -> B256 {
    report.eip712_signing_hash(domain)
}

/// The digest a verifier signs for a report it publishes to fullnodes: the
/// fields of `report` as a `PublishedReport` ([`PUBLISHED_REPORT_TYPE`]) under
/// the market's domain. The contract does not accept it as a vote.
pub fn published_report_digest(domain: &Eip712Domain, report: &Report) -> B256 {
    let mut encoded = Vec::with_capacity(5 * 32);
    encoded.extend_from_slice(keccak256(PUBLISHED_REPORT_TYPE).as_slice());
    encoded.extend_from_slice(&report.eip712_encode_data());
    let mut message = Vec::with_capacity(66);
    message.extend_from_slice(&[0x19, 0x01]);
    message.extend_from_slice(domain.separator().as_slice());
    message.extend_from_slice(keccak256(&encoded).as_slice());
    keccak256(&message)
}

/// Why a signature was refused by [`recover_signer`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// Not the 65-byte `r || s || v` form.
    #[error("expected 65 bytes, got {0}")]
    Length(usize),
    /// `v` outside {27, 28}.
    #[error("v must be 27 or 28, got {0}")]
    RecoveryId(u8),
    /// `r` or `s` is zero.
    #[error("zero r or s")]
    Zero,
    /// `s` in the upper half of the group order (the malleable twin).
    #[error("malleable signature (high s)")]
    HighS,
    /// No public key recovers from it.
    #[error("{0}")]
    Unrecoverable(String),
}

/// Recover the signer of `digest` with the same strictness as the contract (OpenZeppelin
/// ECDSA): exactly 65 bytes, v in {27, 28}, s in the lower half order, r and s non-zero.
pub fn recover_signer(digest: &B256, signature: &[u8]) -> Result<Address, SignatureError> {
    let bytes: &[u8; 65] = signature
        .try_into()
        .map_err(|_| SignatureError::Length(signature.len()))?;
    let v = bytes[64];
    if v != 27 && v != 28 {
        return Err(SignatureError::RecoveryId(v));
    }
    let r = U256::from_be_slice(&bytes[..32]);
    let s = U256::from_be_slice(&bytes[32..64]);
    if r.is_zero() || s.is_zero() {
        return Err(SignatureError::Zero);
    }
    if s > SECP256K1N_HALF {
        return Err(SignatureError::HighS);
    }
    let sig = Signature::from_raw_array(bytes)
        .map_err(|e| SignatureError::Unrecoverable(e.to_string()))?;
    sig.recover_address_from_prehash(digest)
        .map_err(|e| SignatureError::Unrecoverable(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_primitives::address;

    const MARKET: Address = address!("5FbDB2315678afecb367f032d93F642f64180aa3");

    #[test]
    fn report_digest_matches_hand_computed_eip712() {
        let report = Report {
            provider: Address::repeat_byte(1),
            period: 7,
            passed: true,
            metricsHash: B256::repeat_byte(9),
        };
        let mut buf = Vec::new();
        buf.extend_from_slice(
            keccak256(
                "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)",
            )
            .as_slice(),
        );
        buf.extend_from_slice(keccak256("FlowShield").as_slice());
        buf.extend_from_slice(keccak256("1").as_slice());
        buf.extend_from_slice(&U256::from(31337u64).to_be_bytes::<32>());
        buf.extend_from_slice(B256::left_padding_from(MARKET.as_slice()).as_slice());
        let separator = keccak256(&buf);
        let mut s = Vec::new();
        s.extend_from_slice(
            keccak256("Report(address provider,uint64 period,bool passed,bytes32 metricsHash)")
                .as_slice(),
        );
        s.extend_from_slice(B256::left_padding_from(report.provider.as_slice()).as_slice());
        s.extend_from_slice(&U256::from(7u64).to_be_bytes::<32>());
        s.extend_from_slice(&U256::from(1u64).to_be_bytes::<32>());
        s.extend_from_slice(report.metricsHash.as_slice());
        let mut m = vec![0x19, 0x01];
        m.extend_from_slice(separator.as_slice());
        m.extend_from_slice(keccak256(&s).as_slice());
        assert_eq!(
            report_digest(&market_domain(31337, MARKET), &report),
            keccak256(&m)
        );
    }

    #[test]
    fn a_published_report_digest_is_never_the_on_chain_vote_digest() {
        let domain = market_domain(31337, MARKET);
        let report = Report {
            provider: Address::repeat_byte(1),
            period: 7,
            passed: true,
            metricsHash: B256::repeat_byte(9),
        };
        let published = published_report_digest(&domain, &report);
        assert_ne!(published, report_digest(&domain, &report));
        // Same construction as the vote, only the type name differs.
        let mut s = Vec::new();
        s.extend_from_slice(keccak256(PUBLISHED_REPORT_TYPE).as_slice());
        s.extend_from_slice(B256::left_padding_from(report.provider.as_slice()).as_slice());
        s.extend_from_slice(&U256::from(7u64).to_be_bytes::<32>());
        s.extend_from_slice(&U256::from(1u64).to_be_bytes::<32>());
        s.extend_from_slice(report.metricsHash.as_slice());
        let mut m = vec![0x19, 0x01];
        m.extend_from_slice(domain.separator().as_slice());
        m.extend_from_slice(keccak256(&s).as_slice());
        assert_eq!(published, keccak256(&m));
    }

    #[test]
    fn malformed_signatures_are_refused_before_recovery() {
        let digest = B256::repeat_byte(3);
        assert_eq!(
            recover_signer(&digest, &[0u8; 64]),
            Err(SignatureError::Length(64))
        );
        let mut sig = [1u8; 65];
        sig[64] = 1;
        assert_eq!(
            recover_signer(&digest, &sig),
            Err(SignatureError::RecoveryId(1))
        );
        sig[64] = 27;
        sig[..32].fill(0);
        assert_eq!(recover_signer(&digest, &sig), Err(SignatureError::Zero));
        sig[..32].fill(1);
        sig[32..64].fill(0xff);
        assert_eq!(recover_signer(&digest, &sig), Err(SignatureError::HighS));
    }
}
