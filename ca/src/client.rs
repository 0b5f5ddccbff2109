//! HTTP client for a DeCA operator, used by nodes, the CLI helpers and tests.

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::binding::{b64, NodeBinding};
use crate::node::{NodeError, NodeKeys};
use crate::pop::Challenge;
use crate::service::{
    ChallengeRequest, ConsistencyResponse, ErrorBody, InclusionResponse, IssueRequest,
    IssueResponse, RenewRequest, RevokeRequest, RevokeResponse, RootResponse, StatusResponse,
};

/// A client-side failure.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Transport failure.
    #[error("http: {0}")]
    Http(#[from] reqwest::Error),
    /// The CA answered with an error status.
    #[error("CA answered {status}: {} (field {:?})", body.error, body.field)]
    Api {
        /// HTTP status.
        status: u16,
        /// Error body.
        body: ErrorBody,
    },
    /// Node key operation failed.
    #[error(transparent)]
    Node(#[from] NodeError),
}

impl ClientError {
    /// The HTTP status, if the CA answered with an error.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The field the CA named, if any.
    pub fn field(&self) -> Option<&str> {
        match self {
            ClientError::Api { body, .. } => body.field.as_deref(),
            _ => None,
        }
    }
}

/// Talks to one operator at `base` (e.g. `http://127.0.0.1:8443`).
#[derive(Clone, Debug)]
pub struct CaClient {
    base: String,
    http: reqwest::Client,
    admin_token: Option<String>,
}

impl CaClient {
    /// A client for the operator at `base`.
    pub fn new(base: impl Into<String>) -> Self {
        CaClient {
            base: base.into().trim_end_matches('/').to_string(),
            http: reqwest::Client::new(),
            admin_token: None,
        }
    }

    /// Uses `token` as the operator admin bearer token.
    pub fn with_admin_token(mut self, token: impl Into<String>) -> Self {
        self.admin_token = Some(token.into());
        self
    }

    async fn decode<T: DeserializeOwned>(resp: reqwest::Response) -> Result<T, ClientError> {
        let status = resp.status();
        if status.is_success() {
            return Ok(resp.json().await?);
        }
        let body = resp.json().await.unwrap_or(ErrorBody {
            error: status.to_string(),
            field: None,
        });
        Err(ClientError::Api {
            status: status.as_u16(),
            body,
        })
    }

    async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        let mut req = self.http.post(format!("{}{path}", self.base)).json(body);
        if let Some(t) = &self.admin_token {
            req = req.bearer_auth(t);
        }
        Self::decode(req.send().await?).await
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        Self::decode(self.http.get(format!("{}{path}", self.base)).send().await?).await
    }

    /// `POST /v1/challenge`.
    pub async fn challenge(
        &self,
        binding: &NodeBinding,
        purpose: &str,
    ) -> Result<Challenge, ClientError> {
        let req = ChallengeRequest {
            wg_pubkey: b64(&binding.wg_pubkey),
            peer_id: binding.peer_id.to_base58(),
            chain_address: binding.chain_address.to_string(),
            purpose: Some(purpose.to_string()),
        };
        self.post("/v1/challenge", &req).await
    }

    /// `POST /v1/issue` with a prepared request.
    pub async fn issue_raw(&self, req: &IssueRequest) -> Result<IssueResponse, ClientError> {
        self.post("/v1/issue", req).await
    }

    /// Full issuance for `keys`: challenge, proofs, CSR, issue.
    pub async fn request_certificate(&self, keys: &NodeKeys) -> Result<IssueResponse, ClientError> {
        let ch = self.challenge(&keys.binding(), "issue").await?;
        let req = IssueRequest {
            challenge_id: ch.id.clone(),
            csr: b64(&keys.csr_der()?),
            proofs: keys.prove(&ch)?,
        };
        self.issue_raw(&req).await
    }

    /// Full renewal of `serial` for `keys`.
    pub async fn renew(&self, keys: &NodeKeys, serial: &str) -> Result<IssueResponse, ClientError> {
        let ch = self.challenge(&keys.binding(), "renew").await?;
        let req = RenewRequest {
            challenge_id: ch.id.clone(),
            serial: serial.to_string(),
            csr: b64(&keys.csr_der()?),
            proofs: keys.prove_renewal(&ch),
        };
        self.post("/v1/renew", &req).await
    }

    /// `POST /v1/revoke`: by the holder if `keys` is given, else with the admin token.
    pub async fn revoke(
        &self,
        serial: &str,
        keys: Option<&NodeKeys>,
    ) -> Result<RevokeResponse, ClientError> {
        let req = RevokeRequest {
            serial: serial.to_string(),
            signature: keys.map(|k| k.sign_revocation(serial)),
        };
        self.post("/v1/revoke", &req).await
    }

    /// `GET /v1/crl` (DER).
    pub async fn crl(&self) -> Result<Vec<u8>, ClientError> {
        let resp = self
            .http
            .get(format!("{}/v1/crl", self.base))
            .send()
            .await?;
        if !resp.status().is_success() {
            return Self::decode(resp).await;
        }
        Ok(resp.bytes().await?.to_vec())
    }

    /// `GET /v1/status/{serial}`.
    pub async fn status(&self, serial: &str) -> Result<StatusResponse, ClientError> {
        self.get(&format!("/v1/status/{serial}")).await
    }

    /// `GET /v1/log/root`.
    pub async fn log_root(&self) -> Result<RootResponse, ClientError> {
        self.get("/v1/log/root").await
    }

    /// `GET /v1/log/inclusion/{leaf}?tree_size=`; `leaf` is an index or a hex cert hash.
    pub async fn inclusion(
        &self,
        leaf: &str,
        tree_size: Option<u64>,
    ) -> Result<InclusionResponse, ClientError> {
        let q = tree_size
            .map(|s| format!("?tree_size={s}"))
            .unwrap_or_default();
        self.get(&format!("/v1/log/inclusion/{leaf}{q}")).await
    }

    /// `GET /v1/log/consistency?from=&to=`.
    pub async fn consistency(
        &self,
        from: u64,
        to: u64,
    ) -> Result<ConsistencyResponse, ClientError> {
        self.get(&format!("/v1/log/consistency?from={from}&to={to}"))
            .await
    }

    /// `GET /v1/ca.pem`.
    pub async fn ca_pem(&self) -> Result<String, ClientError> {
        let resp = self
            .http
            .get(format!("{}/v1/ca.pem", self.base))
            .send()
            .await?;
        Ok(resp.error_for_status()?.text().await?)
    }

    /// `POST /v1/admin/anchor` (admin token).
    pub async fn anchor_now(&self) -> Result<serde_json::Value, ClientError> {
        self.post("/v1/admin/anchor", &serde_json::json!({})).await
    }
}
