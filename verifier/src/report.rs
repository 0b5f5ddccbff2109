//! Signed reports: the EIP-712 `Report(address provider,uint64 period,bool passed,
//! bytes32 metricsHash)` of `BandwidthMarket`, signed with the verifier's chain key,
//! and the JSON document published to fullnodes.
//!
//! `metricsHash` is keccak256 of the compact JSON of the `metrics` object exactly as
//! published, so a fullnode can check the numbers against the signed hash.

use alloy::primitives::{keccak256, Address, Bytes, B256};
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::Eip712Domain;
use serde::{Deserialize, Serialize};

use crate::stats::{Metrics, Verdict};
use flowshield_chain::voucher::{self, Report};
use flowshield_chain::ChainError;

/// The report fields, in JSON form.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportJson {
    /// Provider address (0x-hex).
    pub provider: String,
    /// Report period.
    pub period: u64,
    /// Verdict.
    pub passed: bool,
    /// keccak256 of the metrics JSON (0x-hex).
    pub metrics_hash: String,
}

/// What is POSTed to `{fullnode}/v1/reports`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignedReport {
    /// The signer (verifier chain address).
    pub verifier: String,
    /// Market the EIP-712 domain binds to.
    pub market: String,
    /// Chain id of that domain.
    pub chain_id: u64,
    /// The signed fields.
    pub report: ReportJson,
    /// The measurements the hash covers.
    pub metrics: Metrics,
    /// Why it failed (empty when passed); informative, not signed.
    pub reasons: Vec<String>,
    /// 65-byte EIP-712 signature (0x-hex).
    pub signature: String,
}

impl SignedReport {
    /// The EIP-712 struct, parsed back.
    pub fn to_report(&self) -> Result<Report, ChainError> {
        let provider = self
            .report
            .provider
            .parse::<Address>()
            .map_err(|e| ChainError::UnexpectedValue(format!("provider: {e}")))?;
        let metrics_hash = self
            .report
            .metrics_hash
            .parse::<B256>()
            .map_err(|e| ChainError::UnexpectedValue(format!("metrics_hash: {e}")))?;
        Ok(Report {
            provider,
            period: self.report.period,
            passed: self.report.passed,
            metricsHash: metrics_hash,
        })
    }

    /// The signature bytes.
    pub fn signature_bytes(&self) -> Result<Bytes, ChainError> {
        self.signature
            .parse::<Bytes>()
            .map_err(|e| ChainError::InvalidSignature(e.to_string()))
    }

    /// Check the metrics hash and that the signature recovers to `verifier` under
    /// `domain` (what a fullnode does on receipt).
    pub fn verify(&self, domain: &Eip712Domain) -> Result<Address, ChainError> {
        let report = self.to_report()?;
        if metrics_hash(&self.metrics) != report.metricsHash {
            return Err(ChainError::InvalidSignature(
                "metrics do not match metrics_hash".into(),
            ));
        }
        let digest = voucher::report_digest(domain, &report);
        let signer = voucher::recover_signer(&digest, &self.signature_bytes()?)?;
        if format!("{signer:#x}") != self.verifier.to_lowercase() {
            return Err(ChainError::InvalidSignature(format!(
                "signed by {signer:#x}, not {}",
                self.verifier
            )));
        }
        Ok(signer)
    }
}

/// keccak256 of the compact JSON of `metrics`.
pub fn metrics_hash(metrics: &Metrics) -> B256 {
    keccak256(serde_json::to_vec(metrics).unwrap_or_default())
}

/// Sign a report on `provider` for `period`.
pub fn sign(
    signer: &PrivateKeySigner,
    domain: &Eip712Domain,
    provider: Address,
    period: u64,
    metrics: &Metrics,
    verdict: &Verdict,
) -> Result<SignedReport, ChainError> {
    let report = Report {
        provider,
        period,
        passed: verdict.passed,
        metricsHash: metrics_hash(metrics),
    };
    let signature = voucher::sign_report(signer, domain, &report)?;
    Ok(SignedReport {
        verifier: format!("{:#x}", signer.address()),
        market: domain
            .verifying_contract
            .map(|a| format!("{a:#x}"))
            .unwrap_or_default(),
        chain_id: domain
            .chain_id
            .map(|c| c.saturating_to())
            .unwrap_or_default(),
        report: ReportJson {
            provider: format!("{provider:#x}"),
            period,
            passed: verdict.passed,
            metrics_hash: report.metricsHash.to_string(),
        },
        metrics: metrics.clone(),
        reasons: verdict.reasons.clone(),
        signature: signature.to_string(),
    })
}

/// One probe, as stored.
#[derive(Debug, Clone)]
pub struct ProbeRecord {
    /// Unix ms when the probe started.
    pub started_at_ms: i64,
    /// Target name.
    pub target: String,
    /// Provider address.
    pub provider: Address,
    /// Report period, when a chain is configured.
    pub period: Option<u64>,
    /// Measurements.
    pub metrics: Metrics,
    /// Verdict.
    pub verdict: Verdict,
    /// The signed report, when a chain is configured.
    pub signed: Option<SignedReport>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Metrics;

    #[test]
    fn signed_report_verifies_and_detects_tampering() {
        let signer = PrivateKeySigner::random();
        let domain = voucher::market_domain(31337, Address::repeat_byte(7));
        let metrics = Metrics::unreachable("down");
        let verdict = Verdict {
            passed: false,
            reasons: vec!["down".into()],
        };
        let provider = Address::repeat_byte(1);
        let signed = sign(&signer, &domain, provider, 42, &metrics, &verdict).expect("sign");
        // Awkward floats: after quantization the JSON round trip keeps the hash.
        let mut awkward = Metrics::unreachable("x");
        for (i, v) in [0.1 + 0.2, 1.0 / 3.0, 4_123.456_789_123, 2.0f64.sqrt() * 1e5]
            .into_iter()
            .enumerate()
        {
            awkward.throughput_mbps = Some(v * (i + 1) as f64);
            awkward.rtt_p90_ms = Some(v / 7.0);
            awkward.transfer_ms = v * 13.0;
            let m = awkward.clone().quantized();
            let back: Metrics =
                serde_json::from_str(&serde_json::to_string(&m).expect("json")).expect("parse");
            assert_eq!(metrics_hash(&back), metrics_hash(&m), "{m:?}");
        }
        assert_eq!(signed.verify(&domain).expect("valid"), signer.address());
        // JSON round trip keeps the hash valid (what a fullnode receives).
        let text = serde_json::to_string(&signed).expect("json");
        let back: SignedReport = serde_json::from_str(&text).expect("parse");
        assert_eq!(back.verify(&domain).expect("valid"), signer.address());

        let mut forged = signed.clone();
        forged.metrics.loss_pct = 0.0;
        assert!(forged.verify(&domain).is_err());
        let mut flipped = signed.clone();
        flipped.report.passed = true;
        assert!(flipped.verify(&domain).is_err());
        let other = voucher::market_domain(1, Address::repeat_byte(7));
        assert!(signed.verify(&other).is_err());
    }
}
