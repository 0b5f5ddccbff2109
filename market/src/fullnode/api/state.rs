//! What every handler shares: the fullnode's state and the error type
//! whose body names the field at fault.

use crate::fullnode::index::ProviderIndex;
use crate::fullnode::live::SharedLive;
use crate::fullnode::metrics::Metrics;
use crate::fullnode::reports::{ReportService, ReportStore};
use crate::fullnode::reputation::SharedReputation;
use crate::wire::api::ErrorBody;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use std::sync::Arc;

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

/// A refusal: status, message and the field at fault.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub error: String,
    pub field: Option<&'static str>,
}

impl ApiError {
    pub(crate) fn bad(field: &'static str, error: impl Into<String>) -> Self {
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
