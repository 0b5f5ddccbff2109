//! The fullnode's HTTP API (axum), documented by an OpenAPI document at
//! `/openapi.json`.
//!
//! Request data is parsed by hand rather than by extractors so that every
//! refusal is a 4xx JSON body `{"error": "...", "field": "..."}` naming the
//! offending field; nothing on this path can panic on client input.

mod reports;

use crate::fullnode::api::reports::{
    list_reports, post_report, ReportAccepted, ReportBody, ReportFields, ReportView,
};
use crate::fullnode::index::{IndexedProvider, ProviderIndex, ProviderQuery};
use crate::fullnode::live::SharedLive;
use crate::fullnode::matching::{self, MatchRequest};
use crate::fullnode::metrics::Metrics;
use crate::fullnode::reports::{ReportService, ReportStore};
use crate::fullnode::reputation::{ReputationBook, SharedReputation};
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use flowshield_proto::offer::u128_text;
use flowshield_proto::{ChainAddress, Offer, Region};
use serde::Serialize;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;
use utoipa::{OpenApi, ToSchema};

/// Most providers one listing returns.
pub const MAX_LIST_LIMIT: u32 = 1000;
const DEFAULT_LIST_LIMIT: u32 = 100;
/// Largest match body accepted.
const MAX_MATCH_BODY: usize = 4096;

#[derive(Clone)]
pub struct ApiState {
    pub index: ProviderIndex,
    pub metrics: Metrics,
    /// What `/v1/match` ranks.
    pub live: SharedLive,
    pub reputation: SharedReputation,
    /// `None` when the fullnode has no market contract configured.
    pub reports: Option<Arc<ReportService>>,
    pub store: ReportStore,
}

/// The API's routes.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/v1/providers", get(list_providers))
        .route(
            "/v1/providers/{address}/reputation",
            get(provider_reputation),
        )
        .route("/v1/match", post(match_offer))
        .route("/v1/reports", post(post_report).get(list_reports))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
        .with_state(state)
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "FlowShield fullnode API",
        description = "Provider index and order matching"
    ),
    paths(
        list_providers,
        provider_reputation,
        match_offer,
        crate::fullnode::api::reports::post_report,
        crate::fullnode::api::reports::list_reports,
        healthz,
        metrics
    ),
    components(schemas(
        ProviderView,
        ReputationView,
        MatchBody,
        MatchView,
        ErrorBody,
        ReportBody,
        ReportFields,
        ReportAccepted,
        ReportView
    ))
)]
pub struct ApiDoc;

/// A refusal: status, message and the field at fault.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub error: String,
    pub field: Option<&'static str>,
}

/// The JSON body of every error.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: String,
    pub field: Option<String>,
}

impl ApiError {
    fn bad(field: &'static str, error: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            error: error.into(),
            field: Some(field),
        }
    }
    pub(crate) fn internal(error: impl std::fmt::Display) -> Self {
        tracing::error!(%error, "API request failed");
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            error: "internal error".into(),
            field: None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: self.error,
            field: self.field.map(str::to_string),
        };
        (self.status, Json(body)).into_response()
    }
}

/// One provider as listed.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProviderView {
    #[schema(value_type = Object)]
    pub offer: Offer,
    pub seq: u64,
    pub timestamp_ms: u64,
    pub last_seen_ms: u64,
    /// The signed heartbeat envelope, for clients that verify themselves.
    pub signed_heartbeat: String,
}

impl From<IndexedProvider> for ProviderView {
    fn from(p: IndexedProvider) -> Self {
        Self {
            offer: p.offer,
            seq: p.seq,
            timestamp_ms: p.timestamp_ms,
            last_seen_ms: p.last_seen_ms,
            signed_heartbeat: p.signed_heartbeat,
        }
    }
}

/// A provider's reputation as this fullnode computes it from verifier
/// reports (see [`crate::fullnode::reputation`]).
#[derive(Debug, Serialize, ToSchema)]
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

/// The reputation of the provider `address` names (sans-IO, for the handler).
pub fn reputation_of(book: &ReputationBook, address: &str) -> Result<ReputationView, ApiError> {
    let provider = address
        .parse::<ChainAddress>()
        .map_err(|_| ApiError::bad("address", "must be 0x and 40 hex digits"))?;
    let summary = book.summary(&provider);
    Ok(ReputationView {
        provider: format!("0x{}", hex::encode(provider.0)),
        reputation: summary.score,
        reports: summary.reports,
        passed: summary.passed,
        periods: summary.periods as u64,
        latest_period: summary.latest_period,
    })
}

/// The body of `POST /v1/match` (documentation; parsed by hand).
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct MatchBody {
    region: Option<String>,
    /// Decimal string of wei.
    max_price_per_gib_wei: String,
    min_capacity_mbps: Option<u32>,
    /// 0 to 1.
    min_reputation: Option<f64>,
}

/// The best offer for a match request.
#[derive(Debug, Serialize, ToSchema)]
pub struct MatchView {
    #[schema(value_type = Object)]
    pub offer: Offer,
    pub score: f64,
    pub reputation: f64,
    pub signed_heartbeat: String,
}

fn parse_region(text: &str) -> Result<Region, ApiError> {
    Region::new(text).map_err(|e| ApiError::bad("region", e.to_string()))
}

fn parse_wei(field: &'static str, text: &str) -> Result<u128, ApiError> {
    u128_text::parse(text).map_err(|e| ApiError::bad(field, e))
}

fn parse_u32(field: &'static str, text: &str) -> Result<u32, ApiError> {
    text.parse()
        .map_err(|_| ApiError::bad(field, "must be a whole number from 0 to 4294967295"))
}

/// Parses the query of `GET /v1/providers`.
pub fn parse_provider_query(params: &HashMap<String, String>) -> Result<ProviderQuery, ApiError> {
    let mut query = ProviderQuery {
        limit: DEFAULT_LIST_LIMIT,
        ..ProviderQuery::default()
    };
    for (key, value) in params {
        match key.as_str() {
            "region" => query.region = Some(parse_region(value)?),
            "max_price" => query.max_price_per_gib_wei = Some(parse_wei("max_price", value)?),
            "min_capacity" => query.min_capacity_mbps = Some(parse_u32("min_capacity", value)?),
            "limit" => {
                let limit = parse_u32("limit", value)?;
                if !(1..=MAX_LIST_LIMIT).contains(&limit) {
                    return Err(ApiError::bad("limit", "must be from 1 to 1000"));
                }
                query.limit = limit;
            }
            _ => {
                return Err(ApiError {
                    status: StatusCode::BAD_REQUEST,
                    error: format!(
                        "unknown parameter '{}' (expected region, max_price, min_capacity, limit)",
                        key.chars().take(32).collect::<String>()
                    ),
                    field: Some("query"),
                })
            }
        }
    }
    Ok(query)
}

/// Parses the body of `POST /v1/match`.
pub fn parse_match_body(body: &[u8]) -> Result<MatchRequest, ApiError> {
    if body.len() > MAX_MATCH_BODY {
        return Err(ApiError {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            error: format!("body is larger than {MAX_MATCH_BODY} bytes"),
            field: Some("body"),
        });
    }
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad("body", format!("not JSON: {e}")))?;
    let Value::Object(fields) = value else {
        return Err(ApiError::bad("body", "must be a JSON object"));
    };
    let mut request = MatchRequest {
        region: None,
        max_price_per_gib_wei: 0,
        min_capacity_mbps: 0,
        min_reputation: 0.0,
    };
    let mut have_price = false;
    for (key, value) in &fields {
        match (key.as_str(), value) {
            (_, Value::Null) => {}
            ("region", Value::String(s)) => request.region = Some(parse_region(s)?),
            ("region", _) => return Err(ApiError::bad("region", "must be a string")),
            ("max_price_per_gib_wei", Value::String(s)) => {
                request.max_price_per_gib_wei = parse_wei("max_price_per_gib_wei", s)?;
                have_price = true;
            }
            ("max_price_per_gib_wei", _) => {
                return Err(ApiError::bad(
                    "max_price_per_gib_wei",
                    "must be a decimal string of wei",
                ))
            }
            ("min_capacity_mbps", v) => {
                request.min_capacity_mbps = v
                    .as_u64()
                    .and_then(|n| u32::try_from(n).ok())
                    .ok_or_else(|| {
                        ApiError::bad("min_capacity_mbps", "must be a whole number of Mbit/s")
                    })?
            }
            ("min_reputation", v) => {
                request.min_reputation =
                    v.as_f64()
                        .filter(|r| (0.0..=1.0).contains(r))
                        .ok_or_else(|| {
                            ApiError::bad("min_reputation", "must be a number from 0 to 1")
                        })?
            }
            _ => {
                return Err(ApiError {
                    status: StatusCode::BAD_REQUEST,
                    error: format!(
                        "unknown field '{}'",
                        key.chars().take(32).collect::<String>()
                    ),
                    field: Some("body"),
                })
            }
        }
    }
    if !have_price {
        return Err(ApiError::bad("max_price_per_gib_wei", "is required"));
    }
    Ok(request)
}

/// Indexed providers, cheapest first.
#[utoipa::path(get, path = "/v1/providers",
    params(
        ("region" = Option<String>, Query, description = "Region name, e.g. eu-west"),
        ("max_price" = Option<String>, Query, description = "Highest price per GiB, decimal wei"),
        ("min_capacity" = Option<u32>, Query, description = "Least capacity in Mbit/s"),
        ("limit" = Option<u32>, Query, description = "1 to 1000, default 100"),
    ),
    responses(
        (status = 200, body = Vec<ProviderView>),
        (status = 400, body = ErrorBody),
    ))]
async fn list_providers(
    State(state): State<ApiState>,
    params: Result<Query<HashMap<String, String>>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<ProviderView>>, ApiError> {
    let Query(params) = params.map_err(|e| ApiError::bad("query", e.body_text()))?;
    let query = parse_provider_query(&params)?;
    let providers = state
        .index
        .query(&query)
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(
        providers.into_iter().map(ProviderView::from).collect(),
    ))
}

/// One provider's reputation from verifier reports; a provider without
/// reports (or unknown to this fullnode) is neutral with `reports: 0`.
#[utoipa::path(get, path = "/v1/providers/{address}/reputation",
    params(("address" = String, Path, description = "Provider chain address, 0x + 40 hex")),
    responses(
        (status = 200, body = ReputationView),
        (status = 400, body = ErrorBody, description = "`address` is not a chain address"),
    ))]
async fn provider_reputation(
    State(state): State<ApiState>,
    Path(address): Path<String>,
) -> Result<Json<ReputationView>, ApiError> {
    let book = state
        .reputation
        .read()
        .map_err(|_| ApiError::internal("reputation lock poisoned"))?;
    reputation_of(&book, &address).map(Json)
}

/// The best offer for a request.
#[utoipa::path(post, path = "/v1/match", request_body = MatchBody,
    responses(
        (status = 200, body = MatchView),
        (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "No provider matches"),
    ))]
async fn match_offer(
    State(state): State<ApiState>,
    body: Bytes,
) -> Result<Json<MatchView>, ApiError> {
    let started = Instant::now();
    let request = parse_match_body(&body)?;
    // Ranked in memory: one pass over the live offers under read locks.
    let best = {
        let live = state
            .live
            .read()
            .map_err(|_| ApiError::internal("live offers lock poisoned"))?;
        let reputation = state
            .reputation
            .read()
            .map_err(|_| ApiError::internal("reputation lock poisoned"))?;
        matching::best(live.offers(), &request, &*reputation).map(|ranked| {
            let signed = live
                .get(&ranked.offer.provider_peer_id)
                .map(|e| e.signed_heartbeat.to_string())
                .unwrap_or_default();
            MatchView {
                offer: ranked.offer.clone(),
                score: ranked.score,
                reputation: ranked.reputation,
                signed_heartbeat: signed,
            }
        })
    };
    state
        .metrics
        .match_latency
        .observe(started.elapsed().as_secs_f64());
    best.map(Json).ok_or(ApiError {
        status: StatusCode::NOT_FOUND,
        error: "no provider matches the request".into(),
        field: None,
    })
}

/// Liveness.
#[utoipa::path(get, path = "/healthz", responses((status = 200, description = "ok")))]
async fn healthz() -> &'static str {
    "ok\n"
}

/// Prometheus metrics (text exposition format).
#[utoipa::path(get, path = "/metrics", responses((status = 200, description = "Prometheus text")))]
async fn metrics(State(state): State<ApiState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}

async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn provider_query_names_bad_fields() {
        let ok = parse_provider_query(&params(&[
            ("region", "eu"),
            ("max_price", "10"),
            ("limit", "5"),
        ]))
        .unwrap();
        assert_eq!(ok.limit, 5);
        assert_eq!(ok.max_price_per_gib_wei, Some(10));
        for (pairs, field) in [
            (vec![("region", "EU!")], "region"),
            (vec![("max_price", "-3")], "max_price"),
            (vec![("min_capacity", "lots")], "min_capacity"),
            (vec![("limit", "0")], "limit"),
            (vec![("colour", "red")], "query"),
        ] {
            let err = parse_provider_query(&params(&pairs)).unwrap_err();
            assert_eq!(err.field, Some(field));
            assert_eq!(err.status, StatusCode::BAD_REQUEST);
        }
    }

    #[test]
    fn match_body_names_bad_fields() {
        let ok = parse_match_body(
            br#"{"region":"eu","max_price_per_gib_wei":"100","min_capacity_mbps":5}"#,
        )
        .unwrap();
        assert_eq!(ok.max_price_per_gib_wei, 100);
        assert_eq!(ok.min_capacity_mbps, 5);
        for (body, field) in [
            (&br#"{}"#[..], "max_price_per_gib_wei"),
            (br#"{"max_price_per_gib_wei":100}"#, "max_price_per_gib_wei"),
            (br#"{"max_price_per_gib_wei":"1","region":7}"#, "region"),
            (
                br#"{"max_price_per_gib_wei":"1","min_capacity_mbps":-1}"#,
                "min_capacity_mbps",
            ),
            (
                br#"{"max_price_per_gib_wei":"1","min_reputation":2}"#,
                "min_reputation",
            ),
            (br#"{"max_price_per_gib_wei":"1","extra":1}"#, "body"),
            (br#"[1]"#, "body"),
            (b"not json", "body"),
        ] {
            let err = parse_match_body(body).unwrap_err();
            assert_eq!(err.field, Some(field), "{}", String::from_utf8_lossy(body));
        }
        let err = parse_match_body(&vec![b' '; MAX_MATCH_BODY + 1]).unwrap_err();
        assert_eq!(err.status, StatusCode::PAYLOAD_TOO_LARGE);
    }

    #[test]
    fn reputation_names_a_bad_address_and_counts_reports() {
        let mut book = ReputationBook::default();
        let provider = ChainAddress([0xab; 20]);
        book.record(provider, 3, true);
        book.record(provider, 4, false);
        let view = reputation_of(&book, &format!("0x{}", "AB".repeat(20))).unwrap();
        assert_eq!(view.provider, format!("0x{}", "ab".repeat(20)));
        assert_eq!((view.reports, view.passed, view.periods), (2, 1, 2));
        assert_eq!(view.latest_period, Some(4));
        assert_eq!(view.reputation, book.score_of(&provider));
        let unknown = reputation_of(&book, &format!("0x{}", "01".repeat(20))).unwrap();
        assert_eq!((unknown.reports, unknown.reputation), (0, 0.5));
        for bad in ["0x12", "nothex", "", &format!("0x{}", "zz".repeat(20))] {
            let err = reputation_of(&book, bad).unwrap_err();
            assert_eq!(
                (err.status, err.field),
                (StatusCode::BAD_REQUEST, Some("address"))
            );
        }
    }

    #[test]
    fn openapi_lists_every_route() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        for path in [
            "/v1/providers",
            "/v1/providers/{address}/reputation",
            "/v1/match",
            "/v1/reports",
            "/healthz",
            "/metrics",
        ] {
            assert!(doc["paths"].get(path).is_some(), "{path}");
        }
    }
}
