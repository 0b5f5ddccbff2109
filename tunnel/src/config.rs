//! wg-quick configuration files: `[Interface]` with the wg-quick extras
//! (Address, DNS, MTU, Table, Pre/PostUp/Down, SaveConfig) and `[Peer]`
//! sections. Parsing is pure; errors name the file, line and key.

use crate::key::{PublicKey, SecretKey};
use crate::uapi::set::{parse_cidr, PeerUpdate};
use crate::uapi::SetRequest;
use ip_network::IpNetwork;
use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};

/// A config error: where and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    pub file: PathBuf,
    /// 1-based; 0 when the error is about the file as a whole.
    pub line: usize,
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if self.line > 0 {
            write!(f, ":{}", self.line)?;
        }
        if !self.key.is_empty() {
            write!(f, ": {}", self.key)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Routing table choice for `up` (wg-quick's `Table`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Table {
    /// Routes go to the main table; default routes use policy routing.
    #[default]
    Auto,
    Off,
    Id(u32),
}

/// How a peer's endpoint was written: resolved when the interface comes up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointSpec {
    pub text: String,
    pub line: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PeerSection {
    pub public_key: PublicKey,
    pub preshared_key: Option<SecretKey>,
    pub allowed_ips: Vec<IpNetwork>,
    pub endpoint: Option<EndpointSpec>,
    pub persistent_keepalive: Option<u16>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct InterfaceSection {
    pub private_key: Option<SecretKey>,
    pub listen_port: Option<u16>,
    pub fwmark: Option<u32>,
    pub addresses: Vec<IpNetwork>,
    /// Address with host bits kept (`10.0.0.1/24`), as `ip address add` wants.
    pub address_texts: Vec<String>,
    pub dns: Vec<String>,
    pub mtu: Option<u16>,
    pub table: Table,
    pub pre_up: Vec<String>,
    pub post_up: Vec<String>,
    pub pre_down: Vec<String>,
    pub post_down: Vec<String>,
    pub save_config: bool,
}

/// A parsed wg-quick file.
#[derive(Debug, Clone, PartialEq)]
pub struct WgQuickConfig {
    pub file: PathBuf,
    pub interface: InterfaceSection,
    pub peers: Vec<PeerSection>,
}

enum Section {
    None,
    Interface,
    Peer(Option<PeerSection>, usize),
}

fn split_list(value: &str) -> impl Iterator<Item = &str> {
    value.split(',').map(str::trim).filter(|s| !s.is_empty())
}

fn parse_fwmark(value: &str) -> Result<u32, String> {
    let v = value.to_ascii_lowercase();
    if v == "off" {
        return Ok(0);
    }
    let parsed = match v.strip_prefix("0x") {
        Some(hex) => u32::from_str_radix(hex, 16),
        None => v.parse(),
    };
    parsed.map_err(|_| format!("'{value}' is not a number, 0x hex or off"))
}

impl WgQuickConfig {
    /// Reads and parses `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.to_path_buf(),
            line: 0,
            key: String::new(),
            message: e.to_string(),
        })?;
        Self::parse(path, &text)
    }

    /// Parses `text`; `file` is used in error messages only.
    pub fn parse(file: &Path, text: &str) -> Result<Self, ConfigError> {
        let mut iface = InterfaceSection::default();
        let mut saw_interface = false;
        let mut peers = Vec::new();
        let mut section = Section::None;
        let finish_peer = |section: &mut Section, peers: &mut Vec<PeerSection>| {
            if let Section::Peer(peer, line) = std::mem::replace(section, Section::None) {
                match peer {
                    Some(peer) => peers.push(peer),
                    None => {
                        return Err((
                            line,
                            "[Peer]".to_string(),
                            "section has no PublicKey".to_string(),
                        ))
                    }
                }
            }
            Ok(())
        };
        let result = (|| -> Result<(), (usize, String, String)> {
            for (i, raw) in text.lines().enumerate() {
                let line_no = i + 1;
                let line = raw.split('#').next().unwrap_or_default().trim();
                if line.is_empty() {
                    continue;
                }
                if line.starts_with('[') {
                    finish_peer(&mut section, &mut peers)?;
                    section = match line.to_ascii_lowercase().as_str() {
                        "[interface]" => {
                            saw_interface = true;
                            Section::Interface
                        }
                        "[peer]" => Section::Peer(None, line_no),
                        _ => return Err((line_no, line.to_string(), "unknown section".into())),
                    };
                    continue;
                }
                let Some((key, value)) = line.split_once('=') else {
                    return Err((line_no, String::new(), "expected 'Key = Value'".into()));
                };
                let (key, value) = (key.trim(), value.trim());
                let err = |message: String| (line_no, key.to_string(), message);
                let lower = key.to_ascii_lowercase();
                match (&mut section, lower.as_str()) {
                    (Section::None, _) => {
                        return Err(err("key outside of [Interface] or [Peer]".into()))
                    }
                    (Section::Interface, "privatekey") => {
                        iface.private_key =
                            Some(SecretKey::from_base64(value).map_err(|e| err(e.to_string()))?)
                    }
                    (Section::Interface, "listenport") => {
                        iface.listen_port = Some(value.parse().map_err(|_| {
                            err(format!("'{value}' is not a port number (0-65535)"))
                        })?)
                    }
                    (Section::Interface, "fwmark") => {
                        iface.fwmark = Some(parse_fwmark(value).map_err(err)?)
                    }
                    (Section::Interface, "address") => {
                        for addr in split_list(value) {
                            iface.addresses.push(parse_cidr(addr).map_err(err)?);
                            iface.address_texts.push(addr.to_string());
                        }
                    }
                    (Section::Interface, "dns") => {
                        iface.dns.extend(split_list(value).map(str::to_string))
                    }
                    (Section::Interface, "mtu") => {
                        iface.mtu = Some(
                            value
                                .parse()
                                .ok()
                                .filter(|m| (576..=65535).contains(m))
                                .ok_or_else(|| {
                                    err(format!("'{value}' is not an MTU from 576 to 65535"))
                                })?,
                        )
                    }
                    (Section::Interface, "table") => {
                        iface.table = match value.to_ascii_lowercase().as_str() {
                            "off" => Table::Off,
                            "auto" => Table::Auto,
                            v => Table::Id(v.parse().map_err(|_| {
                                err(format!("'{value}' is not off, auto or a table number"))
                            })?),
                        }
                    }
                    (Section::Interface, "preup") => iface.pre_up.push(value.to_string()),
                    (Section::Interface, "postup") => iface.post_up.push(value.to_string()),
                    (Section::Interface, "predown") => iface.pre_down.push(value.to_string()),
                    (Section::Interface, "postdown") => iface.post_down.push(value.to_string()),
                    (Section::Interface, "saveconfig") => {
                        iface.save_config = match value.to_ascii_lowercase().as_str() {
                            "true" => true,
                            "false" => false,
                            _ => return Err(err(format!("'{value}' is not true or false"))),
                        }
                    }
                    (Section::Peer(peer, _), "publickey") => {
                        let key = PublicKey::from_base64(value).map_err(|e| err(e.to_string()))?;
                        match peer {
                            Some(_) => return Err(err("PublicKey given twice".into())),
                            None => {
                                *peer = Some(PeerSection {
                                    public_key: key,
                                    preshared_key: None,
                                    allowed_ips: Vec::new(),
                                    endpoint: None,
                                    persistent_keepalive: None,
                                })
                            }
                        }
                    }
                    (Section::Peer(None, _), _) => {
                        return Err(err("PublicKey must come first in a [Peer] section".into()))
                    }
                    (Section::Peer(Some(peer), _), "presharedkey") => {
                        peer.preshared_key =
                            Some(SecretKey::from_base64(value).map_err(|e| err(e.to_string()))?)
                    }
                    (Section::Peer(Some(peer), _), "allowedips") => {
                        for net in split_list(value) {
                            peer.allowed_ips.push(parse_cidr(net).map_err(err)?);
                        }
                    }
                    (Section::Peer(Some(peer), _), "endpoint") => {
                        if value
                            .rsplit_once(':')
                            .is_none_or(|(h, p)| h.is_empty() || p.parse::<u16>().is_err())
                        {
                            return Err(err(format!("'{value}' is not host:port")));
                        }
                        peer.endpoint = Some(EndpointSpec {
                            text: value.to_string(),
                            line: line_no,
                        });
                    }
                    (Section::Peer(Some(peer), _), "persistentkeepalive") => {
                        peer.persistent_keepalive = Some(if value.eq_ignore_ascii_case("off") {
                            0
                        } else {
                            value.parse().map_err(|_| {
                                err(format!("'{value}' is not off or seconds (0-65535)"))
                            })?
                        })
                    }
                    _ => return Err(err("unknown key".into())),
                }
            }
            finish_peer(&mut section, &mut peers)
        })();
        result.map_err(|(line, key, message)| ConfigError {
            file: file.to_path_buf(),
            line,
            key,
            message,
        })?;
        if !saw_interface {
            return Err(ConfigError {
                file: file.to_path_buf(),
                line: 0,
                key: String::new(),
                message: "no [Interface] section".into(),
            });
        }
        Ok(Self {
            file: file.to_path_buf(),
            interface: iface,
            peers,
        })
    }

    /// The UAPI transaction that configures a fresh device from this file,
    /// resolving endpoint host names.
    pub fn to_set_request(&self) -> Result<SetRequest, ConfigError> {
        let mut req = SetRequest {
            private_key: self.interface.private_key.clone(),
            listen_port: self.interface.listen_port,
            fwmark: self.interface.fwmark,
            replace_peers: true,
            peers: Vec::new(),
        };
        for peer in &self.peers {
            let mut update = PeerUpdate::new(peer.public_key);
            update.preshared_key = peer.preshared_key.clone();
            update.persistent_keepalive = peer.persistent_keepalive;
            update.replace_allowed_ips = true;
            update.allowed_ips = peer.allowed_ips.clone();
            if let Some(spec) = &peer.endpoint {
                update.endpoint =
                    Some(resolve_endpoint(&spec.text).map_err(|message| ConfigError {
                        file: self.file.clone(),
                        line: spec.line,
                        key: "Endpoint".into(),
                        message,
                    })?);
            }
            req.peers.push(update);
        }
        Ok(req)
    }
}

/// The file `down` writes back when `SaveConfig = true`, as wg-quick does:
/// the wg-quick keys from `cfg` plus the live device state (keys, port,
/// peers with their current endpoints and allowed IPs).
pub fn save_config_text(cfg: &WgQuickConfig, live: &crate::uapi::DeviceSnapshot) -> String {
    use std::fmt::Write as _;
    let i = &cfg.interface;
    let mut out = String::from("[Interface]\n");
    for a in &i.address_texts {
        let _ = writeln!(out, "Address = {a}");
    }
    if !i.dns.is_empty() {
        let _ = writeln!(out, "DNS = {}", i.dns.join(", "));
    }
    if let Some(mtu) = i.mtu {
        let _ = writeln!(out, "MTU = {mtu}");
    }
    match i.table {
        Table::Auto => {}
        Table::Off => out.push_str("Table = off\n"),
        Table::Id(id) => {
            let _ = writeln!(out, "Table = {id}");
        }
    }
    for (key, hooks) in [
        ("PreUp", &i.pre_up),
        ("PostUp", &i.post_up),
        ("PreDown", &i.pre_down),
        ("PostDown", &i.post_down),
    ] {
        for hook in hooks {
            let _ = writeln!(out, "{key} = {hook}");
        }
    }
    out.push_str("SaveConfig = true\n");
    if let Some(key) = &live.private_key {
        let _ = writeln!(out, "PrivateKey = {}", key.to_base64());
    }
    if live.listen_port != 0 {
        let _ = writeln!(out, "ListenPort = {}", live.listen_port);
    }
    if live.fwmark != 0 {
        let _ = writeln!(out, "FwMark = 0x{:x}", live.fwmark);
    }
    for peer in &live.peers {
        let _ = writeln!(out, "\n[Peer]\nPublicKey = {}", peer.public_key);
        if let Some(psk) = &peer.preshared_key {
            let _ = writeln!(out, "PresharedKey = {}", psk.to_base64());
        }
        if !peer.allowed_ips.is_empty() {
            let ips: Vec<String> = peer.allowed_ips.iter().map(|n| n.to_string()).collect();
            let _ = writeln!(out, "AllowedIPs = {}", ips.join(", "));
        }
        if let Some(endpoint) = peer.endpoint {
            let _ = writeln!(out, "Endpoint = {endpoint}");
        }
        if peer.persistent_keepalive != 0 {
            let _ = writeln!(out, "PersistentKeepalive = {}", peer.persistent_keepalive);
        }
    }
    out
}

/// Resolves `host:port` or `[v6]:port`, preferring the literal form.
pub fn resolve_endpoint(text: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = text.parse() {
        return Ok(addr);
    }
    text.to_socket_addrs()
        .map_err(|e| format!("cannot resolve '{text}': {e}"))?
        .next()
        .ok_or_else(|| format!("'{text}' resolves to no address"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=";
    const B: &str = "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=";

    fn parse(text: &str) -> Result<WgQuickConfig, ConfigError> {
        WgQuickConfig::parse(Path::new("wg0.conf"), text)
    }

    #[test]
    fn parses_wg_quick_file() {
        let cfg = parse(&format!(
            "# comment\n[Interface]\nPrivateKey = {A}\nListenPort = 51820\nAddress = 10.77.0.1/24, fd00::1/64\n\
             DNS = 10.77.0.53, example.com\nMTU = 1380\nTable = off\nFwMark = 0x10\n\
             PostUp = echo up %i\nPostUp = echo again\nSaveConfig = false\n\n\
             [Peer]\nPublicKey = {B}\nAllowedIPs = 10.77.0.2/32, 10.88.0.0/16 # inline comment\n\
             Endpoint = 198.18.0.2:51820\nPersistentKeepalive = 25\n"
        ))
        .unwrap();
        let i = &cfg.interface;
        assert_eq!(i.listen_port, Some(51820));
        assert_eq!(i.address_texts, vec!["10.77.0.1/24", "fd00::1/64"]);
        assert_eq!(i.dns, vec!["10.77.0.53", "example.com"]);
        assert_eq!(
            (i.mtu, i.table, i.fwmark),
            (Some(1380), Table::Off, Some(16))
        );
        assert_eq!(i.post_up.len(), 2);
        assert_eq!(cfg.peers[0].allowed_ips.len(), 2);
        let req = cfg.to_set_request().unwrap();
        assert!(req.replace_peers);
        assert_eq!(
            req.peers[0].endpoint,
            Some("198.18.0.2:51820".parse().unwrap())
        );
        assert_eq!(req.peers[0].persistent_keepalive, Some(25));
    }

    #[test]
    fn errors_name_file_line_and_key() {
        let cases = [
            ("[Interface]\nListenPort = 99999\n", 2, "ListenPort"),
            ("[Interface]\nPrivateKey = short\n", 2, "PrivateKey"),
            ("[Interface]\nAddress = 10.0.0.1/40\n", 2, "Address"),
            ("[Interface]\nBogus = 1\n", 2, "Bogus"),
            (
                "[Interface]\n[Peer]\nAllowedIPs = 10.0.0.0/8\n",
                3,
                "AllowedIPs",
            ),
            ("[Interface]\n[Peer]\nPublicKey = x\n", 3, "PublicKey"),
            ("[Interface]\nMTU = 12\n", 2, "MTU"),
            ("[Interface]\n[Peer]\n", 2, "[Peer]"),
            ("[Interfac]\n", 1, "[Interfac]"),
            ("PrivateKey = x\n", 1, "PrivateKey"),
        ];
        for (text, line, key) in cases {
            let err = parse(text).unwrap_err();
            assert_eq!(
                (err.line, err.key.as_str()),
                (line, key),
                "case {text:?}: {err}"
            );
            assert!(
                err.to_string().starts_with(&format!("wg0.conf:{line}")),
                "{err}"
            );
        }
        let text = format!("[Interface]\n[Peer]\nPublicKey = {B}\nEndpoint = nohost\n");
        assert_eq!(parse(&text).unwrap_err().line, 4);
        assert_eq!(parse("").unwrap_err().message, "no [Interface] section");
    }

    #[test]
    fn keys_are_case_insensitive_and_keepalive_off() {
        let cfg = parse(&format!(
            "[interface]\nprivatekey = {A}\n[peer]\npublickey = {B}\npersistentkeepalive = off\n"
        ))
        .unwrap();
        assert_eq!(cfg.peers[0].persistent_keepalive, Some(0));
    }

    #[test]
    fn saved_config_parses_back_to_the_live_state() {
        let cfg = parse(&format!(
            "[Interface]\nPrivateKey = {A}\nAddress = 10.77.0.1/24\nPostUp = echo %i\nSaveConfig = true\n\
             [Peer]\nPublicKey = {B}\nAllowedIPs = 10.77.0.2/32\n"
        ))
        .unwrap();
        let mut live = crate::uapi::DeviceSnapshot {
            private_key: cfg.interface.private_key.clone(),
            own_public_key: None,
            listen_port: 40000,
            ..Default::default()
        };
        live.peers.push(crate::uapi::PeerSnapshot {
            public_key: cfg.peers[0].public_key,
            preshared_key: None,
            endpoint: Some("198.18.0.9:51820".parse().unwrap()),
            last_handshake: (0, 0),
            rx_bytes: 0,
            tx_bytes: 0,
            persistent_keepalive: 25,
            allowed_ips: vec![parse_cidr("10.77.0.0/24").unwrap()],
        });
        let saved = parse(&save_config_text(&cfg, &live)).unwrap();
        assert!(saved.interface.save_config);
        assert_eq!(saved.interface.listen_port, Some(40000));
        assert_eq!(saved.interface.post_up, vec!["echo %i"]);
        assert_eq!(saved.peers[0].allowed_ips, live.peers[0].allowed_ips);
        assert_eq!(saved.peers[0].persistent_keepalive, Some(25));
        assert_eq!(
            saved.peers[0].endpoint.as_ref().unwrap().text,
            "198.18.0.9:51820"
        );
    }

    #[test]
    fn secret_values_do_not_appear_in_errors() {
        let text = format!("[Interface]\nPrivateKey = {}x\n", &A[..40]);
        let err = parse(&text).unwrap_err();
        assert!(!err.to_string().contains(&A[..40]));
    }
}
