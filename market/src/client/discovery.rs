//! Finding a provider: the fullnodes' HTTP API in the configured order
//! (`POST /v1/match`, then `GET /v1/providers` when the match is a provider
//! to avoid), then the DHT when no fullnode answers. Every offer is taken
//! from its provider-signed heartbeat, verified here: a fullnode can hide
//! providers but cannot forge one.

use crate::net::NetHandle;
use crate::wire::api::{ErrorBody, MatchBody, MatchView, ProviderView};
use flowshield_proto::{Heartbeat, Offer, PeerId, Region, SignedMessage};
use reqwest::StatusCode;
use std::collections::HashSet;
use std::time::Duration;

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

/// The offer inside a fullnode's `signed_heartbeat`, if its signature
/// holds and its signer is the provider it names.
fn verified_offer(signed_heartbeat: &str) -> Option<Offer> {
    let signed = SignedMessage::<Heartbeat>::from_bytes(signed_heartbeat.as_bytes()).ok()?;
    let heartbeat = signed.verify().ok()?;
    (signed.claimed_signer().ok()? == heartbeat.offer.provider_peer_id).then_some(heartbeat.offer)
}

/// Asks one fullnode.
pub async fn from_fullnode(url: &str, wanted: &Wanted) -> Result<Offer, DiscoveryError> {
    let err = |reason: String| DiscoveryError::Fullnode {
        url: url.to_string(),
        reason,
    };
    let fullnode = Fullnode::new(url).map_err(err)?;
    let body = MatchBody {
        region: wanted.region.as_ref().map(|r| r.to_string()),
        max_price_per_gib_wei: wanted.max_price_per_gib_wei.to_string(),
        ..MatchBody::default()
    };
    let request = fullnode.client.post(fullnode.url("/v1/match")).json(&body);
    let (status, reply) = exchange(request).await.map_err(err)?;
    match status {
        StatusCode::OK => {
            let view: MatchView = parse(&reply).map_err(err)?;
            let offer = verified_offer(&view.signed_heartbeat)
                .ok_or_else(|| err("match carries no valid signed heartbeat".into()))?;
            if wanted.accepts(&offer) {
                return Ok(offer);
            }
        }
        StatusCode::NOT_FOUND => return Err(err("no provider matches".into())),
        other => return Err(err(refusal(other, &reply))),
    }
    // The best match is one to avoid: list and pick the cheapest other.
    let mut query = vec![("max_price", wanted.max_price_per_gib_wei.to_string())];
    if let Some(region) = &wanted.region {
        query.push(("region", region.to_string()));
    }
    let request = fullnode
        .client
        .get(fullnode.url("/v1/providers"))
        .query(&query);
    let (status, reply) = exchange(request).await.map_err(err)?;
    if status != StatusCode::OK {
        return Err(err(refusal(status, &reply)));
    }
    let list: Vec<ProviderView> = parse(&reply).map_err(err)?;
    list.iter()
        .filter_map(|view| verified_offer(&view.signed_heartbeat))
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

/// A fullnode's base URL and the HTTP client that talks to it.
struct Fullnode {
    base: String,
    client: reqwest::Client,
}

impl Fullnode {
    /// Refuses anything but `http://` (this build has no TLS).
    fn new(base: &str) -> Result<Self, String> {
        let base = base.trim_end_matches('/');
        if !base.starts_with("http://") {
            return Err("only http:// URLs are supported".into());
        }
        let client = reqwest::Client::builder()
            .timeout(HTTP_TIMEOUT)
            .build()
            .map_err(|e| format!("HTTP client: {e}"))?;
        Ok(Self {
            base: base.to_string(),
            client,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

/// Sends `request` and reads the answer, bounded in time ([`HTTP_TIMEOUT`])
/// and size ([`MAX_BODY`], checked while reading). Returns the status and body.
async fn exchange(request: reqwest::RequestBuilder) -> Result<(StatusCode, Vec<u8>), String> {
    let mut response = request.send().await.map_err(|e| describe(&e))?;
    let status = response.status();
    if response
        .content_length()
        .is_some_and(|n| n > MAX_BODY as u64)
    {
        return Err(format!("answer larger than {MAX_BODY} bytes"));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| describe(&e))? {
        if body.len() + chunk.len() > MAX_BODY {
            return Err(format!("answer larger than {MAX_BODY} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok((status, body))
}

/// What went wrong with an exchange, in words: a connection error starts
/// with `connect`, a timeout says how long was waited.
fn describe(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    if error.is_timeout() {
        format!("no answer within {HTTP_TIMEOUT:?}")
    } else if error.is_connect() {
        format!("connect: {text}")
    } else {
        format!("read: {text}")
    }
}

fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, String> {
    serde_json::from_slice(body).map_err(|e| e.to_string())
}

/// A refusal's words: the fullnode's `ErrorBody` if it sent one.
fn refusal(status: StatusCode, body: &[u8]) -> String {
    let reason = match serde_json::from_slice::<ErrorBody>(body) {
        Ok(ErrorBody {
            error,
            field: Some(field),
        }) => format!("{field}: {error}"),
        Ok(ErrorBody { error, field: None }) => error,
        Err(_) => String::from_utf8_lossy(body).trim().to_string(),
    };
    format!("HTTP {}: {reason}", status.as_u16())
}

#[cfg(test)]
#[path = "discovery_tests.rs"]
mod tests;
