//! A whole market in network namespaces, for the session tests:
//!
//! ```text
//!            hub (bridge 10.250.0.1/24: dev chain RPC :8545, fullnodes :8101/:8102)
//!       ┌──────────────┬──────────────┬───────────────┐
//!   p0 10.250.0.10  p1 10.250.0.11             cl 10.250.0.100 (client + its flowshield)
//!   provider+wg     provider+wg
//!   198.18.20.1 ─┐  198.18.21.1 ─┐
//!          origin 198.18.20.2 / 198.18.21.2, serves http://198.18.99.1:8080/blob
//! ```
//! Providers hand clients the route to 198.18.99.1/32; the origin routes
//! each provider's tunnel subnet (10.77.<i>.0/24) back to it. Every
//! process and namespace is removed on drop, also when a test panics.

use super::process::Proc;
use anyhow::{bail, Context, Result};
use flowshield_e2e::daemon::QuickUp;
use flowshield_e2e::netns::{Netns, VethPair};
use flowshield_e2e::process::run_ok;
use flowshield_e2e::wg::KeyPair;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_flowshield-market");
pub const WAIT: Duration = Duration::from_secs(60);
pub const ORIGIN_URL: &str = "http://198.18.99.1:8080/blob";
pub const BLOB_BYTES: usize = 4 << 20;
pub const ESCROW_WEI: &str = "50000000000000000"; // 0.05 ETH
pub const PRICE_PER_GIB_WEI: &str = "1000000000000000000"; // 1 ETH / GiB
pub const PRICE_PER_HOUR_WEI: &str = "36000000000000"; // 1e10 wei / s

/// The keys provider `index` runs with, for tests that add to its start
/// (e.g. issue it a certificate).
pub struct ProviderKeys {
    pub index: usize,
    /// The data plane's WireGuard keys, base64.
    pub wg_private: String,
    pub wg_public: String,
    /// The libp2p identity file (created by the provider if absent).
    pub identity_file: PathBuf,
    /// The chain key file (hex, written by `dev-chain`).
    pub chain_key_file: PathBuf,
    pub chain_address: String,
}

/// What a test adds to a provider's start: TOML appended to its
/// configuration file, arguments appended to its command line.
#[derive(Debug, Default)]
pub struct ProviderExtras {
    pub toml: String,
    pub args: Vec<String>,
}

/// Called for each provider before it starts.
pub type ProviderHook<'a> = dyn FnMut(&World, &ProviderKeys) -> Result<ProviderExtras> + 'a;

pub struct ProviderSite {
    pub ns: Netns,
    pub iface: String,
    pub data_plane: Option<QuickUp>,
    pub sidecar: Option<Proc>,
    pub chain_address: String,
}

/// The whole market. Fields drop in order: processes first, namespaces last.
pub struct World {
    pub client: Option<Proc>,
    pub providers: Vec<ProviderSite>,
    pub fullnodes: Vec<Option<Proc>>,
    pub http: Option<Proc>,
    pub chain: Option<Proc>,
    pub chain_info: Value,
    pub fullnode_addrs: Vec<String>,
    pub client_iface: String,
    pub hub: Netns,
    pub cl: Netns,
    pub origin: Netns,
    pub dir: tempfile::TempDir,
    pub blob_sha256: String,
}

fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
}

impl World {
    /// Builds the network and starts chain, fullnodes, providers, origin.
    pub fn start(providers: usize) -> Result<Self> {
        Self::start_with(providers, &[], &mut |_, _| Ok(ProviderExtras::default()))
    }

    /// [`World::start`], with more funded chain keys (`<dir>/<name>.key`)
    /// and `extras` consulted before each provider starts.
    pub fn start_with(
        providers: usize,
        extra_keys: &[&str],
        extras: &mut ProviderHook<'_>,
    ) -> Result<Self> {
        flowshield_e2e::require_environment()?;
        let dir = tempfile::tempdir()?;
        let hub = Netns::new()?;
        let cl = Netns::new()?;
        let origin = Netns::new()?;
        hub.ip(&["link", "add", "br0", "type", "bridge"])?;
        hub.ip(&["addr", "add", "10.250.0.1/24", "dev", "br0"])?;
        hub.ip(&["link", "set", "br0", "up"])?;
        let join = |ns: &Netns, cidr: &str| -> Result<()> {
            let pair = VethPair::new(&hub, "169.254.99.1/32", ns, cidr)?;
            hub.ip(&["addr", "flush", "dev", &pair.a_dev])?;
            hub.ip(&["link", "set", &pair.a_dev, "master", "br0"])?;
            Ok(())
        };
        join(&cl, "10.250.0.100/24")?;
        origin.ip(&["addr", "add", "198.18.99.1/32", "dev", "lo"])?;
        let blob = flowshield_e2e::traffic::pseudo_random(7, BLOB_BYTES);
        std::fs::write(dir.path().join("blob"), &blob)?;
        let blob_sha256 = sha256_hex(&blob);

        let keys = ["p0", "p1", "client"]
            .iter()
            .chain(extra_keys)
            .copied()
            .collect::<Vec<_>>()
            .join(",");
        let chain = Proc::spawn(
            &hub,
            dir.path(),
            "chain",
            BIN,
            &[
                "dev-chain",
                "--listen",
                "10.250.0.1:8545",
                "--dir",
                dir.path().to_str().context("utf8")?,
                "--keys",
                &keys,
            ],
        )?;
        let chain_info: Value = chain.wait_line(Duration::from_secs(120), |l| {
            l.strip_prefix("ready ")
                .and_then(|j| serde_json::from_str(j).ok())
        })?;

        let mut fullnodes = Vec::new();
        let mut fullnode_addrs: Vec<String> = Vec::new();
        for i in 0..2 {
            let mut args = vec![
                "fullnode".to_string(),
                "--listen".into(),
                format!("/ip4/10.250.0.1/tcp/{}", 4101 + i),
                "--http".into(),
                format!("10.250.0.1:{}", 8101 + i),
                "--db".into(),
                format!("sqlite://{}/fn{i}.db", dir.path().display()),
                "--identity".into(),
                format!("{}/fn{i}.key", dir.path().display()),
            ];
            for addr in &fullnode_addrs {
                args.push("--bootstrap".into());
                args.push(addr.clone());
            }
            let argv: Vec<&str> = args.iter().map(String::as_str).collect();
            let node = Proc::spawn(&hub, dir.path(), &format!("fullnode{i}"), BIN, &argv)?;
            let addr = node.wait_line(WAIT, |l| {
                l.strip_prefix("listening ")
                    .filter(|a| a.contains("/tcp/"))
                    .map(str::to_string)
            })?;
            node.wait_prefix("http ", WAIT)?;
            fullnode_addrs.push(addr);
            fullnodes.push(Some(node));
        }

        let mut world = World {
            client: None,
            providers: Vec::new(),
            fullnodes,
            http: None,
            chain: Some(chain),
            chain_info,
            fullnode_addrs,
            client_iface: flowshield_e2e::unique_iface(),
            hub,
            cl,
            origin,
            dir,
            blob_sha256,
        };
        for i in 0..providers {
            world.start_provider(i, extras)?;
        }
        let http = Proc::spawn(
            &world.origin,
            world.dir.path(),
            "origin-http",
            "python3",
            &[
                "-u", // unbuffered: its "Serving HTTP" line is the readiness signal
                "-m",
                "http.server",
                "8080",
                "--bind",
                "198.18.99.1",
                "--directory",
                world.dir.path().to_str().context("utf8")?,
            ],
        )?;
        http.wait_line(WAIT, |l| l.starts_with("Serving HTTP").then_some(()))?;
        world.http = Some(http);
        for i in 0..providers {
            world.wait_indexed(i, 0)?;
            world.wait_indexed(i, 1)?;
        }
        Ok(world)
    }

    fn start_provider(&mut self, i: usize, extras: &mut ProviderHook<'_>) -> Result<()> {
        let ns = Netns::new()?;
        let pair = VethPair::new(
            &self.hub,
            "169.254.99.1/32",
            &ns,
            &format!("10.250.0.{}/24", 10 + i),
        )?;
        self.hub.ip(&["addr", "flush", "dev", &pair.a_dev])?;
        self.hub
            .ip(&["link", "set", &pair.a_dev, "master", "br0"])?;
        let lan = format!("198.18.{}.", 20 + i);
        let to_origin = VethPair::new(
            &ns,
            &format!("{lan}1/24"),
            &self.origin,
            &format!("{lan}2/24"),
        )?;
        ns.ip(&["route", "add", "198.18.99.1/32", "via", &format!("{lan}2")])?;
        ns.run(&["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"])?;
        self.origin.ip(&[
            "route",
            "add",
            &format!("10.77.{i}.0/24"),
            "via",
            &format!("{lan}1"),
        ])?;

        let dir = self.dir.path();
        let iface = flowshield_e2e::unique_iface();
        let keys = KeyPair::generate()?;
        let conf = dir.join(format!("{iface}.conf"));
        std::fs::write(
            &conf,
            format!(
                "[Interface]\nPrivateKey = {}\nListenPort = 51820\nAddress = 10.77.{i}.1/24\n",
                keys.private
            ),
        )?;
        let data_plane = QuickUp::up(&ns, &conf)?;
        let chain_address = self.chain_info["accounts"][format!("p{i}")]
            .as_str()
            .context("provider account")?
            .to_string();
        let toml = format!(
            r#"identity_file = "{dir}/p{i}.p2p"
listen = ["/ip4/10.250.0.{host}/tcp/4001"]
bootstrap = [{bootstrap}]
heartbeat_secs = 1
interface = "{iface}"
tunnel_subnet = "10.77.{i}.0/24"

[offer]
region = "eu-west"
price_per_gib_wei = "{PRICE_PER_GIB_WEI}"
price_per_hour_wei = "{PRICE_PER_HOUR_WEI}"
capacity_mbps = 100
max_clients = 10
wg_public_key = "{wg}"
endpoint = "10.250.0.{host}:51820"
chain_address = "{chain_address}"

[chain]
rpc_url = "{rpc}"
market_address = "{market}"
key_file = "{dir}/p{i}.key"

[session]
client_allowed_ips = ["198.18.99.1/32"]
idle_timeout_secs = 15
redeem_threshold_wei = "100000000000000"
redeem_interval_secs = 5

[egress]
uplink = "{uplink}"
"#,
            dir = dir.display(),
            host = 10 + i,
            bootstrap = toml_strings(&self.fullnode_addrs),
            wg = keys.public,
            rpc = self.rpc_url()?,
            market = self.market_address()?,
            uplink = to_origin.a_dev,
        );
        let extra = extras(
            self,
            &ProviderKeys {
                index: i,
                wg_private: keys.private.clone(),
                wg_public: keys.public.clone(),
                identity_file: dir.join(format!("p{i}.p2p")),
                chain_key_file: dir.join(format!("p{i}.key")),
                chain_address: chain_address.clone(),
            },
        )?;
        let path = dir.join(format!("p{i}.toml"));
        std::fs::write(&path, format!("{toml}{}", extra.toml))?;
        let mut argv = vec!["provider", "--config", path.to_str().context("utf8")?];
        argv.extend(extra.args.iter().map(String::as_str));
        let sidecar = Proc::spawn(&ns, dir, &format!("provider{i}"), BIN, &argv)?;
        sidecar.wait_prefix("listening ", WAIT)?;
        self.providers.push(ProviderSite {
            ns,
            iface,
            data_plane: Some(data_plane),
            sidecar: Some(sidecar),
            chain_address,
        });
        Ok(())
    }

    /// `curl` inside the hub (fullnodes' HTTP API).
    pub fn hub_http(&self, args: &[&str]) -> Result<String> {
        let mut argv = vec!["curl", "-s", "--max-time", "5"];
        argv.extend_from_slice(args);
        self.hub.run(&argv)
    }

    fn wait_indexed(&self, provider: usize, fullnode: usize) -> Result<()> {
        let want = &self.providers[provider].chain_address.to_lowercase();
        let url = format!("http://10.250.0.1:{}/v1/providers", 8101 + fullnode);
        let deadline = Instant::now() + WAIT;
        loop {
            if self
                .hub_http(&[&url])
                .is_ok_and(|body| body.to_lowercase().contains(want.as_str()))
            {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!("provider {provider} never appeared at fullnode {fullnode}");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Writes the client's configuration using the given fullnodes.
    pub fn client_config(&self, fullnode_urls: &[String]) -> Result<PathBuf> {
        let dir = self.dir.path();
        let text = format!(
            r#"identity_file = "{dir}/client.p2p"
fullnodes = [{fullnodes}]
bootstrap = [{bootstrap}]
interface = "{iface}"
escrow_wei = "{ESCROW_WEI}"
region = "eu-west"
voucher_secs = 1
max_failed_vouchers = 2
state_dir = "{dir}/client-state"
flowshield_bin = "{bin}"
routes = ["198.18.99.1/32"]

[chain]
rpc_url = "{rpc}"
market_address = "{market}"
key_file = "{dir}/client.key"
"#,
            dir = dir.display(),
            fullnodes = toml_strings(fullnode_urls),
            bootstrap = toml_strings(&self.fullnode_addrs),
            iface = self.client_iface,
            bin = flowshield_e2e::flowshield_bin()?.display(),
            rpc = self.rpc_url()?,
            market = self.market_address()?,
        );
        let path = dir.join("client.toml");
        std::fs::write(&path, text)?;
        Ok(path)
    }

    pub fn fullnode_urls() -> Vec<String> {
        vec![
            "http://10.250.0.1:8101".into(),
            "http://10.250.0.1:8102".into(),
        ]
    }

    /// Starts `client connect` and waits for its `connected` event.
    pub fn connect_client(&mut self, config: &Path) -> Result<Value> {
        let client = Proc::spawn(
            &self.cl,
            self.dir.path(),
            "client",
            BIN,
            &[
                "client",
                "connect",
                "--config",
                config.to_str().context("utf8")?,
            ],
        )?;
        let connected = client.wait_event("connected", WAIT)?;
        self.client = Some(client);
        Ok(connected)
    }

    /// Fetches the origin's blob through the tunnel; checks its checksum.
    pub fn fetch_blob(&self) -> Result<()> {
        self.fetch_blob_within(30)
    }

    /// [`World::fetch_blob`], giving up after `secs` seconds.
    pub fn fetch_blob_within(&self, secs: u32) -> Result<()> {
        let out = run_ok(self.cl.command("sh").args([
            "-c",
            &format!("curl -s --max-time {secs} {ORIGIN_URL} | sha256sum"),
        ]))?;
        let got = out.split_whitespace().next().unwrap_or_default();
        if got != self.blob_sha256 {
            bail!("blob checksum {got}, want {}", self.blob_sha256);
        }
        Ok(())
    }

    /// `client disconnect`, returning its JSON answer.
    pub fn disconnect(&self, config: &Path) -> Result<Value> {
        let out = run_ok(self.cl.command(BIN).args([
            "client",
            "disconnect",
            "--config",
            config.to_str().context("utf8")?,
        ]))?;
        Ok(serde_json::from_str(out.trim())?)
    }

    /// `chain-status` from inside the hub.
    pub fn chain_status(&self, accounts: &[&str], order: Option<&str>) -> Result<Value> {
        let mut args = vec![
            "chain-status".to_string(),
            "--rpc".into(),
            self.rpc_url()?.into(),
            "--market".into(),
            self.market_address()?.into(),
        ];
        for a in accounts {
            args.push("--account".into());
            args.push(a.to_string());
        }
        if let Some(o) = order {
            args.push("--order".into());
            args.push(o.into());
        }
        Ok(serde_json::from_str(
            self.hub
                .run(
                    &std::iter::once(BIN)
                        .chain(args.iter().map(String::as_str))
                        .collect::<Vec<_>>(),
                )?
                .trim(),
        )?)
    }

    /// The dev chain's JSON-RPC URL.
    pub fn rpc_url(&self) -> Result<&str> {
        self.chain_info["rpc_url"].as_str().context("rpc_url")
    }

    /// The `BandwidthMarket` the dev chain deployed.
    pub fn market_address(&self) -> Result<&str> {
        self.chain_info["market_address"]
            .as_str()
            .context("market_address")
    }

    pub fn account(&self, name: &str) -> String {
        self.chain_info["accounts"][name]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Public keys of the peers on provider `i`'s data plane (UAPI `get`).
    pub fn provider_peers(&self, i: usize) -> Result<Vec<String>> {
        let snapshot = flowshield_tunnel::uapi::client::get(&self.providers[i].iface)?;
        Ok(snapshot
            .peers
            .iter()
            .map(|p| p.public_key.to_base64())
            .collect())
    }

    /// Kills provider `i`'s sidecar with SIGKILL (`kill -9`, no chance to
    /// clean up); its data plane keeps running.
    pub fn kill_provider_sidecar(&mut self, i: usize) {
        self.providers[i].sidecar.take();
    }

    /// Stops provider `i`'s sidecar as systemd does (SIGTERM) and waits
    /// until it has exited; its data plane keeps running.
    pub fn stop_provider_sidecar(&mut self, i: usize) -> Result<std::process::ExitStatus> {
        let mut sidecar = self.providers[i].sidecar.take().context("no sidecar")?;
        sidecar.signal(libc::SIGTERM);
        sidecar.wait_exit(WAIT)
    }

    /// Starts provider `i`'s sidecar again from its configuration file
    /// (written by [`World::start`]; extra arguments are not repeated) and
    /// waits until it listens.
    pub fn restart_provider_sidecar(&mut self, i: usize) -> Result<()> {
        let dir = self.dir.path();
        let path = dir.join(format!("p{i}.toml"));
        let site = &mut self.providers[i];
        let sidecar = Proc::spawn(
            &site.ns,
            dir,
            &format!("provider{i}-restarted"),
            BIN,
            &["provider", "--config", path.to_str().context("utf8")?],
        )?;
        sidecar.wait_prefix("listening ", WAIT)?;
        site.sidecar = Some(sidecar);
        Ok(())
    }

    /// Provider `i`'s session store (the default, beside its identity file).
    pub fn provider_store_url(&self, i: usize) -> String {
        format!("sqlite://{}/p{i}.sessions.db", self.dir.path().display())
    }

    /// Kills provider `i`'s sidecar and data plane (the host dies).
    pub fn kill_provider(&mut self, i: usize) {
        let site = &mut self.providers[i];
        site.sidecar.take();
        for pid in flowshield_e2e::daemon::daemon_pids(&site.iface) {
            // SAFETY: kill(2) on the data-plane daemon this test started.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        site.data_plane.take();
    }
}

/// `"a", "b"`: the inside of a TOML array of strings.
fn toml_strings(items: &[String]) -> String {
    items
        .iter()
        .map(|item| format!("\"{item}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn wei(v: &Value) -> u128 {
    v.as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not a wei string: {v}"))
}

impl Drop for World {
    fn drop(&mut self) {
        self.client.take();
        let mut all: Vec<&Netns> = vec![&self.cl, &self.hub, &self.origin];
        all.extend(self.providers.iter().map(|p| &p.ns));
        for ns in all {
            ns.kill_processes();
        }
        let _ = std::fs::remove_file(flowshield_tunnel::uapi::socket_path(&self.client_iface));
        for p in &self.providers {
            let _ = std::fs::remove_file(flowshield_tunnel::uapi::socket_path(&p.iface));
        }
    }
}
