//! A local market in network namespaces around a booted container, for a
//! provider that sells under systemd (`systemd_selling.rs`):
//!
//! ```text
//!                 hub: routes between its two links
//!                 chain JSON-RPC 10.251.0.1:8545 (`flowshield-market dev-chain`)
//!                 fullnode /ip4/10.251.0.1/tcp/4100, http://10.251.0.1:8100
//!                 "LAN host" 192.168.50.2 (:80)
//!        10.251.0.1 ┌───────┴───────┐ 10.251.1.1
//!   container 10.251.0.2        client 10.251.1.2
//!   (the packaged units)        (buys a session; 203.0.113.2 and
//!        │ uplink (default route)  192.168.50.2 only through its tunnel)
//!   internet 203.0.113.2 (:80, :25)
//! ```
//!
//! The container's namespace is made here and handed to systemd-nspawn
//! (`--network-namespace-path=`). Processes are stopped (SIGTERM, then
//! SIGKILL) and namespaces deleted on drop, even when a step failed.

use anyhow::{bail, ensure, Context, Result};
use flowshield_e2e::netns::{kill_processes_in, Netns, VethPair};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

pub const HUB: &str = "10.251.0.1";
pub const CONTAINER: &str = "10.251.0.2";
/// What a client may reach through the provider.
pub const INTERNET: &str = "203.0.113.2:80";
/// What the default egress policy drops: SMTP on the internet host, and
/// a private address behind the provider.
pub const SMTP: &str = "203.0.113.2:25";
pub const LAN: &str = "192.168.50.2:80";
/// The provider's `session.client_allowed_ips`, and the client's routes.
pub const CLIENT_ROUTES: &[&str] = &["203.0.113.2/32", "192.168.50.2/32"];
const FULLNODE_HTTP: &str = "10.251.0.1:8100";

/// A process of the test's inside a namespace, its stdout and stderr in
/// files; SIGTERM (then SIGKILL) on drop.
pub struct Daemon {
    name: String,
    child: Child,
    out: PathBuf,
}

impl Daemon {
    fn spawn(ns: &Netns, dir: &Path, name: &str, program: &Path, args: &[&str]) -> Result<Self> {
        let out = dir.join(format!("{name}.out"));
        let child = ns
            .command(program)
            .args(args)
            .env(
                "FLOWSHIELD_CONTRACTS_DIR",
                super::workspace_root().join("contracts"),
            )
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out)?)
            .stderr(std::fs::File::create(out.with_extension("log"))?)
            .spawn()
            .with_context(|| format!("cannot start {name} ({})", program.display()))?;
        Ok(Self {
            name: name.to_string(),
            child,
            out,
        })
    }

    /// Its stdout and the tail of its stderr, for failure messages.
    pub fn logs(&self) -> String {
        let out = std::fs::read_to_string(&self.out).unwrap_or_default();
        let log = std::fs::read_to_string(self.out.with_extension("log")).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(30).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        format!(
            "--- {} stdout:\n{out}--- stderr (tail):\n{}",
            self.name,
            tail.join("\n")
        )
    }

    /// The rest of its first stdout line starting with `prefix` (how these
    /// binaries say they are ready), within `timeout`.
    pub fn wait_line(&mut self, prefix: &str, timeout: Duration) -> Result<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let out = std::fs::read_to_string(&self.out).unwrap_or_default();
            if let Some(rest) = out.lines().find_map(|l| l.strip_prefix(prefix)) {
                return Ok(rest.to_string());
            }
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "{} exited ({status}) before printing {prefix:?}:\n{}",
                    self.name,
                    self.logs()
                );
            }
            ensure!(
                Instant::now() < deadline,
                "{} printed no {prefix:?} within {timeout:?}:\n{}",
                self.name,
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(pid) = libc::pid_t::try_from(self.child.id()) {
            // SAFETY: kill(2) on our own child (`ip netns exec` execs the
            // program in place), not yet reaped, so the pid is still ours.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        // A client settles on chain and the chain stops its node: a moment.
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where a [`Daemon`] of the market runs.
#[derive(Clone, Copy)]
enum Side {
    Hub,
    Client,
}

/// The chain, the fullnode, the client and the hosts around the container.
pub struct Market {
    pub hub: Netns,
    /// The container's network namespace.
    pub container: Netns,
    pub client: Netns,
    pub internet: Netns,
    /// The container's device towards the internet (its default route).
    pub uplink: String,
    pub rpc_url: String,
    pub market_address: String,
    /// Chain addresses of the dev-chain's funded accounts, by name.
    pub accounts: serde_json::Value,
    /// The fullnode's libp2p address, for `bootstrap`.
    pub fullnode: String,
    pub dir: tempfile::TempDir,
    bin: PathBuf,
    /// Started in order, stopped in reverse.
    daemons: Vec<Daemon>,
    _listeners: Vec<TcpListener>,
}

impl Market {
    /// Wires the namespaces, starts the chain (market deployed, accounts
    /// `provider` and `client` funded, their keys in `dir/chain/NAME.key`)
    /// and a fullnode. `bin`: where the release binaries are.
    pub fn start(bin: &Path) -> Result<Self> {
        let hub = Netns::new()?;
        let container = Netns::new()?;
        let client = Netns::new()?;
        let internet = Netns::new()?;
        VethPair::new(&hub, "10.251.0.1/24", &container, "10.251.0.2/24")?;
        VethPair::new(&hub, "10.251.1.1/24", &client, "10.251.1.2/24")?;
        let wan = VethPair::new(&container, "203.0.113.1/24", &internet, "203.0.113.2/24")?;
        hub.ip(&["addr", "add", "192.168.50.2/32", "dev", "lo"])?;
        hub.run(&["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"])?;
        // The provider forwards its clients' traffic (what the data plane
        // file's commented PostUp would do; nspawn keeps /proc/sys
        // read-only inside).
        container.run(&["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"])?;
        container.ip(&["route", "add", "default", "via", "203.0.113.2"])?;
        container.ip(&["route", "add", "10.251.1.0/24", "via", HUB])?;
        container.ip(&["route", "add", "192.168.50.2/32", "via", HUB])?;
        // Only the provider: the internet and the LAN host are reachable
        // through the tunnel alone.
        client.ip(&["route", "add", "10.251.0.0/24", "via", "10.251.1.1"])?;
        let mut listeners = Vec::new();
        for (ns, addr) in [(&internet, INTERNET), (&internet, SMTP), (&hub, LAN)] {
            let addr: SocketAddr = addr.parse()?;
            // Kept open: the kernel completes handshakes without accept.
            listeners.push(ns.run_inside(|| TcpListener::bind(addr))??);
        }
        let mut market = Self {
            hub,
            container,
            client,
            internet,
            uplink: wan.a_dev,
            rpc_url: String::new(),
            market_address: String::new(),
            accounts: serde_json::Value::Null,
            fullnode: String::new(),
            dir: tempfile::Builder::new()
                .prefix("flowshield-selling-")
                .tempdir_in("/var/tmp")?,
            bin: bin.to_path_buf(),
            daemons: Vec::new(),
            _listeners: listeners,
        };
        market.start_chain()?;
        market.start_fullnode()?;
        Ok(market)
    }

    fn spawn(
        &mut self,
        side: Side,
        name: &str,
        program: &str,
        args: &[&str],
    ) -> Result<&mut Daemon> {
        let ns = match side {
            Side::Hub => &self.hub,
            Side::Client => &self.client,
        };
        let daemon = Daemon::spawn(ns, self.dir.path(), name, &self.bin.join(program), args)?;
        self.daemons.push(daemon);
        self.daemons.last_mut().context("just pushed")
    }

    fn start_chain(&mut self) -> Result<()> {
        let keys = self.dir.path().join("chain");
        let keys = keys.to_str().context("key directory")?.to_string();
        let listen = format!("{HUB}:8545");
        let args = [
            "dev-chain",
            "--listen",
            &listen,
            "--dir",
            &keys,
            "--keys",
            "provider,client",
        ];
        let ready = self
            .spawn(Side::Hub, "chain", "flowshield-market", &args)?
            .wait_line("ready ", Duration::from_secs(120))?;
        let info: serde_json::Value =
            serde_json::from_str(&ready).context("dev-chain's ready line")?;
        let text = |key: &str| {
            info[key]
                .as_str()
                .map(str::to_string)
                .with_context(|| format!("dev-chain printed no {key}: {info}"))
        };
        self.rpc_url = text("rpc_url")?;
        self.market_address = text("market_address")?;
        self.accounts = info["accounts"].clone();
        Ok(())
    }

    fn start_fullnode(&mut self) -> Result<()> {
        let dir = self
            .dir
            .path()
            .to_str()
            .context("work directory")?
            .to_string();
        let (db, identity) = (
            format!("sqlite://{dir}/fullnode.db"),
            format!("{dir}/fullnode.p2p"),
        );
        let (rpc, market) = (self.rpc_url.clone(), self.market_address.clone());
        let args = [
            "fullnode",
            "--listen",
            "/ip4/10.251.0.1/tcp/4100",
            "--http",
            FULLNODE_HTTP,
            "--db",
            &db,
            "--identity",
            &identity,
            "--chain-rpc",
            &rpc,
            "--market",
            &market,
        ];
        let fullnode = self.spawn(Side::Hub, "fullnode", "flowshield-market", &args)?;
        let tail = fullnode.wait_line("listening /ip4/10.251.0.1/tcp", Duration::from_secs(30))?;
        fullnode.wait_line("http ", Duration::from_secs(30))?;
        self.fullnode = format!("/ip4/10.251.0.1/tcp{tail}");
        Ok(())
    }

    /// The chain address of the dev-chain's account `name`.
    pub fn account(&self, name: &str) -> Result<String> {
        self.accounts[name]
            .as_str()
            .map(str::to_string)
            .with_context(|| format!("no account {name}: {}", self.accounts))
    }

    /// The funded key file of the dev-chain's account `name` (0600).
    pub fn key_file(&self, name: &str) -> PathBuf {
        self.dir.path().join("chain").join(format!("{name}.key"))
    }

    /// Whether the fullnode lists `chain_address` among its providers
    /// (it admits only providers staked on chain).
    pub fn fullnode_lists(&self, chain_address: &str) -> Result<bool> {
        let body = self.hub.run_inside(|| -> Result<String> {
            let mut stream = TcpStream::connect(FULLNODE_HTTP)?;
            stream.set_read_timeout(Some(Duration::from_secs(10)))?;
            write!(
                stream,
                "GET /v1/providers HTTP/1.1\r\nHost: {FULLNODE_HTTP}\r\nConnection: close\r\n\r\n"
            )?;
            let mut answer = String::new();
            stream.read_to_string(&mut answer)?;
            Ok(answer)
        })??;
        Ok(body.to_lowercase().contains(&chain_address.to_lowercase()))
    }

    /// Starts `flowshield-market client connect` in the client namespace
    /// and returns its `connected` event: a real order on chain, its
    /// tunnel up. The client stays connected until dropped (SIGTERM:
    /// disconnect and settle).
    pub fn connect_client(&mut self) -> Result<serde_json::Value> {
        let dir = self.dir.path().to_path_buf();
        let routes: Vec<String> = CLIENT_ROUTES.iter().map(|r| format!("\"{r}\"")).collect();
        let config = format!(
            r#"identity_file = "{dir}/client.p2p"
fullnodes = ["http://{FULLNODE_HTTP}"]
bootstrap = ["{fullnode}"]
interface = "{interface}"
escrow_wei = "100000000000000000"
region = "eu-west"
voucher_secs = 1
state_dir = "{dir}/client-state"
flowshield_bin = "{bin}"
routes = [{routes}]
[chain]
rpc_url = "{rpc}"
market_address = "{market}"
key_file = "{key}"
"#,
            dir = dir.display(),
            fullnode = self.fullnode,
            interface = self.client_interface(),
            bin = self.bin.join("flowshield").display(),
            routes = routes.join(", "),
            rpc = self.rpc_url,
            market = self.market_address,
            key = self.key_file("client").display(),
        );
        let path = dir.join("client.toml");
        std::fs::write(&path, config)?;
        let path = path.to_str().context("client config path")?.to_string();
        let args = [
            "client",
            "connect",
            "--config",
            &path,
            "--max-price",
            "5000000000000000000",
        ];
        let client = self.spawn(Side::Client, "client", "flowshield-market", &args)?;
        let line = client.wait_line("{", Duration::from_secs(120))?;
        let event: serde_json::Value =
            serde_json::from_str(&format!("{{{line}")).context("the client's connected event")?;
        ensure!(
            event["order_id"].is_number() || event["order_id"].is_string(),
            "{event}"
        );
        Ok(event)
    }

    /// The client's tunnel interface, in its namespace.
    pub fn client_interface(&self) -> String {
        format!("fsc{}", std::process::id())
    }

    /// The logs of every process started here, for failure messages.
    pub fn logs(&self) -> String {
        self.daemons
            .iter()
            .map(Daemon::logs)
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Whether a TCP connection from `ns` to `addr` completes within 3 s.
pub fn reaches(ns: &Netns, addr: &str) -> Result<bool> {
    let addr: SocketAddr = addr.parse()?;
    ns.run_inside(|| TcpStream::connect_timeout(&addr, Duration::from_secs(3)).is_ok())
}

impl Drop for Market {
    fn drop(&mut self) {
        // The client settles while the chain still runs; the chain stops
        // its node on SIGTERM.
        while let Some(daemon) = self.daemons.pop() {
            drop(daemon);
        }
        // What they left (the client's data plane); the container is
        // powered off before this (it is dropped first).
        for ns in [&self.client, &self.hub, &self.internet, &self.container] {
            kill_processes_in(ns.name());
        }
    }
}
