//! `GET /v1/providers`, `GET /v1/providers/{address}/reputation` and
//! `POST /v1/match`.

use super::state::{ApiError, ApiState};
use crate::fullnode::index::{IndexedProvider, ProviderQuery};
use crate::fullnode::matching::{self, MatchRequest};
use crate::fullnode::reputation::ReputationBook;
use crate::wire::api::{ErrorBody, MatchBody, MatchView, ProviderView, ReputationView};
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use flowshield_proto::offer::u128_text;
use flowshield_proto::{ChainAddress, Region};
use serde_json::Value;
use std::collections::HashMap;
use std::time::Instant;

/// Most providers one listing returns.
pub const MAX_LIST_LIMIT: u32 = 1000;
const DEFAULT_LIST_LIMIT: u32 = 100;
/// Largest match body accepted.
const MAX_MATCH_BODY: usize = 4096;

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
pub(super) async fn list_providers(
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
pub(super) async fn provider_reputation(
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
        (status = 413, body = ErrorBody, description = "Body over the size limit (`field` is `body`)"),
        (status = 429, body = ErrorBody, description = "Too many POST requests from this address"),
    ))]
pub(super) async fn match_offer(
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
}
