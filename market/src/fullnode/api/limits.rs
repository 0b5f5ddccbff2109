//! Limits on the API's POST routes, from kept middleware: a GCRA rate
//! limit per client address (`tower_governor`) and a body-size limit
//! (axum's `DefaultBodyLimit`). Their plain-text refusals are answered in
//! the API's error shape instead: 429 or 413 with
//! `{"error": "...", "field": ...}`.
//!
//! A client is its IP address, an IPv6 one its /64 (one host usually owns
//! a whole /64, so per-address keys would not limit it at all). Serve the
//! router with `into_make_service_with_connect_info::<SocketAddr>()`: the
//! limiter reads the peer address from there. Idle clients are dropped from
//! the limiter's table every [`FORGET_IDLE_EVERY`].

use super::state::ApiError;
use crate::net::MapGauges;
use axum::extract::{ConnectInfo, DefaultBodyLimit};
use axum::http::{header, Method, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use tower_governor::governor::GovernorConfigBuilder;
use tower_governor::key_extractor::KeyExtractor;
use tower_governor::{GovernorError, GovernorLayer};

/// How often clients that have refilled their burst are forgotten.
pub const FORGET_IDLE_EVERY: Duration = Duration::from_secs(60);

/// Limits of the fullnode API's POST routes (`/v1/match`, `/v1/reports`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiLimits {
    /// Sustained POST requests per second per client.
    pub per_second: u32,
    /// POST requests a client may send at once before the rate applies.
    pub burst: u32,
    /// Largest request body, in bytes (any route).
    pub max_body_bytes: usize,
}

impl Default for ApiLimits {
    fn default() -> Self {
        Self {
            per_second: 50,
            burst: 100,
            max_body_bytes: 16 * 1024,
        }
    }
}

/// Keys requests by client: IPv4 address or IPv6 /64.
#[derive(Debug, Clone, Copy)]
struct ClientKey;

impl KeyExtractor for ClientKey {
    type Key = IpAddr;

    fn extract<T>(&self, req: &Request<T>) -> Result<IpAddr, GovernorError> {
        let addr = req
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .ok_or(GovernorError::UnableToExtractKey)?;
        Ok(client_of(addr.0.ip()))
    }
}

/// The address a client is limited as.
fn client_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(Ipv6Addr::from(prefix))
            }
        },
    }
}

/// Wraps `router` in the limits. The returned task forgets idle clients
/// and reports how many are tracked; abort it with the server.
pub fn apply(
    router: Router,
    limits: &ApiLimits,
    clients: Option<MapGauges>,
) -> (Router, JoinHandle<()>) {
    let per_second = limits.per_second.max(1);
    let burst = limits.burst.max(1);
    let config = GovernorConfigBuilder::default()
        .period(Duration::from_secs(1) / per_second)
        .burst_size(burst)
        .methods(vec![Method::POST])
        .key_extractor(ClientKey)
        .finish()
        // Period and burst are both non-zero by construction.
        .map(Arc::new);
    let Some(config) = config else {
        return (router, tokio::spawn(async {}));
    };
    let limiter = config.limiter().clone();
    let forget = tokio::spawn(async move {
        let mut every = tokio::time::interval(FORGET_IDLE_EVERY);
        loop {
            every.tick().await;
            limiter.retain_recent();
            if let Some(gauges) = &clients {
                gauges.observe(limiter.len(), 0);
            }
        }
    });
    let governor =
        GovernorLayer::new(config).error_handler(move |error| refused(error, per_second, burst));
    let router = router
        .layer(DefaultBodyLimit::max(limits.max_body_bytes))
        .layer(axum::middleware::map_response(body_limit_as_json))
        .layer(governor);
    (router, forget)
}

/// The limiter's refusal in the API's error shape.
fn refused(error: GovernorError, per_second: u32, burst: u32) -> Response {
    match error {
        GovernorError::TooManyRequests { wait_time, .. } => {
            let mut response = ApiError {
                status: StatusCode::TOO_MANY_REQUESTS,
                error: format!(
                    "too many requests from this address: at most {per_second}/s \
                     (bursts of {burst}); retry in {wait_time} s"
                ),
                field: None,
            }
            .into_response();
            if let Ok(value) = wait_time.to_string().parse() {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
            response
        }
        GovernorError::UnableToExtractKey => {
            ApiError::internal("rate limiter: no client address (served without connect info)")
                .into_response()
        }
        GovernorError::Other { code, msg, .. } => ApiError {
            status: code,
            error: msg.unwrap_or_else(|| "refused".into()),
            field: None,
        }
        .into_response(),
    }
}

/// axum answers a body over the limit with 413 and plain text; say it in
/// JSON, naming the body. Handlers' own 413s are JSON already.
async fn body_limit_as_json(response: Response) -> Response {
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if response.status() != StatusCode::PAYLOAD_TOO_LARGE || is_json {
        return response;
    }
    ApiError {
        status: StatusCode::PAYLOAD_TOO_LARGE,
        error: "request body too large".into(),
        field: Some("body"),
    }
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_clients_are_their_slash_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::7".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(client_of(a), client_of(b));
        assert_ne!(client_of(a), client_of(other));
        assert_eq!(client_of(a), "2001:db8:1:2::".parse::<IpAddr>().unwrap());
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert_eq!(client_of(mapped), "192.0.2.1".parse::<IpAddr>().unwrap());
        let v4: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(client_of(v4), v4);
    }
}
