//! The `[egress]` table of provider.toml, validated into an
//! [`EgressPolicy`]: what clients may not reach through this host.

use ipnet::{IpNet, Ipv4Net};
use serde::Deserialize;

/// The `[egress]` table (see [`crate::provider::ProviderFile`]).
///
/// ```toml
/// [egress]
/// enabled = true          # default: on
/// uplink = "eth0"         # default: the interface of the default route
/// allow = ["192.168.7.0/24"]   # exempt from the blocked ranges
/// block_ports = [6667]    # TCP and UDP destination ports also dropped
/// allow_smtp = false      # default: outbound TCP 25 dropped
/// shape_clients = true    # default: per-client tc limits (crate::provider::shaping)
/// ```
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct EgressFile {
    pub enabled: bool,
    pub uplink: Option<String>,
    pub allow: Vec<String>,
    pub block_ports: Vec<u16>,
    pub allow_smtp: bool,
    /// Per-client rate limits at the offer's capacity (independent of
    /// `enabled`).
    pub shape_clients: bool,
}

impl Default for EgressFile {
    fn default() -> Self {
        Self {
            enabled: true,
            uplink: None,
            allow: Vec::new(),
            block_ports: Vec::new(),
            allow_smtp: false,
            shape_clients: true,
        }
    }
}

/// Bad `[egress]` input: the field and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct PolicyError {
    pub field: String,
    pub reason: String,
}

fn bad(field: impl Into<String>, reason: impl Into<String>) -> PolicyError {
    PolicyError {
        field: field.into(),
        reason: reason.into(),
    }
}

/// Destinations no client reaches through this host unless allowed: this
/// network, private (RFC 1918), CGNAT, loopback, link-local (with the cloud
/// metadata address 169.254.169.254), IETF protocol assignments,
/// multicast, reserved and broadcast.
pub const BLOCKED_V4: &[&str] = &[
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.168.0.0/16",
    "224.0.0.0/4",
    "240.0.0.0/4",
];

/// The same for IPv6: unspecified, loopback, IPv4-mapped (a way around the
/// IPv4 list), unique local, link-local, multicast.
pub const BLOCKED_V6: &[&str] = &[
    "::/128",
    "::1/128",
    "::ffff:0:0/96",
    "fc00::/7",
    "fe80::/10",
    "ff00::/8",
];

/// Outbound SMTP, dropped unless `allow_smtp` (spam from the provider's IP).
pub const SMTP_PORT: u16 = 25;

/// Where forwarded traffic leaves and is masqueraded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Uplink {
    /// `egress.uplink`.
    Named(String),
    /// The interface of the default route, looked up at start.
    DefaultRoute,
}

/// What clients may not reach, for one data-plane interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EgressPolicy {
    /// The data-plane interface clients arrive on.
    pub iface: String,
    /// Clients' addresses (masqueraded on the way out).
    pub tunnel_subnet: Ipv4Net,
    pub uplink: Uplink,
    /// Destinations exempt from the blocked ranges.
    pub allow: Vec<IpNet>,
    /// Destination ports dropped (TCP and UDP), sorted, no duplicates.
    pub blocked_ports: Vec<u16>,
}

/// Whether `name` can be a Linux interface name (1–15 bytes, no '/', no
/// whitespace, not "." or ".."): it is written into the ruleset.
pub fn check_iface(name: &str) -> Result<(), String> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '@' | ':');
    if name.is_empty() || name.len() > 15 || name == "." || name == ".." {
        return Err(format!(
            "'{name}' is not an interface name (1 to 15 characters)"
        ));
    }
    if !name.chars().all(ok_char) {
        return Err(format!(
            "'{name}' is not an interface name (letters, digits, _ - . @ : only)"
        ));
    }
    Ok(())
}

impl EgressFile {
    /// The policy for `iface` handing out `tunnel_subnet`; `None` when
    /// `enabled = false`. Errors name the field (`egress.allow[1]`, ...).
    pub fn policy(
        &self,
        iface: &str,
        tunnel_subnet: &str,
    ) -> Result<Option<EgressPolicy>, PolicyError> {
        if !self.enabled {
            return Ok(None);
        }
        check_iface(iface).map_err(|e| bad("interface", e))?;
        let tunnel_subnet: Ipv4Net = tunnel_subnet
            .parse()
            .map_err(|e| bad("tunnel_subnet", format!("{e}")))?;
        let uplink = match &self.uplink {
            Some(name) => {
                check_iface(name).map_err(|e| bad("egress.uplink", e))?;
                if name == iface {
                    return Err(bad("egress.uplink", "is the data-plane interface itself"));
                }
                Uplink::Named(name.clone())
            }
            None => Uplink::DefaultRoute,
        };
        let allow = self
            .allow
            .iter()
            .enumerate()
            .map(|(i, text)| {
                text.trim()
                    .parse::<IpNet>()
                    .map(|net| net.trunc())
                    .map_err(|e| {
                        bad(
                            format!("egress.allow[{i}]"),
                            format!("'{text}': {e} (want a CIDR such as 192.168.7.0/24)"),
                        )
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut blocked_ports = Vec::new();
        for (i, port) in self.block_ports.iter().enumerate() {
            if *port == 0 {
                return Err(bad(
                    format!("egress.block_ports[{i}]"),
                    "port 0 is not a port",
                ));
            }
            blocked_ports.push(*port);
        }
        if !self.allow_smtp {
            blocked_ports.push(SMTP_PORT);
        }
        blocked_ports.sort_unstable();
        blocked_ports.dedup();
        Ok(Some(EgressPolicy {
            iface: iface.to_string(),
            tunnel_subnet,
            uplink,
            allow,
            blocked_ports,
        }))
    }
}

/// The interface of the first default route in `ip -o route show default`
/// output ("default via 203.0.113.1 dev eth0 proto static ...").
pub fn default_route_dev(ip_route: &str) -> Option<String> {
    ip_route
        .lines()
        .filter(|line| line.trim_start().starts_with("default"))
        .find_map(|line| {
            let mut words = line.split_whitespace();
            words.find(|w| *w == "dev")?;
            words.next().map(str::to_string)
        })
}

impl std::fmt::Display for EgressPolicy {
    /// One line for the log and the dashboard.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let uplink = match &self.uplink {
            Uplink::Named(name) => name.clone(),
            Uplink::DefaultRoute => "default route".into(),
        };
        let ports: Vec<String> = self.blocked_ports.iter().map(u16::to_string).collect();
        let allow: Vec<String> = self.allow.iter().map(IpNet::to_string).collect();
        write!(
            f,
            "egress filter on {}: masquerade {} via {uplink}; dropped: client to client, private/loopback/link-local (169.254.169.254)/CGNAT/multicast v4+v6, ports [{}]; allowed: [{}]",
            self.iface,
            self.tunnel_subnet,
            ports.join(", "),
            allow.join(", ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(toml_text: &str) -> EgressFile {
        toml::from_str(toml_text).expect("egress table")
    }

    #[test]
    fn on_by_default_with_smtp_blocked() {
        let policy = EgressFile::default()
            .policy("flowshield0", "10.77.0.0/16")
            .unwrap()
            .expect("enabled by default");
        assert_eq!(policy.blocked_ports, [25]);
        assert_eq!(policy.uplink, Uplink::DefaultRoute);
        assert!(policy.allow.is_empty());
        assert_eq!(policy.tunnel_subnet.to_string(), "10.77.0.0/16");
    }

    #[test]
    fn disabled_gives_no_policy() {
        let f = file("enabled = false");
        assert_eq!(f.policy("flowshield0", "10.77.0.0/16").unwrap(), None);
    }

    #[test]
    fn configured_values_are_kept() {
        let f = file(
            r#"uplink = "eth1"
allow = ["192.168.7.9/24", "fd00::/8"]
block_ports = [6667, 25, 6667]
allow_smtp = true"#,
        );
        let p = f.policy("fs0", "10.77.0.0/24").unwrap().unwrap();
        assert_eq!(p.uplink, Uplink::Named("eth1".into()));
        assert_eq!(
            p.allow.iter().map(|n| n.to_string()).collect::<Vec<_>>(),
            ["192.168.7.0/24", "fd00::/8"]
        );
        // 25 is blocked because the operator listed it, not by default.
        assert_eq!(p.blocked_ports, [25, 6667]);
        let p = file("allow_smtp = true")
            .policy("fs0", "10.77.0.0/24")
            .unwrap()
            .unwrap();
        assert!(p.blocked_ports.is_empty());
    }

    #[test]
    fn bad_input_names_the_field() {
        let err = file(r#"allow = ["10.0.0.0/8", "nonsense"]"#)
            .policy("fs0", "10.77.0.0/24")
            .unwrap_err();
        assert_eq!(err.field, "egress.allow[1]");
        assert!(err.reason.contains("nonsense"), "{err}");
        let err = file("block_ports = [0]")
            .policy("fs0", "10.77.0.0/24")
            .unwrap_err();
        assert_eq!(err.field, "egress.block_ports[0]");
        let err = file(r#"uplink = "eth0; drop""#)
            .policy("fs0", "10.77.0.0/24")
            .unwrap_err();
        assert_eq!(err.field, "egress.uplink");
        let err = file(r#"uplink = "fs0""#)
            .policy("fs0", "10.77.0.0/24")
            .unwrap_err();
        assert_eq!(err.field, "egress.uplink");
        let err = EgressFile::default()
            .policy("a\"b", "10.77.0.0/24")
            .unwrap_err();
        assert_eq!(err.field, "interface");
        let err = EgressFile::default()
            .policy("fs0", "10.77.0.0/33")
            .unwrap_err();
        assert_eq!(err.field, "tunnel_subnet");
        // Unknown keys and wrong types are refused by the loader.
        assert!(toml::from_str::<EgressFile>("allow_smpt = true").is_err());
        assert!(toml::from_str::<EgressFile>("block_ports = [70000]").is_err());
    }

    #[test]
    fn finds_the_default_route_device() {
        let out = "default via 203.0.113.1 dev eth0 proto dhcp src 203.0.113.7 metric 100\n";
        assert_eq!(default_route_dev(out).as_deref(), Some("eth0"));
        assert_eq!(
            default_route_dev("default dev ppp0 scope link\n").as_deref(),
            Some("ppp0")
        );
        assert_eq!(default_route_dev(""), None);
        assert_eq!(
            default_route_dev("10.0.0.0/8 via 10.0.0.1 dev eth1\n"),
            None
        );
    }

    #[test]
    fn display_lists_the_policy() {
        let p = file(
            r#"uplink = "eth1"
allow = ["192.168.7.0/24"]"#,
        )
        .policy("fs0", "10.77.0.0/24")
        .unwrap()
        .unwrap();
        let text = p.to_string();
        for part in [
            "fs0",
            "eth1",
            "10.77.0.0/24",
            "ports [25]",
            "192.168.7.0/24",
            "169.254.169.254",
        ] {
            assert!(text.contains(part), "{part} missing from {text}");
        }
    }
}
