//! The client's underlay: what must keep flowing outside the tunnel (the
//! provider's endpoint, the fullnodes, the chain RPC, the bootstrap peers,
//! loopback, the LAN and the default gateway). A provider's tunnel address
//! or AllowedIPs covering any of it would hijack or loop the client's own
//! traffic ([`super::checks::check_routes`]). Parsing is sans-IO; [`collect`]
//! reads `/proc/net/route`.

use ipnet::{IpNet, Ipv4Net};
use std::net::{IpAddr, Ipv4Addr};

/// The IPv4 routes of a `/proc/net/route` text, except those through
/// `skip_iface` (the client's own tunnel): a default route contributes its
/// gateway, any other route its destination network. Unreadable lines are
/// skipped (the kernel writes this file).
pub fn parse_proc_route(text: &str, skip_iface: &str) -> Vec<IpNet> {
    let hex_addr = |field: &str| {
        u32::from_str_radix(field, 16)
            .ok()
            .map(|v| Ipv4Addr::from(v.swap_bytes()))
    };
    let mut nets = Vec::new();
    for line in text.lines().skip(1) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [iface, dest, gateway, _, _, _, _, mask, ..] = fields.as_slice() else {
            continue;
        };
        if *iface == skip_iface {
            continue;
        }
        let (Some(dest), Some(gateway), Some(mask)) =
            (hex_addr(dest), hex_addr(gateway), hex_addr(mask))
        else {
            continue;
        };
        let prefix = u32::from(mask).leading_ones() as u8;
        if prefix == 0 {
            if !gateway.is_unspecified() {
                nets.push(IpNet::from(IpAddr::V4(gateway)));
            }
        } else if let Ok(net) = Ipv4Net::new(dest, prefix) {
            nets.push(IpNet::V4(net.trunc()));
        }
    }
    nets
}

/// The IP of a URL's host, when it is written as an address.
pub fn url_ip(url: &str) -> Option<IpAddr> {
    let url = reqwest::Url::parse(url).ok()?;
    url.host_str()?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()
}

/// Every underlay route the client knows of: `fixed` (endpoints, fullnode
/// and chain addresses, bootstrap peers, as /32 or /128), loopback, and
/// the host's IPv4 routes except those through `tunnel_iface`.
pub fn collect(fixed: &[IpAddr], tunnel_iface: &str) -> Vec<IpNet> {
    let mut nets: Vec<IpNet> = fixed.iter().map(|ip| IpNet::from(*ip)).collect();
    nets.push(IpNet::V4(
        Ipv4Net::new(Ipv4Addr::LOCALHOST, 8).expect("/8 is a valid prefix"),
    ));
    match std::fs::read_to_string("/proc/net/route") {
        Ok(text) => nets.extend(parse_proc_route(&text, tunnel_iface)),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read /proc/net/route; checking against known addresses only")
        }
    }
    nets
}

/// The IP addresses in a multiaddr (`/ip4/…`, `/ip6/…`).
pub fn multiaddr_ips(addr: &libp2p::Multiaddr) -> impl Iterator<Item = IpAddr> + '_ {
    addr.iter().filter_map(|p| match p {
        libp2p::multiaddr::Protocol::Ip4(v4) => Some(IpAddr::V4(v4)),
        libp2p::multiaddr::Protocol::Ip6(v6) => Some(IpAddr::V6(v6)),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_kernel_routes_but_not_the_tunnel_own() {
        let text =
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
eth0\t00000000\t0100FA0A\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
eth0\t0000FA0A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n\
fsclient0\t00004D0A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n\
garbage\n";
        let nets = parse_proc_route(text, "fsclient0");
        assert_eq!(
            nets,
            vec![
                "10.250.0.1/32".parse::<IpNet>().unwrap(),
                "10.250.0.0/24".parse().unwrap(),
            ]
        );
        assert_eq!(
            url_ip("http://10.250.0.1:8101/x"),
            Some("10.250.0.1".parse().unwrap())
        );
        assert_eq!(url_ip("http://[::1]:8545"), Some("::1".parse().unwrap()));
        assert_eq!(url_ip("http://fullnode.example:8101"), None);
        let addr: libp2p::Multiaddr = "/ip4/10.250.0.2/tcp/4101".parse().unwrap();
        assert_eq!(
            multiaddr_ips(&addr).collect::<Vec<_>>(),
            vec!["10.250.0.2".parse::<IpAddr>().unwrap()]
        );
    }
}
