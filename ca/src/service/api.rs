//! The axum HTTP API of a DeCA operator, documented by an OpenAPI document at `/openapi.json`
//! ([`ApiDoc`]). Bad input yields 4xx with an [`ErrorBody`] naming the
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
    bad, AnchorResponse, CaService, ChallengeRequest, ConsistencyResponse, ErrorBody,
    InclusionResponse, IssueRequest, IssueResponse, LeafRef, RenewRequest, RevokeRequest,
    RevokeResponse, RootResponse, ServiceError, StatusResponse,
};
use crate::binding::b64_decode;
use crate::pop::Challenge;
use utoipa::OpenApi;

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
        .route("/openapi.json", get(openapi))
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

fn body<T>(json: Result<Json<T>, JsonRejection>) -> Result<T, ServiceError> {
    json.map(|Json(v)| v)
        .map_err(|e| bad("body", e.body_text()))
}

/// Starts an issuance or renewal: the CA answers a challenge the node proves its three keys
/// against.
#[utoipa::path(post, path = "/v1/challenge", request_body = ChallengeRequest,
    responses(
        (status = 200, body = Challenge, description = "The challenge to answer"),
        (status = 400, body = ErrorBody, description = "Malformed body or key; `field` names it"),
    ))]
async fn challenge(
    State(svc): Svc,
    json: Result<Json<ChallengeRequest>, JsonRejection>,
) -> Result<Response, ServiceError> {
    let req = body(json)?;
    let binding = req.binding()?;
    let purpose = req.purpose()?;
    Ok(Json(svc.challenge(binding, purpose).await?).into_response())
}

/// Issues a certificate for a CSR signed by the libp2p key, given all three proofs.
#[utoipa::path(post, path = "/v1/issue", request_body = IssueRequest,
    responses(
        (status = 201, body = IssueResponse, description = "Issued and logged"),
        (status = 400, body = ErrorBody, description = "Malformed body, CSR or key; `field` names it"),
        (status = 403, body = ErrorBody, description = "A proof of possession failed, or the challenge is expired or for renewal"),
        (status = 404, body = ErrorBody, description = "Unknown challenge"),
        (status = 409, body = ErrorBody, description = "Challenge already used"),
    ))]
async fn issue(
    State(svc): Svc,
    json: Result<Json<IssueRequest>, JsonRejection>,
) -> Result<Response, ServiceError> {
    let req = body(json)?;
    let csr = b64_decode(&req.csr).ok_or_else(|| bad("csr", "not base64"))?;
    let out = svc.issue(&req.challenge_id, &csr, &req.proofs).await?;
    Ok((StatusCode::CREATED, Json(out)).into_response())
}

/// Renews a certificate that is neither revoked nor expired, given the libp2p proof.
#[utoipa::path(post, path = "/v1/renew", request_body = RenewRequest,
    responses(
        (status = 201, body = IssueResponse, description = "Issued and logged"),
        (status = 400, body = ErrorBody, description = "Malformed body, CSR or serial, or the serial is for other keys; `field` names it"),
        (status = 403, body = ErrorBody, description = "The libp2p proof failed, or the challenge is expired or for issuance"),
        (status = 404, body = ErrorBody, description = "Unknown challenge or serial"),
        (status = 409, body = ErrorBody, description = "Challenge already used, or the certificate is revoked"),
    ))]
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

/// Revokes a certificate: by its holder (`signature`) or an admin (`Authorization: Bearer`).
#[utoipa::path(post, path = "/v1/revoke", request_body = RevokeRequest,
    params(("Authorization" = Option<String>, Header, description = "`Bearer <admin token>`")),
    responses(
        (status = 200, body = RevokeResponse, description = "Revoked and logged"),
        (status = 400, body = ErrorBody, description = "Malformed body, serial or signature; `field` names it"),
        (status = 401, body = ErrorBody, description = "No valid holder signature or admin token"),
        (status = 404, body = ErrorBody, description = "Unknown serial"),
        (status = 409, body = ErrorBody, description = "Already revoked"),
    ))]
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

/// The current CRL, DER, signed by the operator's CA.
#[utoipa::path(get, path = "/v1/crl",
    responses((status = 200, content_type = "application/pkix-crl", body = Vec<u8>, description = "CRL (DER)")))]
async fn crl(State(svc): Svc) -> Result<Response, ServiceError> {
    let der = svc.crl().await?;
    Ok(([(header::CONTENT_TYPE, "application/pkix-crl")], der).into_response())
}

/// An OCSP-like status of one certificate.
#[utoipa::path(get, path = "/v1/status/{serial}",
    params(("serial" = String, Path, description = "Serial, hex")),
    responses(
        (status = 200, body = StatusResponse, description = "good, revoked, expired or unknown"),
        (status = 400, body = ErrorBody, description = "The serial is not hex"),
    ))]
async fn status(State(svc): Svc, Path(serial): Path<String>) -> Result<Response, ServiceError> {
    if hex::decode(&serial).is_err() {
        return Err(bad("serial", "not hex"));
    }
    Ok(Json(svc.status(&serial).await?).into_response())
}

/// The transparency log's current root and the last one anchored on chain.
#[utoipa::path(get, path = "/v1/log/root", responses((status = 200, body = RootResponse)))]
async fn log_root(State(svc): Svc) -> Result<Response, ServiceError> {
    Ok(Json(svc.log_root().await?).into_response())
}

#[derive(Deserialize)]
struct TreeSizeQuery {
    tree_size: Option<u64>,
}

/// An inclusion proof for one log leaf, by index or by certificate hash.
#[utoipa::path(get, path = "/v1/log/inclusion/{leaf}",
    params(
        ("leaf" = String, Path, description = "Leaf index, or the hex SHA-256 of a certificate"),
        ("tree_size" = Option<u64>, Query, description = "Tree size to prove against (default: current)"),
    ),
    responses(
        (status = 200, body = InclusionResponse),
        (status = 400, body = ErrorBody, description = "Malformed leaf or tree size, or the leaf is outside the tree"),
        (status = 404, body = ErrorBody, description = "No such leaf or certificate"),
    ))]
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

/// A consistency proof between two tree sizes.
#[utoipa::path(get, path = "/v1/log/consistency",
    params(
        ("from" = u64, Query, description = "Old tree size"),
        ("to" = u64, Query, description = "New tree size"),
    ),
    responses(
        (status = 200, body = ConsistencyResponse),
        (status = 400, body = ErrorBody, description = "Missing or malformed sizes, or sizes the tree cannot prove"),
    ))]
async fn consistency(
    State(svc): Svc,
    query: Result<Query<RangeQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ServiceError> {
    let Query(q) = query.map_err(|e| bad("from/to", e.body_text()))?;
    Ok(Json(svc.consistency(q.from, q.to).await?).into_response())
}

/// The operator's root certificate.
#[utoipa::path(get, path = "/v1/ca.pem",
    responses((status = 200, content_type = "application/x-pem-file", body = String, description = "Root certificate (PEM)")))]
async fn ca_pem(State(svc): Svc) -> Response {
    (
        [(header::CONTENT_TYPE, "application/x-pem-file")],
        svc.authority().cert_pem(),
    )
        .into_response()
}

/// Admin: anchors the log's current root on chain now.
#[utoipa::path(post, path = "/v1/admin/anchor",
    params(("Authorization" = Option<String>, Header, description = "`Bearer <admin token>`")),
    responses(
        (status = 200, body = AnchorResponse),
        (status = 401, body = ErrorBody, description = "No valid admin token"),
        (status = 502, body = ErrorBody, description = "The chain refused or could not be reached"),
    ))]
async fn anchor_now(State(svc): Svc, headers: HeaderMap) -> Result<Response, ServiceError> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if !svc.is_admin(token) {
        return Err(ServiceError::Unauthorized("admin token required"));
    }
    let anchored_tree_size = svc.anchor_once().await?;
    Ok(Json(AnchorResponse { anchored_tree_size }).into_response())
}

/// The API's OpenAPI document, served at `/openapi.json`.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "FlowShield DeCA operator API",
        description = "Certificates binding a node's WireGuard, libp2p and chain keys; revocation; transparency log"
    ),
    paths(
        challenge,
        issue,
        renew,
        revoke,
        crl,
        status,
        log_root,
        inclusion,
        consistency,
        ca_pem,
        anchor_now
    ),
    components(schemas(ErrorBody))
)]
pub struct ApiDoc;

async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openapi_documents_every_route() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        for (path, method) in [
            ("/v1/challenge", "post"),
            ("/v1/issue", "post"),
            ("/v1/renew", "post"),
            ("/v1/revoke", "post"),
            ("/v1/crl", "get"),
            ("/v1/status/{serial}", "get"),
            ("/v1/log/root", "get"),
            ("/v1/log/inclusion/{leaf}", "get"),
            ("/v1/log/consistency", "get"),
            ("/v1/ca.pem", "get"),
            ("/v1/admin/anchor", "post"),
        ] {
            assert!(doc["paths"][path].get(method).is_some(), "{method} {path}");
        }
        // Every refusal is documented with the error body.
        let issue = &doc["paths"]["/v1/issue"]["post"]["responses"];
        for status in ["400", "403", "404", "409"] {
            assert!(issue.get(status).is_some(), "issue {status}");
        }
    }
}
