//! The bodies of the fullnode's HTTP API (`/v1/...`), typed: what the
//! fullnode serves (and documents in `/openapi.json`) and what clients
//! read. Offers inside are only as good as their `signed_heartbeat`: a
//! client verifies that itself.

use flowshield_proto::Offer;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The JSON body of every error.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    pub error: String,
    pub field: Option<String>,
}

/// One provider as listed.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ProviderView {
    #[schema(value_type = Object)]
    pub offer: Offer,
    pub seq: u64,
    pub timestamp_ms: u64,
    pub last_seen_ms: u64,
    /// The signed heartbeat envelope, for clients that verify themselves.
    pub signed_heartbeat: String,
}

/// A provider's reputation as this fullnode computes it from verifier
/// reports (see [`crate::fullnode::reputation`]).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ReputationView {
    /// Provider chain address, 0x + 40 lowercase hex.
    pub provider: String,
    /// 0 to 1; 0.5 (neutral) without reports.
    pub reputation: f64,
    /// Reports counted, over the last 64 report periods.
    pub reports: u64,
    /// Of those, how many passed the provider.
    pub passed: u64,
    /// Report periods with at least one report.
    pub periods: u64,
    /// The newest period reported on, if any.
    pub latest_period: Option<u64>,
}

/// The body of `POST /v1/match`. The fullnode parses it by hand, so that
/// a refusal names the field at fault; clients send it as typed here.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, ToSchema)]
pub struct MatchBody {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Decimal string of wei.
    pub max_price_per_gib_wei: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_capacity_mbps: Option<u32>,
    /// 0 to 1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_reputation: Option<f64>,
}

/// The best offer for a match request.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MatchView {
    #[schema(value_type = Object)]
    pub offer: Offer,
    pub score: f64,
    pub reputation: f64,
    pub signed_heartbeat: String,
}

/// The body of `POST /v1/reports`: the verifier's signed report, for the
/// OpenAPI document only. The type is `flowshield_proto::report::SignedReport`
/// and the checks are `flowshield_proto::report::verify_report` (proto stays
/// free of utoipa, hence this mirror). Unknown fields are ignored.
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct ReportBody {
    /// The verifier's chain address, 0x + 40 hex; must recover from `signature`.
    verifier: String,
    /// The market contract (EIP-712 verifyingContract), 0x + 40 hex.
    market: String,
    /// EIP-712 chain id.
    chain_id: u64,
    report: ReportFields,
    /// Measurements; `report.metrics_hash` is keccak256 of this object's
    /// JSON exactly as sent.
    #[schema(value_type = Object)]
    metrics: serde_json::Value,
    /// 65-byte EIP-712 signature (r || s || v, v 27 or 28, low s), 0x + 130 hex.
    signature: String,
}

/// The EIP-712 `Report(address provider,uint64 period,bool passed,bytes32 metricsHash)`.
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct ReportFields {
    /// Provider chain address, 0x + 40 hex.
    provider: String,
    period: u64,
    passed: bool,
    /// 0x + 64 hex.
    metrics_hash: String,
}

/// What a fullnode answers to an accepted report.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ReportAccepted {
    pub provider: String,
    pub period: u64,
    pub verifier: String,
    /// `false` if this (provider, period, verifier) was already stored.
    pub new: bool,
    /// The provider's reputation now, 0 to 1.
    pub reputation: f64,
}

/// One stored report.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ReportView {
    pub provider: String,
    pub period: u64,
    pub verifier: String,
    pub passed: bool,
    pub received_ms: u64,
    /// The report as the verifier signed and sent it.
    #[schema(value_type = Object)]
    pub report: serde_json::Value,
}
