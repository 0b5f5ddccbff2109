//! Finding a provider: the fullnodes' HTTP API in the configured order
//! (`POST /v1/match`, then `GET /v1/providers` when the match is a provider
//! to avoid), then the DHT when no fullnode answers. Every offer is taken
//! from its provider-signed heartbeat, verified here: a fullnode can hide
//! providers but cannot forge one.

use crate::net::NetHandle;
use flowshield_proto::{Heartbeat, Offer, PeerId, Region, SignedMessage};
use serde_json::Value;
use std::collections::HashSet;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One HTTP exchange with a fullnode takes at most this long.
const HTTP_TIMEOUT: Duration = Duration::from_secs(3);
/// Largest fullnode answer read.
const MAX_BODY: usize = 4 << 20;

/// Why no provider was found.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DiscoveryError {
    #[error("fullnode {url}: {reason}")]
    Fullnode { url: String, reason: String },
    #[error("DHT: {0}")]
    Dht(String),
    #[error("no provider matches (tried: {0})")]
    NoneFound(String),
}

/// What the client wants.
#[derive(Debug, Clone)]
pub struct Wanted {
    pub region: Option<Region>,
    pub max_price_per_gib_wei: u128,
    pub exclude: HashSet<PeerId>,
}

impl Wanted {
    fn accepts(&self, offer: &Offer) -> bool {
        !self.exclude.contains(&offer.provider_peer_id)
            && offer.price_per_gib_wei <= self.max_price_per_gib_wei
            && self.region.as_ref().is_none_or(|r| *r == offer.region)
    }
}

/// Where an offer came from (reported in the client's JSON lines).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Fullnode(String),
    Dht,
}

/// Tries each fullnode, then the DHT. Returns the offer and its source,
/// and the errors met on the way (for the log).
pub async fn find(
    fullnodes: &[String],
    net: &NetHandle,
    wanted: &Wanted,
) -> Result<(Offer, Source, Vec<DiscoveryError>), DiscoveryError> {
    let mut errors = Vec::new();
    for url in fullnodes {
        match from_fullnode(url, wanted).await {
            Ok(offer) => return Ok((offer, Source::Fullnode(url.clone()), errors)),
            Err(e) => {
                tracing::warn!(error = %e, "fullnode unusable, trying the next");
                errors.push(e);
            }
        }
    }
    match from_dht(net, wanted).await {
        Ok(offer) => Ok((offer, Source::Dht, errors)),
        Err(e) => {
            errors.push(e);
            let tried = errors
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("; ");
            Err(DiscoveryError::NoneFound(tried))
        }
    }
}

fn verified_offer(value: &Value) -> Option<Offer> {
    let text = value.get("signed_heartbeat")?.as_str()?;
    let signed = SignedMessage::<Heartbeat>::from_bytes(text.as_bytes()).ok()?;
    let heartbeat = signed.verify().ok()?;
    (signed.claimed_signer().ok()? == heartbeat.offer.provider_peer_id).then_some(heartbeat.offer)
}

/// Asks one fullnode.
pub async fn from_fullnode(url: &str, wanted: &Wanted) -> Result<Offer, DiscoveryError> {
    let err = |reason: String| DiscoveryError::Fullnode {
        url: url.to_string(),
        reason,
    };
    let mut body = serde_json::json!({
        "max_price_per_gib_wei": wanted.max_price_per_gib_wei.to_string(),
    });
    if let Some(region) = &wanted.region {
        body["region"] = Value::String(region.to_string());
    }
    let (status, reply) = http(url, "POST", "/v1/match", Some(&body.to_string()))
        .await
        .map_err(err)?;
    match status {
        200 => {
            let value: Value = serde_json::from_str(&reply).map_err(|e| err(e.to_string()))?;
            let offer = verified_offer(&value)
                .ok_or_else(|| err("match carries no valid signed heartbeat".into()))?;
            if wanted.accepts(&offer) {
                return Ok(offer);
            }
        }
        404 => return Err(err("no provider matches".into())),
        other => return Err(err(format!("HTTP {other}: {}", reply.trim()))),
    }
    // The best match is one to avoid: list and pick the cheapest other.
    let mut path = format!("/v1/providers?max_price={}", wanted.max_price_per_gib_wei);
    if let Some(region) = &wanted.region {
        path.push_str(&format!("&region={region}"));
    }
    let (status, reply) = http(url, "GET", &path, None).await.map_err(err)?;
    if status != 200 {
        return Err(err(format!("HTTP {status}: {}", reply.trim())));
    }
    let list: Vec<Value> = serde_json::from_str(&reply).map_err(|e| err(e.to_string()))?;
    list.iter()
        .filter_map(verified_offer)
        .filter(|o| wanted.accepts(o))
        .min_by_key(|o| o.price_per_gib_wei)
        .ok_or_else(|| err("every matching provider is excluded".into()))
}

/// Looks providers of the wanted region up in the DHT.
pub async fn from_dht(net: &NetHandle, wanted: &Wanted) -> Result<Offer, DiscoveryError> {
    let region = wanted
        .region
        .clone()
        .ok_or_else(|| DiscoveryError::Dht("a region is needed to search the DHT".into()))?;
    let peers = net
        .find_providers(region)
        .await
        .map_err(|e| DiscoveryError::Dht(e.to_string()))?;
    let mut best: Option<Offer> = None;
    for peer in peers.into_iter().filter(|p| !wanted.exclude.contains(p)) {
        match net.get_heartbeat(peer).await {
            Ok(hb) if wanted.accepts(&hb.offer) => {
                if best
                    .as_ref()
                    .is_none_or(|b| hb.offer.price_per_gib_wei < b.price_per_gib_wei)
                {
                    best = Some(hb.offer);
                }
            }
            Ok(_) => {}
            Err(e) => tracing::debug!(%peer, error = %e, "no heartbeat record"),
        }
    }
    best.ok_or_else(|| DiscoveryError::Dht("no provider record matches".into()))
}

/// A minimal HTTP/1.1 exchange (`http://host:port` only), bounded in time
/// and size. Returns the status and body.
pub async fn http(
    base: &str,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> Result<(u16, String), String> {
    let hostport = base
        .trim_end_matches('/')
        .strip_prefix("http://")
        .ok_or_else(|| "only http:// URLs are supported".to_string())?;
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(hostport)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let body = body.unwrap_or("");
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {hostport}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| format!("send: {e}"))?;
        let mut raw = Vec::new();
        (&mut stream)
            .take(MAX_BODY as u64)
            .read_to_end(&mut raw)
            .await
            .map_err(|e| format!("read: {e}"))?;
        let text = String::from_utf8_lossy(&raw).into_owned();
        let (head, rest) = text
            .split_once("\r\n\r\n")
            .ok_or_else(|| "malformed HTTP answer".to_string())?;
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| "malformed HTTP status".to_string())?;
        let body = if head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
        {
            dechunk(rest)
        } else {
            rest.to_string()
        };
        Ok((status, body))
    };
    tokio::time::timeout(HTTP_TIMEOUT, exchange)
        .await
        .map_err(|_| format!("no answer within {HTTP_TIMEOUT:?}"))?
}

fn dechunk(mut text: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = text.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        text = rest[n..].trim_start_matches("\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dechunks_bodies() {
        assert_eq!(dechunk("3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"), "abcde");
    }

    #[tokio::test]
    async fn unreachable_fullnodes_are_reported() {
        let err = http("http://127.0.0.1:1", "GET", "/", None)
            .await
            .unwrap_err();
        assert!(err.starts_with("connect"), "{err}");
        let err = http("https://x", "GET", "/", None).await.unwrap_err();
        assert!(err.contains("http://"), "{err}");
    }
}
