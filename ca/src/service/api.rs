//! The axum HTTP API of a DeCA operator. Bad input yields 4xx with an [`ErrorBody`] naming the
//! field; nothing here panics on request data.

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

use super::{
    CaService, ChallengeRequest, ErrorBody, IssueRequest, LeafRef, RenewRequest, RevokeRequest,
    ServiceError,
};
use crate::binding::{b64_decode, key_from_b64, NodeBinding};
use crate::pop::Purpose;

type Svc = State<Arc<CaService>>;

/// All routes under `/v1`.
pub fn router(svc: Arc<CaService>) -> Router {
    Router::new()
        .route("/v1/challenge", post(challenge))
        .route("/v1/issue", post(issue))
        .route("/v1/renew", post(renew))
        .route("/v1/revoke", post(revoke))
        .route("/v1/crl", get(crl))
        .route("/v1/status/{serial}", get(status))
        .route("/v1/log/root", get(log_root))
        .route("/v1/log/inclusion/{leaf}", get(inclusion))
        .route("/v1/log/consistency", get(consistency))
        .route("/v1/ca.pem", get(ca_pem))
        .route("/v1/admin/anchor", post(anchor_now))
        .with_state(svc)
}

impl ServiceError {
    fn status_and_field(&self) -> (StatusCode, Option<&'static str>) {
        use crate::pop::PopError;
        match self {
            ServiceError::Pop(PopError::UnknownChallenge) => {
                (StatusCode::NOT_FOUND, Some("challenge_id"))
            }
            ServiceError::Pop(PopError::Reused) => (StatusCode::CONFLICT, Some("challenge_id")),
            ServiceError::Pop(PopError::PeerIdNotEd25519) => {
                (StatusCode::BAD_REQUEST, Some("peer_id"))
            }
            ServiceError::Pop(p) => (StatusCode::FORBIDDEN, Some(p.field())),
            ServiceError::Csr(_) => (StatusCode::BAD_REQUEST, Some("csr")),
            ServiceError::BadRequest { field, .. } => (StatusCode::BAD_REQUEST, Some(field)),
            ServiceError::NotFound(field) => (StatusCode::NOT_FOUND, Some(field)),
            ServiceError::Conflict(_) => (StatusCode::CONFLICT, None),
            ServiceError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, None),
            ServiceError::Log(_) => (StatusCode::BAD_REQUEST, Some("tree_size")),
            ServiceError::Registry(_) => (StatusCode::BAD_GATEWAY, None),
            ServiceError::Store(_) | ServiceError::Authority(_) => {
                (StatusCode::INTERNAL_SERVER_ERROR, None)
            }
        }
    }
}

impl IntoResponse for ServiceError {
    fn into_response(self) -> Response {
        let (status, field) = self.status_and_field();
        if status.is_server_error() {
            tracing::error!(error = %self, "request failed");
        }
        let body = ErrorBody {
            error: self.to_string(),
            field: field.map(str::to_string),
        };
        (status, Json(body)).into_response()
    }
}

fn bad(field: &'static str, reason: impl Into<String>) -> ServiceError {
    ServiceError::BadRequest {
        field,
        reason: reason.into(),
    }
}

fn body<T>(json: Result<Json<T>, JsonRejection>) -> Result<T, ServiceError> {
    json.map(|Json(v)| v)
        .map_err(|e| bad("body", e.body_text()))
}

fn parse_binding(req: &ChallengeRequest) -> Result<NodeBinding, ServiceError> {
    Ok(NodeBinding {
        wg_pubkey: key_from_b64(&req.wg_pubkey)
            .ok_or_else(|| bad("wg_pubkey", "expected base64 of 32 bytes"))?,
        peer_id: req
            .peer_id
            .parse()
            .map_err(|_| bad("peer_id", "not a libp2p PeerId"))?,
        chain_address: req
            .chain_address
            .parse()
            .map_err(|_| bad("chain_address", "not a 20-byte hex address"))?,
    })
}

async fn challenge(
    State(svc): Svc,
    json: Result<Json<ChallengeRequest>, JsonRejection>,
) -> Result<Response, ServiceError> {
    let req = body(json)?;
    let binding = parse_binding(&req)?;
    let purpose = match req.purpose.as_deref() {
        None | Some("issue") => Purpose::Issue,
        Some("renew") => Purpose::Renew,
        Some(_) => return Err(bad("purpose", "expected issue or renew")),
    };
    Ok(Json(svc.challenge(binding, purpose).await?).into_response())
}

async fn issue(
    State(svc): Svc,
    json: Result<Json<IssueRequest>, JsonRejection>,
) -> Result<Response, ServiceError> {
    let req = body(json)?;
    let csr = b64_decode(&req.csr).ok_or_else(|| bad("csr", "not base64"))?;
    let out = svc.issue(&req.challenge_id, &csr, &req.proofs).await?;
    Ok((StatusCode::CREATED, Json(out)).into_response())
}

async fn renew(
    State(svc): Svc,
    json: Result<Json<RenewRequest>, JsonRejection>,
) -> Result<Response, ServiceError> {
    let req = body(json)?;
    let csr = b64_decode(&req.csr).ok_or_else(|| bad("csr", "not base64"))?;
    let out = svc
        .renew(&req.challenge_id, &req.serial, &csr, &req.proofs)
        .await?;
    Ok((StatusCode::CREATED, Json(out)).into_response())
}

async fn revoke(
    State(svc): Svc,
    headers: HeaderMap,
    json: Result<Json<RevokeRequest>, JsonRejection>,
) -> Result<Response, ServiceError> {
    let req = body(json)?;
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let admin = match token {
        Some(_) if svc.is_admin(token) => true,
        Some(_) => return Err(ServiceError::Unauthorized("bad admin token")),
        None => false,
    };
    if hex::decode(&req.serial).is_err() {
        return Err(bad("serial", "not hex"));
    }
    let out = svc
        .revoke(&req.serial, req.signature.as_deref(), admin)
        .await?;
    Ok(Json(out).into_response())
}

async fn crl(State(svc): Svc) -> Result<Response, ServiceError> {
    let der = svc.crl().await?;
    Ok(([(header::CONTENT_TYPE, "application/pkix-crl")], der).into_response())
}

async fn status(State(svc): Svc, Path(serial): Path<String>) -> Result<Response, ServiceError> {
    if hex::decode(&serial).is_err() {
        return Err(bad("serial", "not hex"));
    }
    Ok(Json(svc.status(&serial).await?).into_response())
}

async fn log_root(State(svc): Svc) -> Result<Response, ServiceError> {
    Ok(Json(svc.log_root().await?).into_response())
}

#[derive(Deserialize)]
struct TreeSizeQuery {
    tree_size: Option<u64>,
}

async fn inclusion(
    State(svc): Svc,
    Path(leaf): Path<String>,
    query: Result<Query<TreeSizeQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ServiceError> {
    let Query(q) = query.map_err(|e| bad("tree_size", e.body_text()))?;
    let leaf = if leaf.len() == 64 {
        let hash = hex::decode(&leaf)
            .ok()
            .and_then(|v| v.try_into().ok())
            .ok_or_else(|| bad("leaf", "expected a leaf index or a hex SHA-256"))?;
        LeafRef::CertHash(hash)
    } else {
        LeafRef::Index(
            leaf.parse()
                .map_err(|_| bad("leaf", "expected a leaf index or a hex SHA-256"))?,
        )
    };
    Ok(Json(svc.inclusion(leaf, q.tree_size).await?).into_response())
}

#[derive(Deserialize)]
struct RangeQuery {
    from: u64,
    to: u64,
}

async fn consistency(
    State(svc): Svc,
    query: Result<Query<RangeQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ServiceError> {
    let Query(q) = query.map_err(|e| bad("from/to", e.body_text()))?;
    Ok(Json(svc.consistency(q.from, q.to).await?).into_response())
}

async fn ca_pem(State(svc): Svc) -> Response {
    (
        [(header::CONTENT_TYPE, "application/x-pem-file")],
        svc.authority().cert_pem(),
    )
        .into_response()
}

async fn anchor_now(State(svc): Svc, headers: HeaderMap) -> Result<Response, ServiceError> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if !svc.is_admin(token) {
        return Err(ServiceError::Unauthorized("admin token required"));
    }
    let anchored = svc.anchor_once().await?;
    Ok(Json(serde_json::json!({ "anchored_tree_size": anchored })).into_response())
}
