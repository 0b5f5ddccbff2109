//! The provider's dashboard: one web page (and its JSON) showing the
//! provider's identity, open sessions, traffic per session, earnings,
//! stake, reputation and certificate status. It is on when the provider's
//! configuration has a `[dashboard]` table ([`DashboardFile`]).
//!
//! - [`view`]: what is shown, built from plain inputs (sans-IO); [`exit`]:
//!   the egress filter and per-client shaping in force;
//! - [`render`]: the HTML page (maud, every value escaped, no script, no
//!   external resource); [`format`]: amounts, bytes and times for people;
//! - [`gather`]: reads the sources, each bounded in time, so one failing
//!   source degrades its own panel only;
//! - this module: the `[dashboard]` table and the HTTP server (axum).
//!
//! Routes: `GET /` (the page; `?refresh=N` overrides the reload interval,
//! 0 turns it off), `GET /api/status` (the [`view::DashboardView`] as
//! JSON), `GET /healthz`. [`access`]: requests naming a foreign `Host`
//! are refused with 421 (DNS rebinding), and a bearer token can be
//! required. The dashboard only reads: it holds no key and changes
//! nothing. It shows public keys and addresses, not secrets, but it is
//! meant for the operator: keep it on loopback or a management network.

pub mod access;
pub mod exit;
pub mod format;
pub mod gather;
pub mod render;
pub mod view;

use crate::chain::ChainFile;
use crate::provider::host::SessionHost;
use axum::extract::{Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use flowshield_chain::alloy::primitives::Address;
use flowshield_chain::alloy::signers::local::PrivateKeySigner;
use flowshield_proto::Offer;
use gather::{Gatherer, Sources};
use serde::Deserialize;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::task::JoinHandle;
use tracing::Instrument;
use view::Panel;

/// Why the dashboard could not start.
#[derive(Debug, thiserror::Error)]
pub enum DashboardError {
    #[error("{path}: dashboard.{field}: {reason}")]
    Config {
        path: PathBuf,
        field: &'static str,
        reason: String,
    },
    #[error("dashboard: cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// The `[dashboard]` table of the provider's configuration.
///
/// ```toml
/// [dashboard]
/// listen = "127.0.0.1:8090"               # keep it on loopback or a management network
/// fullnode_url = "http://10.250.0.1:8080" # optional: reputation from this fullnode
/// deca_registry = "0x..."                 # optional: certificate status on chain (via chain.rpc_url)
/// refresh_secs = 5                        # page reload interval; 0: never
/// allowed_hosts = ["dash.example.net"]    # Host names served besides IP literals and localhost
/// token_file = "/etc/flowshield/dashboard.token" # optional: require `Authorization: Bearer` (0600)
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DashboardFile {
    pub listen: String,
    pub fullnode_url: Option<String>,
    pub deca_registry: Option<String>,
    #[serde(default = "default_refresh_secs")]
    pub refresh_secs: u32,
    /// Host names answered besides IP literals and `localhost` (requests
    /// naming any other host are refused: DNS rebinding).
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
    /// A file (mode 0600) holding a bearer token every request but
    /// `/healthz` must carry.
    pub token_file: Option<PathBuf>,
}

fn default_refresh_secs() -> u32 {
    5
}

/// Why the exit panel is empty for a provider without `[chain]`.
const NOT_SELLING: &str = "not selling: no client traffic to filter (no [chain] table)";

/// Longest reload interval accepted.
const MAX_REFRESH_SECS: u32 = 3600;

/// A checked dashboard configuration.
#[derive(Clone)]
pub struct DashboardConfig {
    pub listen: SocketAddr,
    pub refresh_secs: u32,
    pub sources: Sources,
    pub access: access::Access,
}

impl DashboardFile {
    /// Checks the table (in the provider file at `path`, beside its
    /// `[chain]` table and data plane `interface`) and assembles the
    /// dashboard's sources.
    pub fn config(
        &self,
        path: &Path,
        chain: Option<&ChainFile>,
        interface: &str,
        offer: &Offer,
        host: Option<SessionHost>,
        certificate: Option<Vec<Vec<u8>>>,
    ) -> Result<DashboardConfig, DashboardError> {
        let bad = |field: &'static str, reason: String| DashboardError::Config {
            path: path.to_path_buf(),
            field,
            reason,
        };
        let listen = self
            .listen
            .parse::<SocketAddr>()
            .map_err(|_| bad("listen", format!("'{}' is not IP:port", self.listen)))?;
        if self.refresh_secs > MAX_REFRESH_SECS {
            return Err(bad(
                "refresh_secs",
                format!("at most {MAX_REFRESH_SECS} (0 turns reloading off)"),
            ));
        }
        if let Some(url) = &self.fullnode_url {
            let parsed = reqwest::Url::parse(url)
                .map_err(|e| bad("fullnode_url", format!("'{url}': {e}")))?;
            if !matches!(parsed.scheme(), "http" | "https") {
                return Err(bad("fullnode_url", format!("'{url}' is not http(s)")));
            }
        }
        let registry = match &self.deca_registry {
            None => None,
            Some(text) => {
                let address = text
                    .trim()
                    .parse::<Address>()
                    .map_err(|_| bad("deca_registry", format!("'{text}' is not a 0x address")))?;
                let chain = chain.ok_or_else(|| {
                    bad(
                        "deca_registry",
                        "needs a [chain] table (its rpc_url reaches the registry)".into(),
                    )
                })?;
                // Reads only: any key will do.
                let registry = flowshield_ca::registry::ChainRegistry::connect(
                    &chain.rpc_url,
                    address,
                    PrivateKeySigner::random(),
                )
                .map_err(|e| bad("deca_registry", e.to_string()))?;
                Some(registry)
            }
        };
        let token = match &self.token_file {
            Some(file) => {
                Some(access::read_token_file(file).map_err(|e| bad("token_file", e.to_string()))?)
            }
            None => None,
        };
        let access =
            access::Access::new(&self.allowed_hosts, token.as_deref()).map_err(|(i, e)| {
                DashboardError::Config {
                    path: path.to_path_buf(),
                    field: "allowed_hosts",
                    reason: format!("[{i}]: {e}"),
                }
            })?;
        Ok(DashboardConfig {
            listen,
            refresh_secs: self.refresh_secs,
            access,
            sources: Sources {
                exit: match &host {
                    Some(_) => Panel::unavailable("the provider has not reported its exit policy"),
                    None => Panel::not_configured(NOT_SELLING),
                },
                offer: offer.clone(),
                interface: interface.to_string(),
                host,
                fullnode_url: self.fullnode_url.clone(),
                certificate: certificate.map(Arc::new),
                registry,
            },
        })
    }
}

struct AppState {
    gatherer: Gatherer,
    refresh_secs: u32,
}

/// A running dashboard server.
pub struct Dashboard {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Dashboard {
    pub async fn start(config: DashboardConfig) -> Result<Self, DashboardError> {
        let (listener, addr) =
            crate::bind_tcp(config.listen)
                .await
                .map_err(|source| DashboardError::Bind {
                    addr: config.listen,
                    source,
                })?;
        let app = router(config.sources, config.refresh_secs, config.access);
        let span = tracing::info_span!("dashboard", %addr);
        let task = tokio::spawn(
            async move {
                if let Err(e) = axum::serve(listener, app).await {
                    tracing::error!(error = %e, "dashboard server stopped");
                }
            }
            .instrument(span),
        );
        tracing::info!(%addr, "dashboard serving");
        Ok(Self { addr, task })
    }

    /// Where it listens (the port is known here when `listen` gave 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn shutdown(self) {
        self.task.abort();
    }
}

/// The dashboard's routes, behind the [`access`] checks.
pub fn router(sources: Sources, refresh_secs: u32, access: access::Access) -> Router {
    let state = Arc::new(AppState {
        gatherer: Gatherer::new(sources),
        refresh_secs,
    });
    Router::new()
        .route("/", get(page))
        .route("/api/status", get(status))
        .route("/healthz", get(|| async { "ok\n" }))
        .with_state(state)
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(access),
            access::check,
        ))
}

/// No script, no external resource: the page must render offline.
const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

fn refresh_param(params: &HashMap<String, String>, default: u32) -> Result<u32, String> {
    match params.get("refresh") {
        None => Ok(default),
        Some(text) => text
            .parse::<u32>()
            .ok()
            .filter(|s| *s <= MAX_REFRESH_SECS)
            .ok_or_else(|| format!("refresh: must be 0 to {MAX_REFRESH_SECS} seconds\n")),
    }
}

async fn page(
    State(state): State<Arc<AppState>>,
    params: Result<Query<HashMap<String, String>>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let params = params.map(|Query(p)| p).unwrap_or_default();
    let refresh = match refresh_param(&params, state.refresh_secs) {
        Ok(refresh) => refresh,
        Err(error) => return (StatusCode::BAD_REQUEST, error).into_response(),
    };
    let view = state
        .gatherer
        .view()
        .instrument(tracing::debug_span!("dashboard_page"))
        .await;
    let mut response = Html(render::page(&view, refresh)).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

async fn status(State(state): State<Arc<AppState>>) -> Response {
    let view = state
        .gatherer
        .view()
        .instrument(tracing::debug_span!("dashboard_status"))
        .await;
    let mut response = Json(view).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod fixtures;
#[cfg(test)]
mod tests;
