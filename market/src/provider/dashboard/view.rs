//! What the dashboard shows, built from plain inputs (sans-IO).
//!
//! [`Inputs`] holds what the gatherer read — the session table's snapshot,
//! UAPI peer counters, chain records, the fullnode's reputation answer, the
//! certificate — each source as a [`Panel`] that may be missing or failed.
//! [`DashboardView::build`] joins them (traffic to sessions by WireGuard
//! key, totals, stake state, the certificate's verdict) into the
//! [`DashboardView`] that `/api/status` serves as JSON and the page renders.
//! A failed source degrades its own panel only.

use super::format;
use crate::provider::host::{HostSnapshot, SettledTally};
use flowshield_ca::verify::{inspect_chain, CertFacts, VerifyError};
use flowshield_ca::NodeBinding;
use flowshield_chain::alloy::primitives::U256;
use flowshield_proto::{Offer, WgPublicKey};
use serde::Serialize;

/// One panel's content, or why there is none. JSON:
/// `{"state":"ok","data":{…}}`, `{"state":"not_configured","reason":"…"}`,
/// `{"state":"unavailable","error":"…"}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Panel<T> {
    Ok {
        data: T,
    },
    /// Nothing is configured to feed this panel; `reason` says what would.
    NotConfigured {
        reason: String,
    },
    /// The source failed; `error` says how.
    Unavailable {
        error: String,
    },
}

impl<T> Panel<T> {
    pub fn ok(data: T) -> Self {
        Self::Ok { data }
    }

    pub fn not_configured(reason: impl Into<String>) -> Self {
        Self::NotConfigured {
            reason: reason.into(),
        }
    }

    pub fn unavailable(error: impl Into<String>) -> Self {
        Self::Unavailable {
            error: error.into(),
        }
    }

    pub fn data(&self) -> Option<&T> {
        match self {
            Self::Ok { data } => Some(data),
            _ => None,
        }
    }

    /// The data, or this panel's reason or error as a panel of another type.
    pub fn split<U>(&self) -> Result<&T, Panel<U>> {
        match self {
            Self::Ok { data } => Ok(data),
            Self::NotConfigured { reason } => Err(Panel::not_configured(reason.clone())),
            Self::Unavailable { error } => Err(Panel::unavailable(error.clone())),
        }
    }

    /// The same state with the data mapped (reasons and errors kept).
    pub fn map<U>(&self, f: impl FnOnce(&T) -> U) -> Panel<U> {
        match self {
            Self::Ok { data } => Panel::ok(f(data)),
            Self::NotConfigured { reason } => Panel::not_configured(reason.clone()),
            Self::Unavailable { error } => Panel::unavailable(error.clone()),
        }
    }
}

/// An amount of wei, exact (`wei`, decimal) and in ether (`eth`, exact decimal).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Amount {
    pub wei: String,
    pub eth: String,
}

impl Amount {
    pub fn from_wei(wei: U256) -> Self {
        Self {
            wei: wei.to_string(),
            eth: format::eth_exact(wei),
        }
    }
}

// ---------------------------------------------------------------- inputs

/// A peer's counters from the data plane (UAPI `get=1`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerTraffic {
    pub wg_key: WgPublicKey,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    /// `None`: no handshake yet.
    pub last_handshake_ms: Option<u64>,
}

/// What the chain says about this provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainFacts {
    pub registered: bool,
    pub stake: U256,
    pub unbonding: U256,
    /// Unix seconds; meaningful while `unbonding > 0`.
    pub unbonding_unlock_at: u64,
    pub min_stake: U256,
    /// Credited and not yet withdrawn.
    pub claimable: U256,
}

/// The fullnode's `GET /v1/providers/{address}/reputation` answer.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub struct ReputationFacts {
    /// The fullnode asked (filled in by the gatherer).
    #[serde(skip)]
    pub fullnode: String,
    pub reputation: f64,
    pub reports: u64,
    pub passed: u64,
    pub periods: u64,
    pub latest_period: Option<u64>,
}

/// What the DeCA registry on chain says about the certificate's operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegistryFacts {
    pub operator_registered: bool,
    /// The registered CA certificate hash is this chain's root.
    pub root_matches: bool,
    pub revoked: bool,
}

/// The provider's certificate as read at start, with what was found out.
#[derive(Debug, Clone, PartialEq)]
pub struct CertInput {
    /// [`inspect_certificate`]'s answer.
    pub inspected: Result<(CertFacts, Validity), String>,
    /// The keys this node runs with.
    pub expected: NodeBinding,
    pub registry: Panel<RegistryFacts>,
}

/// Everything the view is built from.
#[derive(Debug, Clone)]
pub struct Inputs {
    pub now_ms: u64,
    pub offer: Offer,
    pub interface: String,
    /// `NotConfigured` when the provider does not sell (no `[chain]`).
    pub sessions: Panel<HostSnapshot>,
    pub traffic: Panel<Vec<PeerTraffic>>,
    pub chain: Panel<ChainFacts>,
    pub reputation: Panel<ReputationFacts>,
    pub certificate: Panel<CertInput>,
    /// `NotConfigured` when the provider does not sell.
    pub exit: Panel<super::exit::ExitInput>,
}

/// Where the certificate's validity window stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Validity {
    Valid,
    Expired,
    NotYetValid,
}

/// Inspects `[leaf, root]` DER at `now` (seconds). An expired or not yet
/// valid certificate is still described, with its [`Validity`].
pub fn inspect_certificate(chain: &[Vec<u8>], now: u64) -> Result<(CertFacts, Validity), String> {
    let at = |t: u64, validity| {
        inspect_chain(chain, t)
            .map(|facts| (facts, validity))
            .map_err(|e| e.to_string())
    };
    match inspect_chain(chain, now) {
        Ok(facts) => Ok((facts, Validity::Valid)),
        Err(VerifyError::Expired { not_after, .. }) => at(not_after, Validity::Expired),
        Err(VerifyError::NotYetValid { not_before, .. }) => at(not_before, Validity::NotYetValid),
        Err(e) => Err(e.to_string()),
    }
}

// ---------------------------------------------------------------- the view

/// The whole dashboard; `/api/status` serves it as JSON.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DashboardView {
    /// When the data was gathered, Unix ms.
    pub generated_at_ms: u64,
    pub identity: IdentityView,
    pub sessions: Panel<SessionsView>,
    pub traffic: Panel<TrafficView>,
    pub earnings: Panel<EarningsView>,
    pub stake: Panel<StakeView>,
    pub reputation: Panel<ReputationView>,
    pub certificate: Panel<CertificateView>,
    /// The egress filter and per-client shaping in force.
    pub exit: Panel<super::exit::ExitView>,
}

/// Who this provider is and what it offers (from its configuration).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IdentityView {
    pub peer_id: String,
    pub chain_address: String,
    pub region: String,
    pub endpoint: String,
    pub wg_public_key: String,
    pub interface: String,
    pub price_per_gib: Amount,
    pub price_per_hour: Amount,
    pub capacity_mbps: u32,
    pub max_clients: u32,
}

/// Open order sessions.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SessionsView {
    pub open: Vec<SessionRow>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SessionRow {
    pub order_id: String,
    /// The client's chain address.
    pub client: String,
    pub client_wg_key: String,
    pub tunnel_address: String,
    pub started_ms: u64,
    /// `None` before the first voucher.
    pub last_voucher_ms: Option<u64>,
    pub escrow: Amount,
    /// The best voucher's cumulative amount.
    pub vouchers_cumulative: Amount,
    /// Paid on chain so far.
    pub redeemed: Amount,
}

/// Bytes through the data plane, per session (matched by WireGuard key).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrafficView {
    pub interface: String,
    pub sessions: Vec<SessionTraffic>,
    /// Sums over `sessions`.
    pub total_rx_bytes: u64,
    pub total_tx_bytes: u64,
    /// Peers on the data plane that belong to no open session.
    pub other_peers: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SessionTraffic {
    pub order_id: String,
    pub client_wg_key: String,
    /// `false`: the session's peer is missing from the data plane.
    pub on_data_plane: bool,
    /// Received from the client.
    pub rx_bytes: u64,
    /// Sent to the client.
    pub tx_bytes: u64,
    pub last_handshake_ms: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EarningsView {
    /// Redeemed on chain by open sessions.
    pub open_redeemed: Amount,
    /// Vouchers held and not yet redeemed (redeemed at threshold or settlement).
    pub open_unredeemed: Amount,
    /// Sessions settled since the provider started, and what they paid.
    pub settled_sessions: u64,
    pub settled_paid: Amount,
    /// `open_redeemed + settled_paid`.
    pub redeemed_total: Amount,
    /// Credited on chain, not yet withdrawn (from the chain).
    pub claimable: Panel<Amount>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StakeView {
    pub registered: bool,
    pub staked: Amount,
    pub min_stake: Amount,
    /// Registered with at least the minimum stake: can take orders.
    pub active: bool,
    pub unstake: UnstakeState,
}

/// Where an unstake request stands.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum UnstakeState {
    None,
    Unbonding { amount: Amount, unlock_at_ms: u64 },
    Withdrawable { amount: Amount, since_ms: u64 },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReputationView {
    pub fullnode: String,
    /// 0 to 1.
    pub score: f64,
    /// No reports yet: `score` is the fullnode's neutral default.
    pub neutral: bool,
    pub reports: u64,
    pub passed: u64,
    pub periods: u64,
    pub latest_period: Option<u64>,
}

/// The certificate's overall verdict, worst first when several apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CertVerdict {
    Revoked,
    Expired,
    NotYetValid,
    /// Binds other keys than this node runs with.
    WrongKeys,
    /// Its operator is not registered on chain with this root.
    UnknownOperator,
    /// Valid and binding this node; not checked on chain.
    ValidUnchecked,
    /// Valid, binding this node, operator registered, not revoked on chain.
    Valid,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CertificateView {
    pub verdict: CertVerdict,
    pub subject: String,
    /// Hex.
    pub serial: String,
    pub not_before_ms: u64,
    pub not_after_ms: u64,
    pub validity: Validity,
    /// The operator's chain address (from the root).
    pub operator: String,
    pub binds_this_node: bool,
    /// The first bound key that differs from this node's, if any.
    pub mismatch: Option<String>,
    pub bound_wg_key: String,
    pub bound_peer_id: String,
    pub bound_chain_address: String,
    /// On-chain status from the DeCA registry.
    pub registry: Panel<RegistryView>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RegistryView {
    pub operator_registered: bool,
    pub root_matches: bool,
    pub revoked: bool,
}

impl DashboardView {
    pub fn build(inputs: &Inputs) -> Self {
        let now = inputs.now_ms;
        Self {
            generated_at_ms: now,
            identity: identity(&inputs.offer, &inputs.interface),
            sessions: inputs.sessions.map(sessions),
            traffic: traffic(inputs),
            earnings: inputs
                .sessions
                .map(|host| earnings(host, inputs.chain.map(|c| Amount::from_wei(c.claimable)))),
            stake: inputs.chain.map(|c| stake(c, now)),
            reputation: inputs.reputation.map(|r| ReputationView {
                fullnode: r.fullnode.clone(),
                score: r.reputation,
                neutral: r.reports == 0,
                reports: r.reports,
                passed: r.passed,
                periods: r.periods,
                latest_period: r.latest_period,
            }),
            certificate: certificate(&inputs.certificate),
            exit: inputs.exit.map(super::exit::view),
        }
    }
}

fn identity(offer: &Offer, interface: &str) -> IdentityView {
    IdentityView {
        peer_id: offer.provider_peer_id.to_base58(),
        chain_address: offer.chain_address.to_string(),
        region: offer.region.to_string(),
        endpoint: offer.endpoint.to_string(),
        wg_public_key: offer.wg_public_key.to_string(),
        interface: interface.to_string(),
        price_per_gib: Amount::from_wei(U256::from(offer.price_per_gib_wei)),
        price_per_hour: Amount::from_wei(U256::from(offer.price_per_hour_wei)),
        capacity_mbps: offer.capacity_mbps,
        max_clients: offer.max_clients,
    }
}

fn sessions(host: &HostSnapshot) -> SessionsView {
    SessionsView {
        open: host
            .sessions
            .iter()
            .map(|s| SessionRow {
                order_id: s.order_id.to_string(),
                client: s.client.to_string(),
                client_wg_key: s.wg_key.to_string(),
                tunnel_address: s.address.to_string(),
                started_ms: s.accepted_at_ms,
                last_voucher_ms: s.last_voucher_ms,
                escrow: Amount::from_wei(s.escrow),
                vouchers_cumulative: Amount::from_wei(s.vouchers_cumulative),
                redeemed: Amount::from_wei(s.redeemed),
            })
            .collect(),
    }
}

fn traffic(inputs: &Inputs) -> Panel<TrafficView> {
    let peers = match inputs.traffic.split() {
        Ok(peers) => peers,
        Err(degraded) => return degraded,
    };
    let open = inputs
        .sessions
        .data()
        .map(|h| h.sessions.as_slice())
        .unwrap_or_default();
    let rows: Vec<SessionTraffic> = open
        .iter()
        .map(|s| {
            let peer = peers.iter().find(|p| p.wg_key == s.wg_key);
            SessionTraffic {
                order_id: s.order_id.to_string(),
                client_wg_key: s.wg_key.to_string(),
                on_data_plane: peer.is_some(),
                rx_bytes: peer.map_or(0, |p| p.rx_bytes),
                tx_bytes: peer.map_or(0, |p| p.tx_bytes),
                last_handshake_ms: peer.and_then(|p| p.last_handshake_ms),
            }
        })
        .collect();
    let other_peers = peers
        .iter()
        .filter(|p| !open.iter().any(|s| s.wg_key == p.wg_key))
        .count();
    Panel::ok(TrafficView {
        interface: inputs.interface.clone(),
        total_rx_bytes: rows.iter().map(|r| r.rx_bytes).fold(0, u64::saturating_add),
        total_tx_bytes: rows.iter().map(|r| r.tx_bytes).fold(0, u64::saturating_add),
        sessions: rows,
        other_peers,
    })
}

fn earnings(host: &HostSnapshot, claimable: Panel<Amount>) -> EarningsView {
    let sum = |f: fn(&crate::session::table::SessionSnapshot) -> U256| {
        host.sessions
            .iter()
            .map(f)
            .fold(U256::ZERO, U256::saturating_add)
    };
    let open_redeemed = sum(|s| s.redeemed);
    let unredeemed = sum(|s| s.vouchers_cumulative.saturating_sub(s.redeemed));
    let SettledTally { sessions, paid } = host.settled;
    EarningsView {
        open_redeemed: Amount::from_wei(open_redeemed),
        open_unredeemed: Amount::from_wei(unredeemed),
        settled_sessions: sessions,
        settled_paid: Amount::from_wei(paid),
        redeemed_total: Amount::from_wei(open_redeemed.saturating_add(paid)),
        claimable,
    }
}

fn stake(chain: &ChainFacts, now_ms: u64) -> StakeView {
    let unlock_ms = chain.unbonding_unlock_at.saturating_mul(1000);
    let unstake = if chain.unbonding.is_zero() {
        UnstakeState::None
    } else if unlock_ms > now_ms {
        UnstakeState::Unbonding {
            amount: Amount::from_wei(chain.unbonding),
            unlock_at_ms: unlock_ms,
        }
    } else {
        UnstakeState::Withdrawable {
            amount: Amount::from_wei(chain.unbonding),
            since_ms: unlock_ms,
        }
    };
    StakeView {
        registered: chain.registered,
        staked: Amount::from_wei(chain.stake),
        min_stake: Amount::from_wei(chain.min_stake),
        active: chain.registered && chain.stake >= chain.min_stake,
        unstake,
    }
}

fn certificate(input: &Panel<CertInput>) -> Panel<CertificateView> {
    let cert = match input.split() {
        Ok(cert) => cert,
        Err(degraded) => return degraded,
    };
    let (facts, validity) = match &cert.inspected {
        Ok(inspected) => inspected,
        Err(e) => return Panel::unavailable(format!("the certificate does not verify: {e}")),
    };
    let mismatch = facts.binding.first_mismatch(&cert.expected);
    let registry = cert.registry.map(|r| RegistryView {
        operator_registered: r.operator_registered,
        root_matches: r.root_matches,
        revoked: r.revoked,
    });
    let verdict = match (validity, registry.data()) {
        (_, Some(r)) if r.revoked => CertVerdict::Revoked,
        (Validity::Expired, _) => CertVerdict::Expired,
        (Validity::NotYetValid, _) => CertVerdict::NotYetValid,
        _ if mismatch.is_some() => CertVerdict::WrongKeys,
        (_, Some(r)) if !(r.operator_registered && r.root_matches) => CertVerdict::UnknownOperator,
        (_, Some(_)) => CertVerdict::Valid,
        (_, None) => CertVerdict::ValidUnchecked,
    };
    let b = &facts.binding;
    Panel::ok(CertificateView {
        verdict,
        subject: facts.subject.clone(),
        serial: hex::encode(&facts.serial),
        not_before_ms: facts.not_before.saturating_mul(1000),
        not_after_ms: facts.not_after.saturating_mul(1000),
        validity: *validity,
        operator: facts.operator.to_string(),
        binds_this_node: mismatch.is_none(),
        mismatch: mismatch.map(|field| field.to_string()),
        bound_wg_key: WgPublicKey(b.wg_pubkey).to_string(),
        bound_peer_id: b.peer_id.to_base58(),
        bound_chain_address: b.chain_address.to_string(),
        registry,
    })
}

#[cfg(test)]
#[path = "view_tests.rs"]
mod tests;
