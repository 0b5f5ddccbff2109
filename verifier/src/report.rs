//! Published reports: the fields of `BandwidthMarket`'s EIP-712 `Report(address
//! provider,uint64 period,bool passed,bytes32 metricsHash)`, signed with the verifier's
//! chain key as the type `PublishedReport`, and the JSON document published to
//! fullnodes. The type differs from the on-chain vote's on purpose: nobody can relay a
//! published report on chain and spend this verifier's vote for the period (votes are
//! sent by the verifier itself, [`crate::verifier`]).
//!
//! `metricsHash` is keccak256 of the compact JSON of the `metrics` object exactly as
//! published, so a fullnode can check the numbers against the signed hash. The struct,
//! the document and the checks are `flowshield_proto::report`'s (the fullnode uses the
//! same); this module only fills them in with this verifier's measurements and key.

use alloy::primitives::Address;
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::Eip712Domain;

use crate::stats::{Metrics, Verdict};
use flowshield_chain::voucher::{self, Report};
use flowshield_chain::ChainError;
pub use flowshield_proto::report::ReportFields as ReportJson;

/// What is POSTed to `{fullnode}/v1/reports`: `flowshield_proto`'s document
/// with this verifier's [`Metrics`] (its `verify` is the fullnode's check).
pub type SignedReport = flowshield_proto::report::SignedReport<Metrics>;

/// keccak256 of the compact JSON of `metrics`.
pub fn metrics_hash(metrics: &Metrics) -> alloy::primitives::B256 {
    flowshield_proto::report::metrics_hash(metrics)
}

/// Sign a report on `provider` for `period` for publication (not a vote).
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
    let signature = voucher::sign_published_report(signer, domain, &report)?;
    Ok(SignedReport::new(
        domain,
        signer.address(),
        &report,
        metrics.clone(),
        verdict.reasons.clone(),
        &signature,
    ))
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
