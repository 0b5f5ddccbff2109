//! `POST /v1/reports` and `GET /v1/reports`: verifier reports (see
//! [`crate::fullnode::reports`] for the checks).

use super::state::{ApiError, ApiState};
use crate::fullnode::reports::{ReportError, StoredReport, MAX_REPORT_BODY};
use crate::wire::api::{ErrorBody, ReportAccepted, ReportBody, ReportView};
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::Json;
use std::collections::HashMap;

const DEFAULT_REPORT_LIMIT: u32 = 100;
const MAX_REPORT_LIMIT: u32 = 1000;

impl From<StoredReport> for ReportView {
    fn from(r: StoredReport) -> Self {
        Self {
            report: serde_json::from_str(&r.body).unwrap_or(serde_json::Value::Null),
            provider: r.provider,
            period: r.period,
            verifier: r.verifier,
            passed: r.passed,
            received_ms: r.received_ms,
        }
    }
}

fn report_error(e: ReportError) -> ApiError {
    match e {
        ReportError::Invalid { field, reason } => ApiError {
            status: StatusCode::BAD_REQUEST,
            error: format!("{field}: {reason}"),
            field: Some(field),
        },
        ReportError::NotVerifier(address) => ApiError {
            status: StatusCode::FORBIDDEN,
            error: format!("{address:#x} is not a registered verifier of this market"),
            field: Some("verifier"),
        },
        ReportError::Period(e) => ApiError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            error: format!("period: {e}"),
            field: Some("period"),
        },
        e @ ReportError::Chain { .. } => ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            error: e.to_string(),
            field: None,
        },
        e @ ReportError::Store(_) => ApiError::internal(e),
    }
}

/// Takes a verifier's signed report: checked, stored, gossiped to other
/// fullnodes, counted in the provider's reputation.
#[utoipa::path(post, path = "/v1/reports", request_body = ReportBody,
    responses(
        (status = 201, body = ReportAccepted, description = "New report stored"),
        (status = 200, body = ReportAccepted, description = "Already stored"),
        (status = 400, body = ErrorBody, description = "Malformed, wrong domain or bad signature; `field` names the culprit"),
        (status = 403, body = ErrorBody, description = "Signer is not a registered verifier"),
        (status = 422, body = ErrorBody, description = "Period is neither the market's current one nor the one before (`field` is `period`)"),
        (status = 413, body = ErrorBody, description = "Body over the size limit (`field` is `body`)"),
        (status = 429, body = ErrorBody, description = "Too many POST requests from this address"),
        (status = 503, body = ErrorBody, description = "No market configured, or the chain is unreachable"),
    ))]
pub async fn post_report(
    State(state): State<ApiState>,
    body: Bytes,
) -> Result<(StatusCode, Json<ReportAccepted>), ApiError> {
    let Some(reports) = &state.reports else {
        return Err(ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            error: "this fullnode takes no reports (started without --market)".into(),
            field: None,
        });
    };
    if body.len() > MAX_REPORT_BODY {
        return Err(ApiError {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            error: format!("body is larger than {MAX_REPORT_BODY} bytes"),
            field: Some("body"),
        });
    }
    let (report, new) = reports.accept_http(&body).await.map_err(report_error)?;
    let reputation = state
        .reputation
        .read()
        .map(|book| book.score_of(&report.provider_key()))
        .unwrap_or(crate::fullnode::matching::NEUTRAL_REPUTATION);
    let status = if new {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(ReportAccepted {
            provider: format!("{:#x}", report.provider),
            period: report.period,
            verifier: format!("{:#x}", report.verifier),
            new,
            reputation,
        }),
    ))
}

/// Stored reports on one provider, newest period first.
#[utoipa::path(get, path = "/v1/reports",
    params(
        ("provider" = String, Query, description = "Provider chain address, 0x + 40 hex"),
        ("limit" = Option<u32>, Query, description = "1 to 1000, default 100"),
    ),
    responses(
        (status = 200, body = Vec<ReportView>),
        (status = 400, body = ErrorBody),
    ))]
pub async fn list_reports(
    State(state): State<ApiState>,
    params: Result<Query<HashMap<String, String>>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<ReportView>>, ApiError> {
    let bad = |field: &'static str, error: &str| ApiError {
        status: StatusCode::BAD_REQUEST,
        error: error.to_string(),
        field: Some(field),
    };
    let Query(params) = params.map_err(|e| bad("query", &e.body_text()))?;
    let mut provider = None;
    let mut limit = DEFAULT_REPORT_LIMIT;
    for (key, value) in &params {
        match key.as_str() {
            "provider" => {
                provider = Some(
                    value
                        .parse()
                        .map_err(|_| bad("provider", "must be 0x and 40 hex digits"))?,
                )
            }
            "limit" => {
                limit = value
                    .parse()
                    .ok()
                    .filter(|l| (1..=MAX_REPORT_LIMIT).contains(l))
                    .ok_or_else(|| bad("limit", "must be from 1 to 1000"))?
            }
            _ => return Err(bad("query", "unknown parameter (expected provider, limit)")),
        }
    }
    let provider = provider.ok_or_else(|| bad("provider", "is required"))?;
    let reports = state
        .store
        .list(&provider, limit)
        .await
        .map_err(report_error)?;
    Ok(Json(reports.into_iter().map(ReportView::from).collect()))
}
