//! The fullnode's HTTP API (axum), documented by an OpenAPI document at
//! `/openapi.json`.
//!
//! Request data is parsed by hand rather than by extractors so that every
//! refusal is a 4xx JSON body `{"error": "...", "field": "..."}` naming the
//! offending field; nothing on this path can panic on client input.
//! POST routes are rate- and size-limited per client ([`limits`]).

pub mod limits;
mod providers;
mod reports;
mod state;

pub use limits::ApiLimits;
pub use providers::{parse_match_body, parse_provider_query, reputation_of, MAX_LIST_LIMIT};
pub use state::{ApiError, ApiState};

use crate::wire::api::{
    ErrorBody, MatchBody, MatchView, ProviderView, ReportAccepted, ReportBody, ReportFields,
    ReportView, ReputationView,
};
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{extract::State, Json, Router};
use providers::{list_providers, match_offer, provider_reputation};
use reports::{list_reports, post_report};
use utoipa::OpenApi;

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
        providers::list_providers,
        providers::provider_reputation,
        providers::match_offer,
        reports::post_report,
        reports::list_reports,
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

    #[test]
    fn openapi_documents_the_post_limits() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        for path in ["/v1/match", "/v1/reports"] {
            let responses = &doc["paths"][path]["post"]["responses"];
            for status in ["400", "413", "429"] {
                assert!(responses.get(status).is_some(), "{path} {status}");
            }
        }
    }
}
