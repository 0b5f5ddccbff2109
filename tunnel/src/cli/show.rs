//! `flowshield show`: `wg show`-style text, or JSON for programs.

use flowshield_tunnel::uapi::{client, Counters, DeviceSnapshot, PeerSnapshot};
use serde_json::{json, Value};
use std::time::{SystemTime, UNIX_EPOCH};

pub fn show(target: Option<&str>, as_json: bool) -> anyhow::Result<()> {
    let target = target.unwrap_or("all");
    if target == "interfaces" {
        println!("{}", client::list_interfaces().join(" "));
        return Ok(());
    }
    let names = if target == "all" {
        client::list_interfaces()
    } else {
        super::check_iface_name(target)?;
        vec![target.to_string()]
    };
    let mut shown = Vec::new();
    for name in &names {
        let snap = client::get(name)?;
        let counters = client::stats(name).unwrap_or_default();
        shown.push((name, snap, counters));
    }
    if as_json {
        let values: Vec<Value> = shown.iter().map(|(n, s, c)| to_json(n, s, c)).collect();
        let out = if target == "all" {
            Value::Array(values)
        } else {
            values.into_iter().next().unwrap_or(Value::Null)
        };
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        let texts: Vec<String> = shown.iter().map(|(n, s, c)| to_text(n, s, c)).collect();
        print!("{}", texts.join("\n"));
    }
    Ok(())
}

fn to_json(iface: &str, snap: &DeviceSnapshot, counters: &Counters) -> Value {
    let peers: Vec<Value> = snap
        .peers
        .iter()
        .map(|p| {
            json!({
                "public_key": p.public_key.to_base64(),
                "preshared_key": p.preshared_key.is_some(),
                "endpoint": p.endpoint.map(|e| e.to_string()),
                "allowed_ips": p.allowed_ips.iter().map(|n| n.to_string()).collect::<Vec<_>>(),
                "latest_handshake": p.last_handshake.0,
                "rx_bytes": p.rx_bytes,
                "tx_bytes": p.tx_bytes,
                "persistent_keepalive": p.persistent_keepalive,
            })
        })
        .collect();
    json!({
        "interface": iface,
        "public_key": snap.private_key.as_ref().map(|k| k.public_key().to_base64()),
        "listen_port": snap.listen_port,
        "fwmark": snap.fwmark,
        "counters": counters,
        "peers": peers,
    })
}

fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.2} {}", UNITS[unit])
    }
}

fn ago(secs: u64) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(secs);
    let mut left = now.saturating_sub(secs);
    if left == 0 {
        return "Now".into();
    }
    let mut parts = Vec::new();
    for (unit, size) in [
        ("day", 86400),
        ("hour", 3600),
        ("minute", 60),
        ("second", 1),
    ] {
        let n = left / size;
        left %= size;
        if n > 0 {
            parts.push(format!("{n} {unit}{}", if n == 1 { "" } else { "s" }));
        }
    }
    format!("{} ago", parts.join(", "))
}

fn peer_text(p: &PeerSnapshot) -> String {
    let mut out = format!("peer: {}\n", p.public_key);
    if p.preshared_key.is_some() {
        out += "  preshared key: (hidden)\n";
    }
    if let Some(e) = p.endpoint {
        out += &format!("  endpoint: {e}\n");
    }
    let ips: Vec<String> = p.allowed_ips.iter().map(|n| n.to_string()).collect();
    out += &format!(
        "  allowed ips: {}\n",
        if ips.is_empty() {
            "(none)".into()
        } else {
            ips.join(", ")
        }
    );
    if p.last_handshake.0 > 0 {
        out += &format!("  latest handshake: {}\n", ago(p.last_handshake.0));
    }
    if p.rx_bytes > 0 || p.tx_bytes > 0 {
        out += &format!(
            "  transfer: {} received, {} sent\n",
            bytes(p.rx_bytes),
            bytes(p.tx_bytes)
        );
    }
    if p.persistent_keepalive > 0 {
        out += &format!(
            "  persistent keepalive: every {} seconds\n",
            p.persistent_keepalive
        );
    }
    out
}

fn to_text(iface: &str, snap: &DeviceSnapshot, c: &Counters) -> String {
    let mut out = format!("interface: {iface}\n");
    if let Some(k) = &snap.private_key {
        out += &format!(
            "  public key: {}\n  private key: (hidden)\n",
            k.public_key()
        );
    }
    if snap.listen_port > 0 {
        out += &format!("  listening port: {}\n", snap.listen_port);
    }
    if snap.fwmark > 0 {
        out += &format!("  fwmark: 0x{:x}\n", snap.fwmark);
    }
    let dropped = c.malformed_packets + c.unknown_peer_packets + c.disallowed_source_packets;
    if dropped > 0 {
        out += &format!(
            "  dropped: {} malformed, {} unknown peer, {} disallowed source\n",
            c.malformed_packets, c.unknown_peer_packets, c.disallowed_source_packets
        );
    }
    // Most recent handshake first, as `wg show` sorts.
    let mut peers: Vec<&PeerSnapshot> = snap.peers.iter().collect();
    peers.sort_by_key(|p| std::cmp::Reverse(p.last_handshake));
    for p in peers {
        out += "\n";
        out += &peer_text(p);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_units() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.50 KiB");
        assert_eq!(bytes(3 << 30), "3.00 GiB");
    }
}
