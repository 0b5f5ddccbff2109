//! The nftables ruleset text for an [`EgressPolicy`] (sans-IO: fed to
//! `nft -f -` by [`super::Egress`]). Everything lives in one table of its
//! own, `inet flowshield_<iface>`, so the host's other rules are never
//! touched and removal is one `delete table`. Each ruleset first creates
//! and deletes that table, so applying it replaces whatever an earlier
//! (perhaps killed) provider left, in one atomic transaction.

use super::policy::{EgressPolicy, BLOCKED_V4, BLOCKED_V6};
use ipnet::IpNet;
use std::fmt::Write as _;

/// `flowshield_<iface>`, with characters nft identifiers do not take
/// replaced by '_'.
pub fn table_name(iface: &str) -> String {
    let safe: String = iface
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("flowshield_{safe}")
}

/// Text that deletes the table if it exists (and does nothing otherwise).
pub fn removal(iface: &str) -> String {
    let table = table_name(iface);
    format!("table inet {table} {{}}\ndelete table inet {table}\n")
}

fn elements(nets: impl IntoIterator<Item = String>) -> String {
    let list: Vec<String> = nets.into_iter().collect();
    if list.is_empty() {
        String::new()
    } else {
        format!(" elements = {{ {} }};", list.join(", "))
    }
}

/// The whole ruleset for `policy`, masquerading through `uplink`.
pub fn ruleset(policy: &EgressPolicy, uplink: &str) -> String {
    let table = table_name(&policy.iface);
    let iface = &policy.iface;
    let subnet = policy.tunnel_subnet;
    let (allow4, allow6): (Vec<IpNet>, Vec<IpNet>) =
        policy.allow.iter().partition(|n| matches!(n, IpNet::V4(_)));
    let mut out = removal(&policy.iface);
    let _ = writeln!(out, "table inet {table} {{");
    let _ = writeln!(
        out,
        "  set blocked4 {{ type ipv4_addr; flags interval;{} }}",
        elements(BLOCKED_V4.iter().map(|s| s.to_string()))
    );
    let _ = writeln!(
        out,
        "  set blocked6 {{ type ipv6_addr; flags interval;{} }}",
        elements(BLOCKED_V6.iter().map(|s| s.to_string()))
    );
    let _ = writeln!(
        out,
        "  set allow4 {{ type ipv4_addr; flags interval;{} }}",
        elements(allow4.iter().map(IpNet::to_string))
    );
    let _ = writeln!(
        out,
        "  set allow6 {{ type ipv6_addr; flags interval;{} }}",
        elements(allow6.iter().map(IpNet::to_string))
    );
    // Forwarded traffic from clients: to other clients, to blocked ports,
    // to blocked ranges (unless allowed) is dropped.
    let _ = writeln!(out, "  chain forward {{");
    let _ = writeln!(
        out,
        "    type filter hook forward priority filter; policy accept;"
    );
    let _ = writeln!(out, "    iifname \"{iface}\" oifname \"{iface}\" drop");
    if !policy.blocked_ports.is_empty() {
        let ports: Vec<String> = policy.blocked_ports.iter().map(u16::to_string).collect();
        let _ = writeln!(
            out,
            "    iifname \"{iface}\" meta l4proto {{ tcp, udp }} th dport {{ {} }} drop",
            ports.join(", ")
        );
    }
    let _ = writeln!(out, "    iifname \"{iface}\" ip daddr @allow4 accept");
    let _ = writeln!(out, "    iifname \"{iface}\" ip6 daddr @allow6 accept");
    let _ = writeln!(out, "    iifname \"{iface}\" ip daddr @blocked4 drop");
    let _ = writeln!(out, "    iifname \"{iface}\" ip6 daddr @blocked6 drop");
    let _ = writeln!(out, "  }}");
    // Traffic from clients to this host itself: its tunnel address (probe
    // responders, DNS on the tunnel) stays reachable, its other private
    // addresses (the LAN side, loopback services) do not.
    let _ = writeln!(out, "  chain input {{");
    let _ = writeln!(
        out,
        "    type filter hook input priority filter; policy accept;"
    );
    let _ = writeln!(out, "    iifname \"{iface}\" ip daddr {subnet} accept");
    let _ = writeln!(out, "    iifname \"{iface}\" ip daddr @allow4 accept");
    let _ = writeln!(out, "    iifname \"{iface}\" ip6 daddr @allow6 accept");
    let _ = writeln!(out, "    iifname \"{iface}\" ip daddr @blocked4 drop");
    let _ = writeln!(out, "    iifname \"{iface}\" ip6 daddr @blocked6 drop");
    let _ = writeln!(out, "  }}");
    let _ = writeln!(out, "  chain postrouting {{");
    let _ = writeln!(
        out,
        "    type nat hook postrouting priority srcnat; policy accept;"
    );
    let _ = writeln!(out, "    oifname \"{uplink}\" ip saddr {subnet} masquerade");
    let _ = writeln!(out, "  }}");
    let _ = writeln!(out, "}}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::egress::EgressFile;

    fn policy(toml_text: &str) -> EgressPolicy {
        toml::from_str::<EgressFile>(toml_text)
            .unwrap()
            .policy("fs-0", "10.77.0.0/24")
            .unwrap()
            .unwrap()
    }

    #[test]
    fn table_is_named_after_the_interface() {
        assert_eq!(table_name("fs-0.1"), "flowshield_fs_0_1");
        assert_eq!(
            removal("fs0"),
            "table inet flowshield_fs0 {}\ndelete table inet flowshield_fs0\n"
        );
    }

    #[test]
    fn replaces_its_own_table_first() {
        let text = ruleset(&policy(""), "eth0");
        assert!(text.starts_with(&removal("fs-0")), "{text}");
        assert_eq!(text.matches("table inet flowshield_fs_0 {\n").count(), 1);
    }

    #[test]
    fn default_policy_drops_what_the_issue_lists() {
        let text = ruleset(&policy(""), "eth0");
        let must = [
            "iifname \"fs-0\" oifname \"fs-0\" drop",
            "th dport { 25 } drop",
            "10.0.0.0/8",
            "172.16.0.0/12",
            "192.168.0.0/16",
            "100.64.0.0/10",
            "127.0.0.0/8",
            "169.254.0.0/16",
            "224.0.0.0/4",
            "fc00::/7",
            "fe80::/10",
            "ff00::/8",
            "::1/128",
            "iifname \"fs-0\" ip daddr @blocked4 drop",
            "iifname \"fs-0\" ip6 daddr @blocked6 drop",
            "oifname \"eth0\" ip saddr 10.77.0.0/24 masquerade",
            "iifname \"fs-0\" ip daddr 10.77.0.0/24 accept",
        ];
        for rule in must {
            assert!(text.contains(rule), "missing {rule:?} in\n{text}");
        }
        // Nothing allowed by default: the allow sets are empty.
        assert!(
            text.contains("set allow4 { type ipv4_addr; flags interval; }"),
            "{text}"
        );
    }

    #[test]
    fn allow_list_and_ports_come_before_the_blocked_ranges() {
        let text = ruleset(
            &policy(
                r#"allow = ["192.168.7.0/24", "fd12::/16"]
block_ports = [6667]
allow_smtp = true"#,
            ),
            "wan0",
        );
        assert!(
            text.contains(
                "set allow4 { type ipv4_addr; flags interval; elements = { 192.168.7.0/24 }; }"
            ),
            "{text}"
        );
        assert!(text.contains("elements = { fd12::/16 }"), "{text}");
        assert!(text.contains("th dport { 6667 } drop"), "{text}");
        assert!(!text.contains(" 25 "), "{text}");
        let forward = &text[text.find("chain forward").unwrap()..];
        let client_to_client = forward.find("oifname \"fs-0\" drop").unwrap();
        let ports = forward.find("th dport").unwrap();
        let allow = forward.find("@allow4 accept").unwrap();
        let block = forward.find("@blocked4 drop").unwrap();
        assert!(
            client_to_client < allow && ports < allow && allow < block,
            "{forward}"
        );
    }

    #[test]
    fn no_ports_no_port_rule() {
        let text = ruleset(&policy("allow_smtp = true"), "eth0");
        assert!(!text.contains("th dport"), "{text}");
    }
}
