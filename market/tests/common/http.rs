//! HTTP requests to a node's API (fullnode, CA), one fresh client per
//! request, never through a proxy: tests talk to addresses they bound.

use super::WAIT;
use serde_json::Value;
use std::fmt::Display;

/// `method path` on `addr` (`host:port`) with `body` sent as JSON; the
/// status and the body as text. Panics when no answer comes within [`WAIT`].
pub async fn request(addr: impl Display, method: &str, path: &str, body: &str) -> (u16, String) {
    let (status, _, text) = request_with_head(addr, method, path, body).await;
    (status, text)
}

/// [`request`], with the answer's headers too, one `name: value` line
/// each, in lower case.
pub async fn request_with_head(
    addr: impl Display,
    method: &str,
    path: &str,
    body: &str,
) -> (u16, String, String) {
    let method = reqwest::Method::from_bytes(method.as_bytes())
        .unwrap_or_else(|e| panic!("HTTP method {method}: {e}"));
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(WAIT)
        .build()
        .expect("HTTP client");
    let response = client
        .request(method.clone(), format!("http://{addr}{path}"))
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap_or_else(|e| panic!("{method} http://{addr}{path}: {e}"));
    let status = response.status().as_u16();
    let head = response
        .headers()
        .iter()
        .map(|(name, value)| format!("{name}: {}\n", String::from_utf8_lossy(value.as_bytes())))
        .collect::<String>()
        .to_ascii_lowercase();
    let text = response
        .text()
        .await
        .unwrap_or_else(|e| panic!("{method} http://{addr}{path}: reading the body: {e}"));
    (status, head, text)
}

/// [`request`] with the body parsed as JSON (`Value::Null` when it is not).
pub async fn request_json(
    addr: impl Display,
    method: &str,
    path: &str,
    body: &str,
) -> (u16, Value) {
    let (status, text) = request(addr, method, path, body).await;
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// `GET path` on `addr`, for tests without an async runtime.
pub fn get_blocking(addr: impl Display, path: &str) -> (u16, String) {
    super::block_on(request(addr, "GET", path, ""))
}
