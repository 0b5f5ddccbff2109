//! The dashboard's IO: reads every source at once, each within
//! [`SOURCE_TIMEOUT`], into [`Inputs`]. A source that fails or hangs
//! becomes an `Unavailable` panel with the reason; the others are
//! unaffected.
//!
//! Sources: the session host's table (in process), the data plane's peer
//! counters over UAPI (`get=1`), the market contract (provider record,
//! minimum stake, claimable balance), the fullnode's reputation endpoint,
//! and the certificate given at start with the DeCA registry on chain.

use super::exit::ExitInput;
use super::view::{
    inspect_certificate, CertInput, ChainFacts, DashboardView, Inputs, Panel, PeerTraffic,
    RegistryFacts, ReputationFacts,
};
use crate::dataplane::{DataPlane, DataPlaneError};
use crate::provider::host::{HostSnapshot, SessionHost};
use crate::unix_ms;
use crate::wire::cert::binding_of;
use flowshield_ca::authority::serial_hash;
use flowshield_ca::registry::{ChainRegistry, Registry};
use flowshield_ca::CertFacts;
use flowshield_chain::alloy::primitives::{B256, U256};
use flowshield_proto::Offer;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::OnceCell;

/// How long one source may take before its panel shows it as unavailable.
pub const SOURCE_TIMEOUT: Duration = Duration::from_secs(4);

/// What the dashboard reads from.
#[derive(Clone)]
pub struct Sources {
    pub offer: Offer,
    /// The data plane's interface (UAPI socket name).
    pub interface: String,
    /// `None` when the provider does not sell (no `[chain]` table).
    pub host: Option<SessionHost>,
    /// Base URL of a fullnode's HTTP API, for reputation.
    pub fullnode_url: Option<String>,
    /// The `[leaf, operator root]` chain given with `--certificate`.
    pub certificate: Option<Arc<Vec<Vec<u8>>>>,
    /// The DeCA registry, for the certificate's status on chain.
    pub registry: Option<ChainRegistry>,
    /// The exit policy the provider put in force (`NotConfigured` when it
    /// does not sell).
    pub exit: Panel<ExitInput>,
}

/// Reads [`Sources`] into [`Inputs`]. Cheap to share behind an `Arc`.
pub struct Gatherer {
    sources: Sources,
    http: reqwest::Client,
    /// The market's minimum stake never changes after deployment.
    min_stake: OnceCell<U256>,
}

impl Gatherer {
    pub fn new(sources: Sources) -> Self {
        let http = reqwest::Client::builder()
            .timeout(SOURCE_TIMEOUT)
            .build()
            .unwrap_or_default();
        Self {
            sources,
            http,
            min_stake: OnceCell::new(),
        }
    }

    /// Every source, read concurrently.
    pub async fn inputs(&self) -> Inputs {
        let (sessions, traffic, chain, reputation, certificate) = tokio::join!(
            self.sessions(),
            self.traffic(),
            self.chain(),
            self.reputation(),
            self.certificate()
        );
        Inputs {
            now_ms: unix_ms(),
            offer: self.sources.offer.clone(),
            interface: self.sources.interface.clone(),
            sessions,
            traffic,
            chain,
            reputation,
            certificate,
            exit: self.sources.exit.clone(),
        }
    }

    pub async fn view(&self) -> DashboardView {
        DashboardView::build(&self.inputs().await)
    }

    async fn sessions(&self) -> Panel<HostSnapshot> {
        let Some(host) = &self.sources.host else {
            return Panel::not_configured("not selling: the provider has no [chain] table");
        };
        // The host's lock is held across chain transactions; waiting for it
        // is bounded like any other source.
        bounded("the session table", async { Ok(host.snapshot().await) }).await
    }

    async fn traffic(&self) -> Panel<Vec<PeerTraffic>> {
        let iface = self.sources.interface.clone();
        bounded("the data plane", async move {
            let counters = DataPlane::least_privileged(iface.as_str())
                .counters()
                .await
                .map_err(|e| match e {
                    DataPlaneError::Uapi(e) => format!("UAPI {iface}: {}", error_chain(&e)),
                    other => other.to_string(),
                })?;
            Ok(counters
                .iter()
                .map(|p| PeerTraffic {
                    wg_key: p.public_key,
                    rx_bytes: p.rx_bytes,
                    tx_bytes: p.tx_bytes,
                    last_handshake_ms: p.last_handshake_ms(),
                })
                .collect())
        })
        .await
    }

    async fn chain(&self) -> Panel<ChainFacts> {
        let Some(host) = &self.sources.host else {
            return Panel::not_configured("no [chain] table: the provider is not on chain");
        };
        let (market, me) = (host.market(), host.chain_address());
        bounded("the chain", async {
            let min_stake = self
                .min_stake
                .get_or_try_init(|| async { market.params().await.map(|p| p.min_stake) });
            let (record, claimable, min_stake) =
                tokio::try_join!(market.provider_record(me), market.claimable(me), min_stake)
                    .map_err(|e| format!("reading the market contract: {e}"))?;
            Ok(ChainFacts {
                registered: record.registered,
                stake: record.stake,
                unbonding: record.unbonding,
                unbonding_unlock_at: record.unbondingUnlockAt,
                min_stake: *min_stake,
                claimable,
            })
        })
        .await
    }

    async fn reputation(&self) -> Panel<ReputationFacts> {
        let Some(base) = &self.sources.fullnode_url else {
            return Panel::not_configured("no fullnode_url in [dashboard]");
        };
        let url = format!(
            "{}/v1/providers/{}/reputation",
            base.trim_end_matches('/'),
            self.sources.offer.chain_address
        );
        bounded("the fullnode", async {
            let response = self
                .http
                .get(&url)
                .send()
                .await
                .map_err(|e| format!("{base}: {}", error_chain(&e)))?;
            let status = response.status();
            let body = response
                .text()
                .await
                .map_err(|e| format!("{base}: {}", error_chain(&e)))?;
            if !status.is_success() {
                let excerpt: String = body.chars().take(200).collect();
                return Err(format!("{url} answered {status}: {excerpt}"));
            }
            let mut facts: ReputationFacts = serde_json::from_str(&body)
                .map_err(|e| format!("{url}: unexpected answer: {e}"))?;
            facts.fullnode = base.clone();
            Ok(facts)
        })
        .await
    }

    async fn certificate(&self) -> Panel<CertInput> {
        let Some(chain) = &self.sources.certificate else {
            return Panel::not_configured(
                "no certificate configured (start the provider with --certificate chain.pem)",
            );
        };
        let expected = match binding_of(&self.sources.offer) {
            Ok(binding) => binding,
            Err(reason) => return Panel::unavailable(format!("this node's keys: {reason}")),
        };
        let inspected = inspect_certificate(chain, unix_ms() / 1000);
        let registry = match (&self.sources.registry, &inspected) {
            (None, _) => Panel::not_configured("not checked: no deca_registry in [dashboard]"),
            (Some(_), Err(_)) => Panel::not_configured("not checked: the certificate is invalid"),
            (Some(registry), Ok((facts, _))) => {
                bounded("the DeCA registry", registry_facts(registry, facts)).await
            }
        };
        Panel::ok(CertInput {
            inspected,
            expected,
            registry,
        })
    }
}

async fn registry_facts(
    registry: &ChainRegistry,
    facts: &CertFacts,
) -> Result<RegistryFacts, String> {
    let operator = facts.operator;
    let (registered, root, revoked) = tokio::try_join!(
        registry.is_operator(operator),
        registry.operator_ca_cert_hash(operator),
        registry.is_revoked(operator, serial_hash(&facts.serial)),
    )
    .map_err(|e| e.to_string())?;
    Ok(RegistryFacts {
        operator_registered: registered,
        root_matches: root == B256::from(facts.ca_cert_hash),
        revoked,
    })
}

/// Runs one source within [`SOURCE_TIMEOUT`]; failures become the panel's error.
async fn bounded<T>(what: &str, read: impl Future<Output = Result<T, String>>) -> Panel<T> {
    match tokio::time::timeout(SOURCE_TIMEOUT, read).await {
        Ok(Ok(data)) => Panel::ok(data),
        Ok(Err(error)) => {
            tracing::debug!(source = what, %error, "dashboard source failed");
            Panel::unavailable(error)
        }
        Err(_) => {
            tracing::debug!(source = what, "dashboard source timed out");
            Panel::unavailable(format!(
                "{what} did not answer within {} s",
                SOURCE_TIMEOUT.as_secs()
            ))
        }
    }
}

/// An error with its causes, `outer: inner: innermost` (reqwest's own
/// message leaves out why a connection failed).
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
