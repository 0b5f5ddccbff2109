//! Who may read the dashboard: a Host-header check against DNS
//! rebinding, and an optional bearer token.
//!
//! DNS rebinding: a web page the operator visits points a name it owns at
//! 127.0.0.1, and the operator's browser then reads the dashboard as that
//! name's "own" site. Such requests carry the attacker's name in `Host`;
//! they are refused (421) unless the name is one the operator listed.
//! An IP literal or `localhost` cannot be rebound, so they pass (an SSH
//! tunnel's local port may differ from the dashboard's).
//!
//! The token (if `token_file` is set) is read once at start from a file
//! only its owner can read; every route but `/healthz` then needs
//! `Authorization: Bearer <token>` (401 otherwise). Tokens are compared by
//! SHA-256 digest, so the comparison's timing says nothing about them.

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

/// What a request must show.
#[derive(Debug, Clone, Default)]
pub struct Access {
    /// Host names accepted besides IP literals and `localhost`
    /// (lowercase, without port).
    allowed_hosts: Vec<String>,
    /// SHA-256 of the bearer token, when one is required.
    token_digest: Option<[u8; 32]>,
}

/// Why a token file is refused.
#[derive(Debug, thiserror::Error)]
pub enum TokenFileError {
    #[error("{path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: readable by group or others (mode {mode:o}); chmod 600 it")]
    Permissions { path: String, mode: u32 },
    #[error("{path}: empty token")]
    Empty { path: String },
}

impl Access {
    /// Accepts `allowed_hosts` (names, any case, an optional `:port` is
    /// ignored) and, when `token` is given, requires it.
    pub fn new(allowed_hosts: &[String], token: Option<&str>) -> Self {
        Self {
            allowed_hosts: allowed_hosts
                .iter()
                .map(|h| strip_port(h.trim()).to_ascii_lowercase())
                .collect(),
            token_digest: token.map(digest),
        }
    }

    /// Whether a request with this `Host` header may be served.
    pub fn host_allowed(&self, host: Option<&str>) -> bool {
        let Some(host) = host else { return false };
        let name = strip_port(host.trim());
        let bare = name.trim_start_matches('[').trim_end_matches(']');
        if bare.parse::<IpAddr>().is_ok() || name.eq_ignore_ascii_case("localhost") {
            return true;
        }
        self.allowed_hosts
            .iter()
            .any(|allowed| allowed.eq_ignore_ascii_case(name))
    }

    /// Whether the `Authorization` header carries the token (always true
    /// when none is required).
    pub fn authorized(&self, authorization: Option<&str>) -> bool {
        let Some(expected) = &self.token_digest else {
            return true;
        };
        authorization
            .and_then(|value| value.strip_prefix("Bearer "))
            .is_some_and(|token| digest(token.trim()) == *expected)
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// `name` of `name:port`, `[v6]` of `[v6]:port`; a bare IPv6 address (no
/// brackets, several colons) is left whole.
fn strip_port(host: &str) -> &str {
    if let Some(end) = host.find(']') {
        return &host[..=end];
    }
    match host.rsplit_once(':') {
        Some((name, port)) if !name.contains(':') && port.chars().all(|c| c.is_ascii_digit()) => {
            name
        }
        _ => host,
    }
}

/// Reads the bearer token from `path`, refusing a file that anyone but
/// its owner can read.
pub fn read_token_file(path: &Path) -> Result<String, TokenFileError> {
    use std::os::unix::fs::PermissionsExt;
    let shown = path.display().to_string();
    let read = |source| TokenFileError::Read {
        path: shown.clone(),
        source,
    };
    let mode = std::fs::metadata(path).map_err(read)?.permissions().mode();
    if mode & 0o077 != 0 {
        return Err(TokenFileError::Permissions {
            path: shown,
            mode: mode & 0o777,
        });
    }
    let token = std::fs::read_to_string(path).map_err(read)?;
    let token = token.trim();
    if token.is_empty() {
        return Err(TokenFileError::Empty { path: shown });
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
            "this dashboard does not answer to that Host (add it to dashboard.allowed_hosts)\n",
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
mod tests {
    use super::*;

    #[test]
    fn ip_literals_and_localhost_pass_other_names_only_if_listed() {
        let open = Access::new(&[], None);
        for host in [
            "127.0.0.1:8090",
            "127.0.0.1",
            "[::1]:8090",
            "[::1]",
            "10.0.0.5:9000",
            "localhost:9000",
            "LOCALHOST",
        ] {
            assert!(open.host_allowed(Some(host)), "{host}");
        }
        for host in ["evil.example:8090", "evil.example", "127.0.0.1.evil.example", ""] {
            assert!(!open.host_allowed(Some(host)), "{host}");
        }
        assert!(!open.host_allowed(None), "no Host header");
        let listed = Access::new(&["Dash.Example.net:443".into()], None);
        assert!(listed.host_allowed(Some("dash.example.net")));
        assert!(listed.host_allowed(Some("dash.example.net:8443")));
        assert!(!listed.host_allowed(Some("example.net")));
    }

    #[test]
    fn the_token_is_required_exactly_when_configured() {
        let open = Access::new(&[], None);
        assert!(open.authorized(None));
        let guarded = Access::new(&[], Some("s3cret"));
        assert!(guarded.authorized(Some("Bearer s3cret")));
        for header in [None, Some("Bearer wrong"), Some("s3cret"), Some("Basic s3cret"), Some("Bearer ")] {
            assert!(!guarded.authorized(header), "{header:?}");
        }
    }

    #[test]
    fn a_token_file_others_can_read_is_refused_naming_it() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dashboard.token");
        std::fs::write(&path, "s3cret\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = read_token_file(&path).unwrap_err();
        assert!(e.to_string().contains("dashboard.token"), "{e}");
        assert!(matches!(e, TokenFileError::Permissions { mode: 0o644, .. }), "{e}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(read_token_file(&path).unwrap(), "s3cret");
        std::fs::write(&path, "  \n").unwrap();
        assert!(matches!(read_token_file(&path), Err(TokenFileError::Empty { .. })));
    }
}
