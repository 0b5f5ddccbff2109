//! Who may read the dashboard: a Host-header check against DNS
//! rebinding, and an optional bearer token.
//!
//! DNS rebinding: a page the operator visits (say on `evil.example`)
//! re-points its own name at the dashboard's address; the operator's
//! browser then connects to the dashboard and, the name being the page's
//! own origin, lets the page read the answer. The browser still sends the
//! attacker's name in `Host`, and that is what is checked: a request is
//! served only if its `Host` (name and optional port, nothing else) names
//! - the configured listen address (IP literal, any port), or any other IP
//!   literal: an address cannot be re-pointed, and a browser sends an IP
//!   literal only when its own address bar or same-origin page holds it —
//!   this also lets in `0.0.0.0` listeners reached by the host's address
//!   and SSH tunnels to another local port (`-L 9000:127.0.0.1:8090`);
//! - `localhost`, which browsers resolve to loopback themselves;
//! - a name the operator listed in `dashboard.allowed_hosts` (a reverse
//!   proxy's name; the operator vouches that it is theirs).
//!
//! Anything else, a missing or malformed `Host` included, gets 421 and a
//! fixed text — no dashboard data, not even whether a token is needed.
//! The port is not compared: the attacker controls the name, not which
//! port the victim's browser uses, so the port adds nothing against
//! rebinding, while tunnels and proxies change it.
//!
//! The token (if `token_file` is set) is read once at start from a file
//! only its owner can read; every route but `/healthz` then needs
//! `Authorization: Bearer <token>` (401 otherwise). The comparison is of
//! SHA-256 digests in constant time (`subtle`), so its timing tells
//! nothing about the token. The token is never logged.

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use std::path::Path;
use std::sync::Arc;
use subtle::ConstantTimeEq;

/// Shortest token accepted: a guessable token would defeat the point.
pub const MIN_TOKEN_LEN: usize = 16;

/// What a request must show.
#[derive(Clone, Default)]
pub struct Access {
    /// Host names accepted besides IP literals and `localhost`
    /// (lowercase, without port).
    allowed_hosts: Vec<String>,
    /// SHA-256 of the bearer token, when one is required.
    token_digest: Option<[u8; 32]>,
}

impl std::fmt::Debug for Access {
    /// Never prints the token or its digest.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Access")
            .field("allowed_hosts", &self.allowed_hosts)
            .field("token_required", &self.token_digest.is_some())
            .finish()
    }
}

/// Why a token file is refused.
#[derive(Debug, thiserror::Error)]
pub enum TokenFileError {
    #[error("{path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: not a regular file")]
    NotAFile { path: String },
    #[error("{path}: readable by group or others (mode {mode:o}); chmod 600 it")]
    Permissions { path: String, mode: u32 },
    #[error(
        "{path}: the token must be at least {MIN_TOKEN_LEN} characters of A-Z a-z 0-9 - . _ ~ + / = \
         (e.g. `head -c 32 /dev/urandom | base64`)"
    )]
    BadToken { path: String },
}

/// Why an `allowed_hosts` entry is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{entry}' is not a host name (a DNS name such as dash.example.net, optionally with :port; no scheme, path or wildcard)")]
pub struct HostEntryError {
    pub entry: String,
}

/// The host part of a `Host` header value (`name`, `name:port`, `v4:port`,
/// `[v6]:port`), or `None` when the value is anything else (a userinfo, a
/// path, a bad port, a bare IPv6 address, characters no name has, …).
/// Written out because `http`'s `Authority` lets through `[::1]evil.example`.
fn host_of(value: &str) -> Option<&str> {
    let (host, rest) = if value.starts_with('[') {
        let end = value.find(']')?;
        value.split_at(end + 1)
    } else {
        value.split_at(value.find(':').unwrap_or(value.len()))
    };
    if !rest.is_empty() {
        let port = rest.strip_prefix(':')?;
        let digits =
            !port.is_empty() && port.len() <= 5 && port.bytes().all(|b| b.is_ascii_digit());
        if !digits || port.parse::<u16>().is_err() {
            return None;
        }
    }
    (is_ip_literal(host) || is_dns_name(host)).then_some(host)
}

/// A bracketed IPv6 or a dotted IPv4 literal.
fn is_ip_literal(host: &str) -> bool {
    match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(v6) => v6.parse::<std::net::Ipv6Addr>().is_ok(),
        None => host.parse::<std::net::Ipv4Addr>().is_ok(),
    }
}

/// A DNS name: dot-separated labels of letters, digits and hyphens.
fn is_dns_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

impl Access {
    /// Accepts `allowed_hosts` (DNS names, any case, an optional `:port`
    /// ignored) and, when `token` is given, requires it. Entry `i` that is
    /// not a host name is refused as `Err((i, why))`.
    pub fn new(
        allowed_hosts: &[String],
        token: Option<&str>,
    ) -> Result<Self, (usize, HostEntryError)> {
        let mut names = Vec::new();
        for (i, entry) in allowed_hosts.iter().enumerate() {
            let bad = || {
                (
                    i,
                    HostEntryError {
                        entry: entry.clone(),
                    },
                )
            };
            let host = host_of(entry.trim()).ok_or_else(bad)?;
            if !is_dns_name(host) {
                return Err(bad());
            }
            names.push(host.to_ascii_lowercase());
        }
        Ok(Self {
            allowed_hosts: names,
            token_digest: token.map(digest),
        })
    }

    /// Whether a request whose `Host` header is `host` may be served (see
    /// the module documentation; the configured listen address is an IP
    /// literal, so it passes with any port).
    pub fn host_allowed(&self, host: Option<&str>) -> bool {
        let Some(name) = host.and_then(host_of) else {
            return false;
        };
        is_ip_literal(name)
            || name.eq_ignore_ascii_case("localhost")
            || self
                .allowed_hosts
                .iter()
                .any(|allowed| allowed.eq_ignore_ascii_case(name))
    }

    /// Whether a token is required.
    pub fn token_required(&self) -> bool {
        self.token_digest.is_some()
    }

    /// Whether the `Authorization` header carries the token (always true
    /// when none is required). The scheme is case-insensitive (RFC 7235).
    pub fn authorized(&self, authorization: Option<&str>) -> bool {
        let Some(expected) = &self.token_digest else {
            return true;
        };
        let Some(value) = authorization else {
            return false;
        };
        let Some((scheme, token)) = value.split_once(' ') else {
            return false;
        };
        if !scheme.eq_ignore_ascii_case("bearer") {
            return false;
        }
        bool::from(digest(token.trim()).ct_eq(expected))
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Reads the bearer token from `path`, refusing a file that anyone but
/// its owner can read, and a short or malformed token.
pub fn read_token_file(path: &Path) -> Result<String, TokenFileError> {
    use std::os::unix::fs::PermissionsExt;
    let shown = path.display().to_string();
    let read = |source| TokenFileError::Read {
        path: shown.clone(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(read)?;
    if !meta.is_file() {
        return Err(TokenFileError::NotAFile { path: shown });
    }
    let mode = meta.permissions().mode();
    if mode & 0o077 != 0 {
        return Err(TokenFileError::Permissions {
            path: shown,
            mode: mode & 0o777,
        });
    }
    let text = std::fs::read_to_string(path).map_err(read)?;
    let token = text.trim();
    let token_char = |c: char| c.is_ascii_alphanumeric() || "-._~+/=".contains(c);
    if token.len() < MIN_TOKEN_LEN || !token.chars().all(token_char) {
        return Err(TokenFileError::BadToken { path: shown });
    }
    Ok(token.to_string())
}

/// The middleware: Host first (a rebinding page learns nothing, not even
/// whether a token is needed), then the token; `/healthz` needs no token.
pub async fn check(State(access): State<Arc<Access>>, request: Request, next: Next) -> Response {
    let headers = request.headers();
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    if !access.host_allowed(host) {
        return (
            StatusCode::MISDIRECTED_REQUEST,
            "this dashboard does not answer to that Host (add the name to dashboard.allowed_hosts)\n",
        )
            .into_response();
    }
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if request.uri().path() != "/healthz" && !access.authorized(authorization) {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "a bearer token is required\n",
        )
            .into_response();
    }
    next.run(request).await
}

#[cfg(test)]
#[path = "access_tests.rs"]
mod tests;
