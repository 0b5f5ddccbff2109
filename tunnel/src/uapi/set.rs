//! Parsing of a `set=1` transaction into a [`SetRequest`], without applying
//! anything. The whole transaction is parsed and validated before the device
//! is touched, so a bad line changes nothing.

use super::UapiError;
use crate::key::{PublicKey, SecretKey};
use ip_network::IpNetwork;
use std::net::{IpAddr, SocketAddr};

/// A parsed `set=1` transaction.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct SetRequest {
    /// `Some(zero key)` removes the private key.
    pub private_key: Option<SecretKey>,
    pub listen_port: Option<u16>,
    /// `Some(0)` removes the mark.
    pub fwmark: Option<u32>,
    pub replace_peers: bool,
    pub peers: Vec<PeerUpdate>,
}

/// Changes to one peer, in the order `public_key=` lines introduced them.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerUpdate {
    pub public_key: PublicKey,
    pub remove: bool,
    pub update_only: bool,
    /// `Some(zero key)` removes the preshared key.
    pub preshared_key: Option<SecretKey>,
    pub endpoint: Option<SocketAddr>,
    pub persistent_keepalive: Option<u16>,
    pub replace_allowed_ips: bool,
    pub allowed_ips: Vec<IpNetwork>,
}

impl PeerUpdate {
    pub fn new(public_key: PublicKey) -> Self {
        Self {
            public_key,
            remove: false,
            update_only: false,
            preshared_key: None,
            endpoint: None,
            persistent_keepalive: None,
            replace_allowed_ips: false,
            allowed_ips: Vec::new(),
        }
    }
}

/// Parses an address with prefix such as `10.0.0.1/24`; host bits are
/// cleared, as the kernel implementation does.
pub fn parse_cidr(text: &str) -> Result<IpNetwork, String> {
    let (addr, prefix) = match text.split_once('/') {
        Some((addr, prefix)) => (addr, Some(prefix)),
        None => (text, None),
    };
    let addr: IpAddr = addr
        .trim()
        .parse()
        .map_err(|_| format!("'{addr}' is not an IP address"))?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let prefix: u8 = match prefix {
        Some(p) => p
            .trim()
            .parse()
            .ok()
            .filter(|p| *p <= max)
            .ok_or_else(|| format!("'{p}' is not a prefix length from 0 to {max}"))?,
        None => max,
    };
    IpNetwork::new_truncate(addr, prefix).map_err(|e| e.to_string())
}

/// Parses `IP:port` or `[IPv6]:port`.
pub fn parse_endpoint(text: &str) -> Result<SocketAddr, String> {
    text.parse::<SocketAddr>()
        .map_err(|_| format!("'{text}' is not IP:port or [IPv6]:port"))
}

fn parse_bool(value: &str) -> Result<bool, String> {
    match value {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(format!("'{value}' is not true or false")),
    }
}

fn parse_num<T: std::str::FromStr>(value: &str, what: &str) -> Result<T, String> {
    // Only plain decimal digits: no sign, no whitespace.
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("'{value}' is not a valid {what}"));
    }
    value
        .parse()
        .map_err(|_| format!("'{value}' is out of range for {what}"))
}

impl SetRequest {
    /// Parses the body lines of a `set=1` request (the `set=1` line itself
    /// and the terminating empty line are not included). `first_line` is the
    /// 1-based number of the first body line, for error messages.
    pub fn parse<'a>(
        lines: impl IntoIterator<Item = &'a str>,
        first_line: usize,
    ) -> Result<Self, UapiError> {
        let mut req = SetRequest::default();
        for (i, line) in lines.into_iter().enumerate() {
            let line_no = first_line + i;
            let (key, value) = line
                .split_once('=')
                // The line is not echoed: it might be a secret pasted without a key.
                .ok_or_else(|| UapiError::invalid(line_no, "", "line is not key=value"))?;
            let err = |msg: String| UapiError::invalid(line_no, key, msg);
            let peer = req.peers.last_mut();
            match (key, peer) {
                ("public_key", _) => {
                    let key = PublicKey::from_hex(value).map_err(|e| err(e.to_string()))?;
                    req.peers.push(PeerUpdate::new(key));
                }
                ("private_key", None) => {
                    req.private_key =
                        Some(SecretKey::from_hex(value).map_err(|e| err(e.to_string()))?);
                }
                ("listen_port", None) => {
                    req.listen_port = Some(parse_num(value, "port").map_err(err)?)
                }
                ("fwmark", None) => req.fwmark = Some(parse_num(value, "fwmark").map_err(err)?),
                ("replace_peers", None) => req.replace_peers = parse_bool(value).map_err(err)?,
                ("remove", Some(p)) => p.remove = parse_bool(value).map_err(err)?,
                ("update_only", Some(p)) => p.update_only = parse_bool(value).map_err(err)?,
                ("preshared_key", Some(p)) => {
                    p.preshared_key =
                        Some(SecretKey::from_hex(value).map_err(|e| err(e.to_string()))?)
                }
                ("endpoint", Some(p)) => p.endpoint = Some(parse_endpoint(value).map_err(err)?),
                ("persistent_keepalive_interval", Some(p)) => {
                    p.persistent_keepalive =
                        Some(parse_num(value, "keepalive interval").map_err(err)?)
                }
                ("replace_allowed_ips", Some(p)) => {
                    p.replace_allowed_ips = parse_bool(value).map_err(err)?
                }
                ("allowed_ip", Some(p)) => p.allowed_ips.push(parse_cidr(value).map_err(err)?),
                ("protocol_version", Some(_)) => {
                    if value != "1" {
                        return Err(err(format!("protocol version '{value}' is not supported")));
                    }
                }
                ("private_key" | "listen_port" | "fwmark" | "replace_peers", Some(_)) => {
                    return Err(err("interface key after a public_key line".into()));
                }
                (
                    "remove"
                    | "update_only"
                    | "preshared_key"
                    | "endpoint"
                    | "persistent_keepalive_interval"
                    | "replace_allowed_ips"
                    | "allowed_ip"
                    | "protocol_version",
                    None,
                ) => {
                    return Err(err("peer key before any public_key line".into()));
                }
                _ => return Err(err("unknown key".into())),
            }
        }
        Ok(req)
    }
}

impl SetRequest {
    /// The request as UAPI text (with the `set=1` line, without the final
    /// empty line), as `wg` would send it.
    pub fn to_uapi(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::from("set=1\n");
        if let Some(key) = &self.private_key {
            let _ = writeln!(out, "private_key={}", key.to_hex());
        }
        if let Some(port) = self.listen_port {
            let _ = writeln!(out, "listen_port={port}");
        }
        if let Some(mark) = self.fwmark {
            let _ = writeln!(out, "fwmark={mark}");
        }
        if self.replace_peers {
            out.push_str("replace_peers=true\n");
        }
        for peer in &self.peers {
            let _ = writeln!(out, "public_key={}", peer.public_key.to_hex());
            if peer.remove {
                out.push_str("remove=true\n");
                continue;
            }
            if peer.update_only {
                out.push_str("update_only=true\n");
            }
            if let Some(psk) = &peer.preshared_key {
                let _ = writeln!(out, "preshared_key={}", psk.to_hex());
            }
            if let Some(endpoint) = peer.endpoint {
                let _ = writeln!(out, "endpoint={endpoint}");
            }
            if let Some(interval) = peer.persistent_keepalive {
                let _ = writeln!(out, "persistent_keepalive_interval={interval}");
            }
            if peer.replace_allowed_ips {
                out.push_str("replace_allowed_ips=true\n");
            }
            for ip in &peer.allowed_ips {
                let _ = writeln!(out, "allowed_ip={ip}");
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<SetRequest, UapiError> {
        SetRequest::parse(text.lines(), 2)
    }

    const PUB: &str = "e84b5a6d2717c1003a13b431570353dbaca9146cf150c5f8575680feba52027a";

    #[test]
    fn parses_full_transaction() {
        let text = format!(
            "private_key=a8dac1d8a70a751f0f699fb14ba1cff7b79cf4fbd8f09f44c6e6a90d0369604f\n\
             listen_port=51820\nfwmark=0\nreplace_peers=true\npublic_key={PUB}\n\
             preshared_key=188515093e952f5f22e865cef3012e72f8b5f0b598ac0309d5dacce3b70fcf52\n\
             replace_allowed_ips=true\nallowed_ip=192.168.4.4/32\nallowed_ip=10.0.0.7/24\n\
             endpoint=[abcd:23::33%2]:51820\n"
        );
        // Scoped IPv6 endpoints (as `wg` writes them) parse.
        let scoped = parse(&text).unwrap();
        assert_eq!(scoped.peers[0].endpoint.unwrap().port(), 51820);
        let bad = text.replace("[abcd:23::33%2]:51820", "abcd:23::33:51820");
        let err = parse(&bad).unwrap_err();
        assert_eq!((err.line, err.key.as_str()), (11, "endpoint"));

        let req = parse(&text).unwrap();
        assert_eq!(req.listen_port, Some(51820));
        assert_eq!(req.fwmark, Some(0));
        assert!(req.replace_peers);
        assert_eq!(req.peers.len(), 1);
        let peer = &req.peers[0];
        assert_eq!(peer.public_key.to_hex(), PUB);
        assert!(peer.replace_allowed_ips);
        assert_eq!(peer.allowed_ips[1].to_string(), "10.0.0.0/24");
        assert_eq!(peer.endpoint.unwrap().port(), 51820);
    }

    #[test]
    fn errors_name_line_and_key() {
        let cases = [
            ("bogus=1", 2, "bogus"),
            ("listen_port=70000", 2, "listen_port"),
            ("listen_port=-1", 2, "listen_port"),
            ("private_key=zz", 2, "private_key"),
            ("allowed_ip=10.0.0.0/24", 2, "allowed_ip"),
            ("no equals sign", 2, ""),
        ];
        for (text, line, key) in cases {
            let err = parse(text).unwrap_err();
            assert_eq!((err.line, err.key.as_str()), (line, key), "case {text}");
            assert_eq!(err.errno, libc::EINVAL);
        }
        let text = format!("public_key={PUB}\nallowed_ip=10.0.0.0/33");
        let err = parse(&text).unwrap_err();
        assert_eq!((err.line, err.key.as_str()), (3, "allowed_ip"));
        let text = format!("public_key={PUB}\nlisten_port=1");
        assert!(parse(&text)
            .unwrap_err()
            .message
            .contains("after a public_key"));
        let text = format!("public_key={PUB}\nremove=yes");
        assert_eq!(parse(&text).unwrap_err().key, "remove");
    }

    #[test]
    fn to_uapi_round_trips() {
        let text = format!(
            "set=1\nprivate_key={}\nlisten_port=7\nreplace_peers=true\npublic_key={PUB}\n\
             endpoint=198.18.0.1:9\npersistent_keepalive_interval=5\nreplace_allowed_ips=true\n\
             allowed_ip=10.0.0.0/8\npublic_key={PUB}\nremove=true\n",
            "11".repeat(32)
        );
        let req = parse(&text.replacen("set=1\n", "", 1)).unwrap();
        assert_eq!(req.to_uapi(), text);
    }

    #[test]
    fn cidr_host_bits_are_cleared() {
        assert_eq!(parse_cidr("10.1.2.3/8").unwrap().to_string(), "10.0.0.0/8");
        assert_eq!(parse_cidr("::1/128").unwrap().to_string(), "::1/128");
        assert_eq!(parse_cidr("10.1.2.3").unwrap().to_string(), "10.1.2.3/32");
        assert!(parse_cidr("10.1.2.3/x").is_err());
        assert!(parse_cidr("nothing/3").is_err());
    }
}
