//! The exit panel: what clients may reach through this host and how fast
//! (sans-IO). [`ExitInput`] is what the provider put in force at start —
//! the applied egress filter with the uplink it found, and the per-client
//! shaping plan; [`view`] turns it into the [`ExitView`] that
//! `/api/status` serves under `exit` and the page shows.

use crate::provider::egress::policy::{BLOCKED_V4, BLOCKED_V6, SMTP_PORT};
use crate::provider::egress::EgressPolicy;
use crate::provider::shaping::ShapingPlan;
use serde::Serialize;

/// The egress filter as applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedEgress {
    pub policy: EgressPolicy,
    /// The uplink in use (configured, or the default route's at start).
    pub uplink: String,
}

/// What the provider put in force for its clients' traffic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExitInput {
    /// `None`: `[egress] enabled = false`.
    pub egress: Option<AppliedEgress>,
    /// `None`: `[egress] shape_clients = false`.
    pub shaping: Option<ShapingPlan>,
}

/// The exit policy in force. JSON: `{"egress": {…}, "shaping": {…}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExitView {
    pub egress: EgressView,
    pub shaping: ShapingView,
}

/// The nftables filter on forwarded client traffic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EgressView {
    /// `false`: clients reach everything this host reaches; the lists
    /// below are then empty.
    pub enabled: bool,
    /// The data-plane interface clients arrive on.
    pub interface: Option<String>,
    /// Clients' tunnel addresses, masqueraded on the way out.
    pub tunnel_subnet: Option<String>,
    /// Where client traffic leaves (masqueraded).
    pub uplink: Option<String>,
    /// Client-to-client traffic is dropped.
    pub client_to_client_blocked: bool,
    /// Destinations dropped (v4 and v6 CIDRs) unless in `allowed_exceptions`.
    pub blocked_ranges: Vec<String>,
    /// `egress.allow`: exempt from `blocked_ranges`.
    pub allowed_exceptions: Vec<String>,
    /// TCP and UDP destination ports dropped (SMTP's 25 among them unless
    /// allowed).
    pub blocked_ports: Vec<u16>,
    /// Outbound TCP 25 is dropped.
    pub smtp_blocked: bool,
}

/// Per-client rate limits (tc HTB, keyed on the tunnel address).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ShapingView {
    pub enabled: bool,
    /// Each client's guaranteed rate, kbit/s, each direction.
    pub per_client_kbit: Option<u64>,
    /// The most one client gets when others are idle (the whole capacity).
    pub per_client_ceiling_kbit: Option<u64>,
    /// All clients together.
    pub total_kbit: Option<u64>,
}

/// The view of `input`.
pub fn view(input: &ExitInput) -> ExitView {
    let egress = match &input.egress {
        Some(AppliedEgress { policy, uplink }) => EgressView {
            enabled: true,
            interface: Some(policy.iface.clone()),
            tunnel_subnet: Some(policy.tunnel_subnet.to_string()),
            uplink: Some(uplink.clone()),
            client_to_client_blocked: true,
            blocked_ranges: BLOCKED_V4
                .iter()
                .chain(BLOCKED_V6)
                .map(|r| r.to_string())
                .collect(),
            allowed_exceptions: policy.allow.iter().map(|n| n.to_string()).collect(),
            blocked_ports: policy.blocked_ports.clone(),
            smtp_blocked: policy.blocked_ports.contains(&SMTP_PORT),
        },
        None => EgressView {
            enabled: false,
            interface: None,
            tunnel_subnet: None,
            uplink: None,
            client_to_client_blocked: false,
            blocked_ranges: Vec::new(),
            allowed_exceptions: Vec::new(),
            blocked_ports: Vec::new(),
            smtp_blocked: false,
        },
    };
    let shaping = match &input.shaping {
        Some(plan) => ShapingView {
            enabled: true,
            per_client_kbit: Some(plan.share_kbit),
            per_client_ceiling_kbit: Some(plan.capacity_kbit),
            total_kbit: Some(plan.capacity_kbit),
        },
        None => ShapingView {
            enabled: false,
            per_client_kbit: None,
            per_client_ceiling_kbit: None,
            total_kbit: None,
        },
    };
    ExitView { egress, shaping }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::provider::egress::EgressFile;

    /// The packaged default with one allowed range and IRC blocked, on
    /// 20 Mbit/s shared by 4 clients.
    pub fn input() -> ExitInput {
        let file = EgressFile {
            allow: vec!["192.168.7.0/24".into()],
            block_ports: vec![6667],
            ..EgressFile::default()
        };
        let policy = file
            .policy("flowshield0", "10.77.0.0/24")
            .unwrap()
            .expect("enabled");
        ExitInput {
            egress: Some(AppliedEgress {
                policy,
                uplink: "eth0".into(),
            }),
            shaping: Some(
                ShapingPlan::new("flowshield0", "10.77.0.0/24".parse().unwrap(), 20, 4).unwrap(),
            ),
        }
    }

    #[test]
    fn the_policy_in_force_is_shown_in_full() {
        let exit = view(&input());
        let e = &exit.egress;
        assert!(e.enabled && e.client_to_client_blocked && e.smtp_blocked);
        assert_eq!(e.uplink.as_deref(), Some("eth0"));
        assert_eq!(e.tunnel_subnet.as_deref(), Some("10.77.0.0/24"));
        for range in ["169.254.0.0/16", "10.0.0.0/8", "100.64.0.0/10", "fe80::/10"] {
            assert!(e.blocked_ranges.iter().any(|r| r == range), "{range}");
        }
        assert_eq!(e.allowed_exceptions, ["192.168.7.0/24"]);
        assert_eq!(e.blocked_ports, [25, 6667]);
        let s = &exit.shaping;
        assert!(s.enabled);
        assert_eq!(s.per_client_kbit, Some(5_000));
        assert_eq!(s.per_client_ceiling_kbit, Some(20_000));
        assert_eq!(s.total_kbit, Some(20_000));
    }

    #[test]
    fn smtp_allowed_and_everything_off_are_said_plainly() {
        let file = EgressFile {
            allow_smtp: true,
            ..EgressFile::default()
        };
        let policy = file.policy("fs0", "10.9.0.0/24").unwrap().unwrap();
        let exit = view(&ExitInput {
            egress: Some(AppliedEgress {
                policy,
                uplink: "ens3".into(),
            }),
            shaping: None,
        });
        assert!(!exit.egress.smtp_blocked);
        assert!(exit.egress.blocked_ports.is_empty());
        assert!(!exit.shaping.enabled && exit.shaping.per_client_kbit.is_none());

        let off = view(&ExitInput {
            egress: None,
            shaping: None,
        });
        assert!(!off.egress.enabled && !off.egress.client_to_client_blocked);
        assert!(off.egress.blocked_ranges.is_empty() && !off.egress.smtp_blocked);
        let json = serde_json::to_value(&off).unwrap();
        assert_eq!(json["egress"]["enabled"], false);
        assert_eq!(json["shaping"]["per_client_kbit"], serde_json::Value::Null);
    }
}
