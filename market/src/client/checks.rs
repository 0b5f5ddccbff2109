//! What the client checks before it trusts a provider's `Connected`
//! answer (sans-IO): the order on chain is Active and the chosen
//! provider's ([`check_order`]), the WireGuard key is the one the provider
//! registered on chain ([`check_provider_key`]), and the tunnel address and
//! routes stay inside the provider's tunnel subnet (plus the routes the
//! client asked for) and away from the client's underlay ([`check_routes`]).
//! A provider that fails any of them is refused before the tunnel exists.

use crate::wire::session::ConnectedInfo;
use flowshield_chain::alloy::primitives::Address;
use flowshield_chain::OrderStatus;
use flowshield_proto::{TunnelSubnet, WgPublicKey};
use ipnet::IpNet;

/// Shortest prefix accepted for the client's tunnel network when the offer
/// does not advertise its subnet (a provider's pool is /8 to /30).
pub const MIN_TUNNEL_PREFIX: u8 = 8;

/// A provider's answer the client refuses, naming the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct Distrust {
    pub field: &'static str,
    pub reason: String,
}

fn distrust(field: &'static str, reason: impl Into<String>) -> Distrust {
    Distrust {
        field,
        reason: reason.into(),
    }
}

/// The order as the chain holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderOnChain {
    pub client: Address,
    pub provider: Address,
    pub status: OrderStatus,
}

/// The order must be ours, with the provider we chose, and accepted by it.
pub fn check_order(order: &OrderOnChain, me: Address, chosen: Address) -> Result<(), Distrust> {
    if order.client != me {
        return Err(distrust(
            "order.client",
            format!("the order belongs to {}, not to us ({me})", order.client),
        ));
    }
    if order.provider != chosen {
        return Err(distrust(
            "order.provider",
            format!(
                "the order is with {}, not with the chosen provider {chosen}",
                order.provider
            ),
        ));
    }
    if order.status != OrderStatus::Active {
        return Err(distrust(
            "order.status",
            format!(
                "{:?}, not Active: the provider answered Connected without accepting the order on chain",
                order.status
            ),
        ));
    }
    Ok(())
}

/// The key in `Connected` must be the one the provider registered on chain.
pub fn check_provider_key(registered: [u8; 32], connected: &WgPublicKey) -> Result<(), Distrust> {
    if registered != connected.0 {
        return Err(distrust(
            "provider_wg_public_key",
            format!(
                "{connected} is not the key the provider registered on chain (wgPublicKey {})",
                WgPublicKey(registered)
            ),
        ));
    }
    Ok(())
}

/// What a provider's addresses and routes are checked against.
#[derive(Debug, Clone, Copy)]
pub struct RouteRules<'a> {
    /// The provider's advertised tunnel subnet (older offers have none).
    pub subnet: Option<TunnelSubnet>,
    /// Routes the client asked for besides the provider's subnet.
    pub requested: &'a [IpNet],
    /// What must keep going over the client's underlay: the provider's
    /// endpoint, fullnodes, chain RPC, the LAN and default gateway.
    pub underlay: &'a [IpNet],
}

/// Whether `a` and `b` share any address.
fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

fn inside_subnet(subnet: &TunnelSubnet, net: &IpNet) -> bool {
    match net {
        IpNet::V4(v4) => v4.prefix_len() >= subnet.prefix() && subnet.contains(v4.network()),
        IpNet::V6(_) => false,
    }
}

/// Checks the tunnel address, the provider's tunnel IP and the AllowedIPs
/// a provider handed over.
pub fn check_routes(info: &ConnectedInfo, rules: &RouteRules<'_>) -> Result<(), Distrust> {
    let address = info.tunnel_address;
    let IpNet::V4(address_v4) = address else {
        return Err(distrust("tunnel_address", format!("{address} is not IPv4")));
    };
    let tunnel_net = address.trunc();
    match rules.subnet {
        Some(subnet) if !inside_subnet(&subnet, &tunnel_net) => {
            return Err(distrust(
                "tunnel_address",
                format!("{address} is not inside the provider's advertised subnet {subnet}"),
            ));
        }
        None if address_v4.prefix_len() < MIN_TUNNEL_PREFIX => {
            return Err(distrust(
                "tunnel_address",
                format!("{address} is wider than /{MIN_TUNNEL_PREFIX}"),
            ));
        }
        _ => {}
    }
    let ip = address_v4.addr();
    if ip == address_v4.network() || ip == address_v4.broadcast() {
        return Err(distrust(
            "tunnel_address",
            format!("{address} is not a host address of its network"),
        ));
    }
    if let Some(under) = rules.underlay.iter().find(|u| overlaps(u, &tunnel_net)) {
        return Err(distrust(
            "tunnel_address",
            format!("{address} covers the client's underlay route {under}"),
        ));
    }
    let provider_ip = info.provider_tunnel_ip;
    if !address_v4.contains(&provider_ip) || provider_ip == ip {
        return Err(distrust(
            "provider_tunnel_ip",
            format!("{provider_ip} is not another host of the tunnel network {tunnel_net}"),
        ));
    }
    if info.allowed_ips.is_empty() {
        return Err(distrust("allowed_ips", "empty"));
    }
    let home = rules
        .subnet
        .map(|s| format!("the provider's subnet {s}"))
        .unwrap_or_else(|| format!("the tunnel network {tunnel_net}"));
    for net in &info.allowed_ips {
        let in_home = match rules.subnet {
            Some(subnet) => inside_subnet(&subnet, net),
            None => tunnel_net.contains(net),
        };
        if !in_home && !rules.requested.iter().any(|r| r.contains(net)) {
            return Err(distrust(
                "allowed_ips",
                format!("{net} is outside {home} and the routes the client asked for"),
            ));
        }
        if let Some(under) = rules.underlay.iter().find(|u| overlaps(u, net)) {
            return Err(distrust(
                "allowed_ips",
                format!("{net} covers the client's underlay route {under}"),
            ));
        }
    }
    if !info
        .allowed_ips
        .iter()
        .any(|n| n.contains(&IpNet::from(std::net::IpAddr::V4(provider_ip))))
    {
        return Err(distrust(
            "allowed_ips",
            format!("no entry reaches the provider's tunnel IP {provider_ip}"),
        ));
    }
    Ok(())
}

#[cfg(test)]
#[path = "checks_tests.rs"]
mod tests;
