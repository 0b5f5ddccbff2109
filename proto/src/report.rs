//! Verifier reports as published to fullnodes (`POST /v1/reports`, and the
//! `reports` gossip topic): the document [`SignedReport`] a verifier writes,
//! and [`verify_report`], the checks every receiver makes on its bytes.
//!
//! The body, field by field (unknown fields, e.g. `reasons`, are ignored on
//! receipt):
//! ```json
//! {"verifier": "0x<40 hex>", "market": "0x<40 hex>", "chain_id": 31337,
//!  "report": {"provider": "0x<40 hex>", "period": 7, "passed": true,
//!             "metrics_hash": "0x<64 hex>"},
//!  "metrics": {...}, "reasons": [], "signature": "0x<130 hex>"}
//! ```
//! `metrics_hash` is keccak256 of the `metrics` object's bytes exactly as
//! sent (the verifier hashes its compact JSON, see [`metrics_hash`]), and
//! `signature` is a strict EIP-712 signature over [`published_report_digest`]
//! (type `PublishedReport`, not the on-chain vote type `Report`: a published
//! report can never be relayed on chain as the verifier's vote) by `verifier`. Whether `verifier` is admitted on chain is not checked here
//! (that needs the chain).

use alloy_primitives::{keccak256, Address, B256};
use alloy_sol_types::Eip712Domain;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::collections::HashMap;

use crate::eip712::{published_report_digest, recover_signer, Report};

/// Largest report body accepted.
pub const MAX_REPORT_BODY: usize = 8192;
/// Largest `metrics` object accepted.
pub const MAX_METRICS_BYTES: usize = 4096;

/// A report body that was refused: the field at fault and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct InvalidReport {
    /// The JSON field at fault (`body` for the whole document).
    pub field: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

impl InvalidReport {
    fn new(field: &'static str, reason: impl Into<String>) -> Self {
        Self {
            field,
            reason: reason.into(),
        }
    }
}

/// The signed fields of a report, in their JSON form.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportFields {
    /// Provider address (0x-hex).
    pub provider: String,
    /// Report period.
    pub period: u64,
    /// Verdict.
    pub passed: bool,
    /// keccak256 of the metrics JSON (0x-hex).
    pub metrics_hash: String,
}

/// What a verifier POSTs to `{fullnode}/v1/reports`; `M` is its measurements
/// type (the verifier's own struct; anything that serializes to a JSON
/// object). Field order is the wire order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignedReport<M> {
    /// The signer (verifier chain address).
    pub verifier: String,
    /// Market the EIP-712 domain binds to.
    pub market: String,
    /// Chain id of that domain.
    pub chain_id: u64,
    /// The signed fields.
    pub report: ReportFields,
    /// The measurements the hash covers.
    pub metrics: M,
    /// Why it failed (empty when passed); informative, not signed.
    pub reasons: Vec<String>,
    /// 65-byte EIP-712 signature (0x-hex).
    pub signature: String,
}

/// keccak256 of the compact JSON of `metrics`, the bytes a verifier sends.
pub fn metrics_hash<M: Serialize>(metrics: &M) -> B256 {
    keccak256(serde_json::to_vec(metrics).unwrap_or_default())
}

impl<M: Serialize> SignedReport<M> {
    /// The document for `report`, signed by `verifier` under `domain` with the
    /// 65-byte `signature` over [`published_report_digest`].
    pub fn new(
        domain: &Eip712Domain,
        verifier: Address,
        report: &Report,
        metrics: M,
        reasons: Vec<String>,
        signature: &[u8],
    ) -> Self {
        SignedReport {
            verifier: format!("{verifier:#x}"),
            market: domain
                .verifying_contract
                .map(|a| format!("{a:#x}"))
                .unwrap_or_default(),
            chain_id: domain
                .chain_id
                .map(|c| c.saturating_to())
                .unwrap_or_default(),
            report: ReportFields {
                provider: format!("{:#x}", report.provider),
                period: report.period,
                passed: report.passed,
                metrics_hash: report.metricsHash.to_string(),
            },
            metrics,
            reasons,
            signature: format!("0x{}", hex::encode(signature)),
        }
    }

    /// The EIP-712 struct, parsed back.
    pub fn to_report(&self) -> Result<Report, InvalidReport> {
        Ok(Report {
            provider: parse_address("provider", &self.report.provider)?,
            period: self.report.period,
            passed: self.report.passed,
            metricsHash: parse_hash(&self.report.metrics_hash)?,
        })
    }

    /// The 65 signature bytes.
    pub fn signature_bytes(&self) -> Result<Vec<u8>, InvalidReport> {
        parse_signature(&self.signature)
    }

    /// What a fullnode checks on receipt ([`verify_report`] on this
    /// document's JSON): the domain, the metrics hash and that the signature
    /// recovers to `verifier`. Returns the signer.
    pub fn verify(&self, domain: &Eip712Domain) -> Result<Address, InvalidReport> {
        let body =
            serde_json::to_vec(self).map_err(|e| InvalidReport::new("body", e.to_string()))?;
        Ok(verify_report(&body, domain)?.verifier)
    }
}

/// A report whose domain, metrics hash and signature checked out (whether
/// the verifier is admitted on chain is still to be asked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedReport {
    /// The signed struct.
    pub report: Report,
    /// Who signed it.
    pub verifier: Address,
}

fn field<'a, T: serde::Deserialize<'a>>(
    fields: &HashMap<&'a str, &'a RawValue>,
    name: &'static str,
    what: &str,
) -> Result<T, InvalidReport> {
    let raw = fields
        .get(name)
        .ok_or_else(|| InvalidReport::new(name, "is required"))?;
    serde_json::from_str(raw.get()).map_err(|_| InvalidReport::new(name, format!("must be {what}")))
}

fn parse_address(name: &'static str, text: &str) -> Result<Address, InvalidReport> {
    text.parse()
        .map_err(|_| InvalidReport::new(name, "must be 0x and 40 hex digits"))
}

fn parse_hash(text: &str) -> Result<B256, InvalidReport> {
    text.parse()
        .map_err(|_| InvalidReport::new("metrics_hash", "must be 0x and 64 hex digits"))
}

fn parse_signature(text: &str) -> Result<Vec<u8>, InvalidReport> {
    text.strip_prefix("0x")
        .and_then(|h| hex::decode(h).ok())
        .filter(|b| b.len() == 65)
        .ok_or_else(|| InvalidReport::new("signature", "must be 0x and 130 hex digits"))
}

fn address(
    fields: &HashMap<&str, &RawValue>,
    name: &'static str,
) -> Result<Address, InvalidReport> {
    let text: &str = field(fields, name, "a 0x address")?;
    parse_address(name, text)
}

/// Parses a report body and checks, in order, each failure naming its
/// field: the shape; `chain_id` and `market` are `domain`'s; `metrics_hash`
/// is keccak256 of the `metrics` object's bytes exactly as sent;
/// `signature` is a strict (low-s, v ∈ {27, 28}) EIP-712 signature over
/// [`published_report_digest`] that recovers to `verifier` (a signature over
/// the on-chain vote type `Report` is refused: verifiers never publish votes).
pub fn verify_report(body: &[u8], domain: &Eip712Domain) -> Result<CheckedReport, InvalidReport> {
    if body.len() > MAX_REPORT_BODY {
        return Err(InvalidReport::new(
            "body",
            format!("{} bytes, more than {MAX_REPORT_BODY}", body.len()),
        ));
    }
    let text = std::str::from_utf8(body).map_err(|_| InvalidReport::new("body", "not UTF-8"))?;
    let top: HashMap<&str, &RawValue> = serde_json::from_str(text)
        .map_err(|e| InvalidReport::new("body", format!("not a JSON object: {e}")))?;
    let verifier = address(&top, "verifier")?;
    let market = address(&top, "market")?;
    let chain_id: u64 = field(&top, "chain_id", "a whole number")?;
    let report: HashMap<&str, &RawValue> = field(&top, "report", "an object")?;
    let provider = address(&report, "provider")?;
    let period: u64 = field(&report, "period", "a whole number")?;
    let passed: bool = field(&report, "passed", "true or false")?;
    let metrics_hash = parse_hash(field(&report, "metrics_hash", "a 0x hash")?)?;
    let metrics = top
        .get("metrics")
        .ok_or_else(|| InvalidReport::new("metrics", "is required"))?;
    if !metrics.get().starts_with('{') || metrics.get().len() > MAX_METRICS_BYTES {
        return Err(InvalidReport::new(
            "metrics",
            format!("must be a JSON object of at most {MAX_METRICS_BYTES} bytes"),
        ));
    }
    let signature = parse_signature(field(&top, "signature", "0x and 130 hex digits")?)?;

    if domain.chain_id.map(|c| c.saturating_to::<u64>()) != Some(chain_id) {
        return Err(InvalidReport::new(
            "chain_id",
            "is not the chain of this fullnode's market",
        ));
    }
    if domain.verifying_contract != Some(market) {
        return Err(InvalidReport::new(
            "market",
            "is not this fullnode's market contract",
        ));
    }
    if keccak256(metrics.get().as_bytes()) != metrics_hash {
        return Err(InvalidReport::new(
            "metrics_hash",
            "is not keccak256 of the metrics JSON as sent",
        ));
    }
    let report = Report {
        provider,
        period,
        passed,
        metricsHash: metrics_hash,
    };
    let signer = recover_signer(&published_report_digest(domain, &report), &signature)
        .map_err(|e| InvalidReport::new("signature", format!("invalid signature: {e}")))?;
    if signer != verifier {
        return Err(InvalidReport::new(
            "signature",
            format!("signed by {signer:#x}, not by the verifier {verifier:#x}"),
        ));
    }
    Ok(CheckedReport { report, verifier })
}

#[cfg(test)]
#[path = "report_tests.rs"]
mod tests;
