//! A "site": one namespace with one WireGuard interface, its keys and
//! addresses, and helpers to configure it the ways the tests need (`wg set`,
//! `wg setconf`, a wg-quick file for `flowshield up`).

use crate::daemon::{Daemon, Implementation, QuickUp};
use crate::netns::Netns;
use crate::wg::{self, KeyPair};
use anyhow::Context;
use std::fmt::Write as _;
use std::path::PathBuf;

/// Tunnel MTU used everywhere (underlay veth MTU 1500 minus WireGuard's 80).
pub const TUNNEL_MTU: &str = "1420";

/// One namespace and the interface in it. Fields drop in order: daemon or
/// `up` interface first, then the namespace, then the files.
pub struct Site {
    pub daemon: Option<Daemon>,
    pub quick: Option<QuickUp>,
    pub ns: Netns,
    pub dir: tempfile::TempDir,
    pub iface: String,
    pub keys: KeyPair,
    /// Underlay (veth) IPv4 address, without prefix length.
    pub underlay: String,
    /// Tunnel IPv4 address, without prefix length.
    pub tunnel: String,
    pub port: u16,
}

/// How a site knows one of its peers.
#[derive(Debug, Clone)]
pub struct PeerSpec {
    pub public_key: String,
    /// AllowedIPs.
    pub allowed_ips: Vec<String>,
    /// Underlay endpoint "IP:PORT"; `None` if it must be learned.
    pub endpoint: Option<String>,
    pub keepalive: Option<u16>,
}

impl PeerSpec {
    /// `site` as a peer: its key, its tunnel /32, its underlay endpoint.
    pub fn new(site: &Site) -> Self {
        PeerSpec {
            public_key: site.keys.public.clone(),
            allowed_ips: vec![format!("{}/32", site.tunnel)],
            endpoint: Some(format!("{}:{}", site.underlay, site.port)),
            keepalive: None,
        }
    }

    pub fn without_endpoint(mut self) -> Self {
        self.endpoint = None;
        self
    }

    pub fn endpoint(mut self, endpoint: &str) -> Self {
        self.endpoint = Some(endpoint.to_string());
        self
    }

    pub fn keepalive(mut self, secs: u16) -> Self {
        self.keepalive = Some(secs);
        self
    }

    pub fn allowed_ips(mut self, ips: &[&str]) -> Self {
        self.allowed_ips = ips.iter().map(|s| s.to_string()).collect();
        self
    }

    fn allowed(&self) -> String {
        self.allowed_ips.join(",")
    }
}

impl Site {
    /// A new namespace with fresh keys (from `flowshield genkey`) and names;
    /// nothing runs yet.
    pub fn new(underlay: &str, tunnel: &str, port: u16) -> anyhow::Result<Self> {
        Self::with_keys(underlay, tunnel, port, KeyPair::generate()?)
    }

    /// Like [`Site::new`] with given keys.
    pub fn with_keys(
        underlay: &str,
        tunnel: &str,
        port: u16,
        keys: KeyPair,
    ) -> anyhow::Result<Self> {
        Ok(Site {
            daemon: None,
            quick: None,
            ns: Netns::new()?,
            dir: tempfile::Builder::new().prefix("fse2e-").tempdir()?,
            iface: crate::unique_iface(),
            keys,
            underlay: underlay.to_string(),
            tunnel: tunnel.to_string(),
            port,
        })
    }

    /// Starts a bare daemon of `kind` for the interface.
    pub fn start(&mut self, kind: Implementation) -> anyhow::Result<()> {
        self.daemon = Some(Daemon::spawn(&self.ns, kind, &self.iface)?);
        Ok(())
    }

    pub fn daemon_mut(&mut self) -> &mut Daemon {
        self.daemon.as_mut().expect("site has a daemon")
    }

    /// `wg set IFACE private-key F listen-port P peer ... ` for each peer.
    pub fn wg_set(&self, peers: &[PeerSpec]) -> anyhow::Result<()> {
        let key_file = self.keys.write_private(self.dir.path(), &self.iface)?;
        let key_file = key_file.to_string_lossy().into_owned();
        let port = self.port.to_string();
        let mut args: Vec<String> = [
            "set",
            &self.iface,
            "private-key",
            &key_file,
            "listen-port",
            &port,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for peer in peers {
            args.extend(["peer".into(), peer.public_key.clone()]);
            args.extend(["allowed-ips".into(), peer.allowed()]);
            if let Some(endpoint) = &peer.endpoint {
                args.extend(["endpoint".into(), endpoint.clone()]);
            }
            if let Some(k) = peer.keepalive {
                args.extend(["persistent-keepalive".into(), k.to_string()]);
            }
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        wg::wg(&args)?;
        Ok(())
    }

    /// Writes a `wg setconf` file for `peers` and applies it.
    pub fn wg_setconf(&self, peers: &[PeerSpec]) -> anyhow::Result<()> {
        let mut text = format!(
            "[Interface]\nPrivateKey = {}\nListenPort = {}\n",
            self.keys.private, self.port
        );
        for peer in peers {
            write_peer(&mut text, peer);
        }
        let path = self.dir.path().join(format!("{}-setconf.conf", self.iface));
        std::fs::write(&path, text)?;
        wg::wg(&["setconf", &self.iface, &path.to_string_lossy()])?;
        Ok(())
    }

    /// Adds the tunnel address (/24) and brings the interface up, MTU 1420.
    pub fn link_up(&self) -> anyhow::Result<()> {
        let cidr = format!("{}/24", self.tunnel);
        self.ns.ip(&["addr", "add", &cidr, "dev", &self.iface])?;
        self.ns
            .ip(&["link", "set", &self.iface, "mtu", TUNNEL_MTU, "up"])?;
        Ok(())
    }

    /// The path `flowshield up` takes for this site: `DIR/IFACE.conf`.
    pub fn quick_path(&self) -> PathBuf {
        self.dir.path().join(format!("{}.conf", self.iface))
    }

    /// Writes a wg-quick file: Address tunnel/32 (so only the routes
    /// `up` adds for AllowedIPs reach peers), MTU 1420, `extra` lines in
    /// `[Interface]`, one `[Peer]` per spec.
    pub fn write_quick(&self, peers: &[PeerSpec], extra: &str) -> anyhow::Result<PathBuf> {
        let mut text = format!(
            "# written by flowshield-e2e\n[Interface]\nPrivateKey = {}\nListenPort = {}\nAddress = {}/32\nMTU = {TUNNEL_MTU}\n{extra}",
            self.keys.private, self.port, self.tunnel
        );
        for peer in peers {
            write_peer(&mut text, peer);
        }
        let path = self.quick_path();
        std::fs::write(&path, text)?;
        Ok(path)
    }

    /// `flowshield up` with the file from [`Site::write_quick`].
    pub fn quick_up(&mut self) -> anyhow::Result<()> {
        let path = self.quick_path();
        self.quick = Some(QuickUp::up(&self.ns, &path).context("flowshield up")?);
        Ok(())
    }

    /// `wg show IFACE dump`, parsed.
    pub fn dump(&self) -> anyhow::Result<wg::Dump> {
        wg::dump(&self.iface)
    }

    /// This site's view of `peer` in `wg show dump`.
    pub fn peer_state(&self, peer: &Site) -> anyhow::Result<wg::DumpPeer> {
        self.peer_state_by_key(&peer.keys.public)
    }

    /// This site's view of the peer with `public_key` in `wg show dump`.
    pub fn peer_state_by_key(&self, public_key: &str) -> anyhow::Result<wg::DumpPeer> {
        Ok(self.dump()?.peer(public_key)?.clone())
    }
}

fn write_peer(text: &mut String, peer: &PeerSpec) {
    let _ = write!(
        text,
        "\n[Peer]\nPublicKey = {}\nAllowedIPs = {}\n",
        peer.public_key,
        peer.allowed()
    );
    if let Some(endpoint) = &peer.endpoint {
        let _ = writeln!(text, "Endpoint = {endpoint}");
    }
    if let Some(k) = peer.keepalive {
        let _ = writeln!(text, "PersistentKeepalive = {k}");
    }
}

/// Two sites A (198.18.0.1, 10.77.0.1, port 51820) and B (198.18.0.2,
/// 10.77.0.2, port 51821) joined by a veth pair; nothing runs yet.
pub fn two_sites() -> anyhow::Result<(Site, Site)> {
    two_sites_keyed(KeyPair::generate)
}

/// [`two_sites`] with keys from `wg genkey` (for checks that must not
/// depend on the flowshield binary).
pub fn two_sites_wg_keys() -> anyhow::Result<(Site, Site)> {
    two_sites_keyed(KeyPair::generate_with_wg)
}

fn two_sites_keyed(keygen: fn() -> anyhow::Result<KeyPair>) -> anyhow::Result<(Site, Site)> {
    let a = Site::with_keys("198.18.0.1", "10.77.0.1", 51820, keygen()?)?;
    let b = Site::with_keys("198.18.0.2", "10.77.0.2", 51821, keygen()?)?;
    crate::netns::VethPair::new(&a.ns, "198.18.0.1/24", &b.ns, "198.18.0.2/24")?;
    Ok((a, b))
}

/// [`two_sites`] with both daemons of `kind_a` / `kind_b` started,
/// configured with `wg set` (both endpoints known) and links up.
pub fn two_running(kind_a: Implementation, kind_b: Implementation) -> anyhow::Result<(Site, Site)> {
    let (mut a, mut b) = two_sites()?;
    a.start(kind_a)?;
    b.start(kind_b)?;
    a.wg_set(&[PeerSpec::new(&b)])?;
    b.wg_set(&[PeerSpec::new(&a)])?;
    a.link_up()?;
    b.link_up()?;
    Ok((a, b))
}
