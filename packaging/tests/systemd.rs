//! The packaged units under a real systemd: the .deb is installed into a
//! Debian tree (debootstrap minbase plus systemd, cached like the package
//! test's under `/var/tmp/flowshield-debootstrap`), the tree is booted with
//! `systemd-nspawn --boot` in its own network namespace with the host's
//! `/dev/net/tun`, and systemd inside starts and stops the units:
//! - `flowshield@flowshield0` (the data plane) comes up: the interface and
//!   both UAPI sockets exist, the restricted one root:flowshield 0660;
//! - `flowshield-provider` (filled-in provider.toml without `[chain]`: it
//!   announces and serves its dashboard but does not sell, see below) stays
//!   active as user flowshield with CAP_NET_ADMIN as its only capability,
//!   and its dashboard shows the data plane's counters read over the
//!   restricted socket through the sandbox (and refuses a rebound Host);
//! - `flowshield-verifier.timer` fires (a drop-in moves it to 1 s after
//!   start) and starts the verifier service, which stops at its
//!   configuration's first placeholder, `chain.rpc_url`, as documented;
//! - stopping the units removes the interface and its sockets.
//!
//! A selling provider (`[chain]`, egress filter and tc shaping) needs a
//! chain and a market contract: `market/tests/adversary.rs` runs that
//! outside systemd. Needs root, systemd-nspawn (systemd-container),
//! debootstrap and what the package test needs: `scripts/setup.sh`.

mod common;

use anyhow::{bail, ensure, Context, Result};
use common::{build_deb, run, stdout, Chroot};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The package's Depends that minbase lacks, and a systemd to boot.
const PACKAGES: &[&str] = &[
    "iproute2",
    "iputils-ping",
    "nftables",
    "systemd",
    "systemd-sysv",
    "dbus",
];
/// Boot, unit start and stop: each well under this.
const WAIT: Duration = Duration::from_secs(60);
/// CAP_NET_ADMIN's bit in /proc/PID/status.
const CAP_NET_ADMIN: u64 = 1 << 12;

fn require_prerequisites() -> Result<()> {
    // SAFETY: geteuid(2) cannot fail.
    ensure!(
        unsafe { libc::geteuid() } == 0,
        "the systemd test needs root (nspawn, chroot): run scripts/test.sh as root"
    );
    for tool in ["systemd-nspawn", "nsenter", "debootstrap", "chroot"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        ensure!(found, "{tool} is not installed: run scripts/setup.sh");
    }
    ensure!(
        Path::new("/dev/net/tun").exists(),
        "/dev/net/tun is missing: the data plane needs TUN"
    );
    Ok(())
}

/// The parent pid of `pid`, from /proc/PID/stat.
fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) state ppid ...": comm may hold spaces, so split after ')'.
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(1)?.parse().ok()
}

/// A process named `systemd` descending from `ancestor`.
fn systemd_below(ancestor: u32) -> Option<u32> {
    let descends = |mut pid: u32| {
        for _ in 0..4 {
            match parent_of(pid) {
                Some(p) if p == ancestor => return true,
                Some(p) if p > 1 => pid = p,
                _ => return false,
            }
        }
        false
    };
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: u32 = e.file_name().to_str()?.parse().ok()?;
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
        (comm.trim() == "systemd" && descends(pid)).then_some(pid)
    })
}

/// A booted container; powered off (or killed) on drop, before its tree
/// is deleted.
struct Container {
    nspawn: Child,
    /// The container's systemd (PID 1 inside), for nsenter.
    leader: u32,
    log: PathBuf,
}

impl Container {
    fn boot(tree: &Path, log: PathBuf) -> Result<Self> {
        let machine = format!("fs-units-{}", std::process::id());
        let nspawn = Command::new("systemd-nspawn")
            .arg("--boot")
            .arg("--directory")
            .arg(tree)
            .arg(format!("--machine={machine}"))
            // No systemd-machined on the host to register with; our own
            // network namespace (only lo) keeps the interface and its
            // routes off the host.
            .args(["--register=no", "--keep-unit", "--private-network"])
            .args(["--bind=/dev/net/tun", "--console=passive"])
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log)?)
            .stderr(std::fs::File::create(log.with_extension("err"))?)
            .spawn()
            .context("cannot run systemd-nspawn")?;
        let mut container = Self {
            leader: 0,
            nspawn,
            log,
        };
        let deadline = Instant::now() + WAIT;
        // The leader exists a moment after nspawn forks it: look it up.
        container.leader = loop {
            if let Some(pid) = systemd_below(container.nspawn.id()) {
                break pid;
            }
            if let Some(status) = container.nspawn.try_wait()? {
                bail!(
                    "systemd-nspawn exited ({status}) before booting:\n{}",
                    container.logs()
                );
            }
            ensure!(
                Instant::now() < deadline,
                "no systemd in the container:\n{}",
                container.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        // systemctl talks to systemd over its private socket: wait for it.
        let private = format!("/proc/{}/root/run/systemd/private", container.leader);
        while !Path::new(&private).exists() {
            ensure!(
                Instant::now() < deadline,
                "systemd in the container never opened {private}:\n{}",
                container.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        // Blocks until boot is finished; "degraded" would name failed units.
        let state = container.exec(&["systemctl", "is-system-running", "--wait"]);
        let state = state.unwrap_or_else(|e| e.to_string());
        ensure!(
            state.trim() == "running",
            "the container booted {}: {}\n{}",
            state.trim(),
            container
                .exec(&["systemctl", "--failed", "--no-pager"])
                .unwrap_or_default(),
            container.logs()
        );
        Ok(container)
    }

    fn logs(&self) -> String {
        let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
        format!(
            "{}{}",
            read(&self.log),
            read(&self.log.with_extension("err"))
        )
    }

    /// `argv` inside the container (all its namespaces), within [`WAIT`].
    fn command(&self, argv: &[&str]) -> Command {
        let mut cmd = Command::new("timeout");
        cmd.arg(WAIT.as_secs().to_string())
            .args([
                "nsenter",
                "--target",
                &self.leader.to_string(),
                "--all",
                "--",
            ])
            .args(argv)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("LC_ALL", "C")
            .env("SYSTEMD_PAGER", "");
        cmd
    }

    fn exec(&self, argv: &[&str]) -> Result<String> {
        Ok(stdout(&run(&mut self.command(argv))?))
    }

    /// `systemctl show UNIT -p PROPERTY --value`.
    fn property(&self, unit: &str, property: &str) -> Result<String> {
        Ok(self
            .exec(&["systemctl", "show", unit, "-p", property, "--value"])?
            .trim()
            .to_string())
    }

    /// The unit's journal (for failure messages and checks).
    fn journal(&self, unit: &str) -> String {
        self.exec(&["journalctl", "-u", unit, "--no-pager", "-o", "cat"])
            .unwrap_or_else(|e| e.to_string())
    }

    /// Polls `check` until it holds, within [`WAIT`] (systemd has no
    /// "wait until a unit's process printed X" to block on).
    fn wait_until(&self, what: &str, mut check: impl FnMut() -> Result<bool>) -> Result<()> {
        let deadline = Instant::now() + WAIT;
        while !check()? {
            ensure!(Instant::now() < deadline, "{what}: not within {WAIT:?}");
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(())
    }

    /// A raw HTTP/1.1 GET from inside the container's network namespace.
    fn http_get(&self, port: u16, path: &str, host: &str) -> Result<(u16, String)> {
        let netns = std::fs::File::open(format!("/proc/{}/ns/net", self.leader))?;
        let (path, host) = (path.to_string(), host.to_string());
        std::thread::spawn(move || -> Result<(u16, String)> {
            use std::os::fd::AsRawFd;
            // SAFETY: setns on a valid namespace fd; this thread only.
            let rc = unsafe { libc::setns(netns.as_raw_fd(), libc::CLONE_NEWNET) };
            ensure!(rc == 0, "setns: {}", std::io::Error::last_os_error());
            let mut stream = std::net::TcpStream::connect(("127.0.0.1", port))?;
            stream.set_read_timeout(Some(WAIT))?;
            write!(
                stream,
                "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
            )?;
            let mut answer = String::new();
            stream.read_to_string(&mut answer)?;
            let status = answer
                .split(' ')
                .nth(1)
                .and_then(|s| s.parse().ok())
                .with_context(|| format!("not HTTP: {answer}"))?;
            Ok((status, answer))
        })
        .join()
        .map_err(|_| anyhow::anyhow!("the HTTP thread panicked"))?
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = self.command(&["systemctl", "poweroff"]).output();
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.nspawn.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.nspawn.kill();
        let _ = self.nspawn.wait();
    }
}

/// The packaged provider.toml with a site's values, announcing only (no
/// `[chain]` table, so `chain_address` is given).
fn provider_config(shipped: &str, chain_address: &str) -> Result<String> {
    let mut text = shipped
        .replace(
            "<multiaddr of a fullnode>",
            // Nobody listens there: the provider keeps retrying, as it
            // would while its fullnode is down.
            "/ip4/127.0.0.1/tcp/4999/p2p/12D3KooWLiuAhzaG5UnQLhYgMa6uJuKTJgXhv7xKRXeKQwmTkPv8",
        )
        .replace("<region>", "eu-west")
        .replace("<public IPv4 address>", "203.0.113.7")
        .replace(
            "# chain_address = \"<0x address>\"",
            &format!("chain_address = \"{chain_address}\""),
        );
    let start = text
        .find("\n[chain]")
        .context("provider.toml has no [chain]")?;
    let end = start
        + text[start + 1..]
            .find("\n[")
            .context("nothing after [chain]")?
        + 1;
    text.replace_range(start..end, "\n");
    let left: Vec<&str> = text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#') && l.contains('<'))
        .collect();
    ensure!(left.is_empty(), "placeholders left: {left:?}");
    Ok(text)
}

/// Effective capabilities of `pid` inside the container.
fn effective_caps(container: &Container, pid: &str) -> Result<u64> {
    let status = container.exec(&["cat", &format!("/proc/{pid}/status")])?;
    let hex = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .context("no CapEff")?;
    Ok(u64::from_str_radix(hex.trim(), 16)?)
}

#[test]
fn units_start_sandboxed_fire_and_stop_under_systemd() -> Result<()> {
    require_prerequisites()?;
    let deb = build_deb()?;
    let tree = Chroot::create_with(PACKAGES)?;
    tree.dpkg_install(&deb)?;

    // The site's values, as an operator fills them in.
    let keys = tree.run(&[
        "flowshield-market",
        "keys",
        "--identity",
        "/etc/flowshield/provider.key",
        "--chain-key",
        "/etc/flowshield/chain.key",
    ])?;
    let chain_address = keys
        .lines()
        .find_map(|l| l.strip_prefix("chain_address "))
        .context("keys printed no chain_address")?
        .trim()
        .to_string();
    let config = tree.host_path("/etc/flowshield/provider.toml");
    let filled = provider_config(&std::fs::read_to_string(&config)?, &chain_address)?;
    std::fs::write(&config, filled)?;
    // The verifier timer, 1 s after it starts instead of every 5 minutes.
    let dropin = tree.host_path("/etc/systemd/system/flowshield-verifier.timer.d");
    std::fs::create_dir_all(&dropin)?;
    std::fs::write(
        dropin.join("test.conf"),
        "[Timer]\nOnActiveSec=1s\nRandomizedDelaySec=0\n",
    )?;

    // nspawn's console output, quoted when the boot fails.
    let logs = tempfile::tempdir_in("/var/tmp")?;
    let started = Instant::now();
    let container = Container::boot(tree.path(), logs.path().join("nspawn.log"))?;
    let result = exercise(&container, &chain_address);
    eprintln!("booted and exercised in {:?}", started.elapsed());
    // Powered off before the tree is deleted.
    drop(container);
    result
}

fn exercise(c: &Container, chain_address: &str) -> Result<()> {
    // The data plane.
    c.exec(&["systemctl", "start", "flowshield@flowshield0.service"])
        .with_context(|| c.journal("flowshield@flowshield0.service"))?;
    ensure!(c.property("flowshield@flowshield0.service", "ActiveState")? == "active");
    c.exec(&["ip", "link", "show", "dev", "flowshield0"])?;
    let sockets = c.exec(&[
        "stat",
        "-c",
        "%n %a %U:%G",
        "/run/wireguard/flowshield0.sock",
        "/run/wireguard/restricted/flowshield0.sock",
    ])?;
    ensure!(
        sockets.contains("/run/wireguard/flowshield0.sock 600 root:root")
            && sockets.contains("/run/wireguard/restricted/flowshield0.sock 660 root:flowshield"),
        "UAPI sockets: {sockets}"
    );

    // The provider, sandboxed, as user flowshield.
    let provider = "flowshield-provider.service";
    c.exec(&["systemctl", "start", provider])?;
    c.wait_until("the provider's dashboard line", || {
        ensure!(
            c.property(provider, "ActiveState")? != "failed",
            "{provider} failed:\n{}",
            c.journal(provider)
        );
        Ok(c.journal(provider)
            .contains("dashboard http://127.0.0.1:8090/"))
    })?;
    ensure!(
        c.property(provider, "ActiveState")? == "active"
            && c.property(provider, "NRestarts")? == "0",
        "{provider} is not steadily active:\n{}",
        c.journal(provider)
    );
    let pid = c.property(provider, "MainPID")?;
    let user = c.exec(&["stat", "-c", "%U", &format!("/proc/{pid}")])?;
    ensure!(user.trim() == "flowshield", "provider runs as {user}");
    let caps = effective_caps(c, &pid)?;
    ensure!(
        caps == CAP_NET_ADMIN,
        "provider's effective capabilities {caps:#x}, want CAP_NET_ADMIN only"
    );
    let (status, answer) = c.http_get(8090, "/api/status", "127.0.0.1:8090")?;
    ensure!(status == 200, "{answer}");
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
    let json: serde_json::Value = serde_json::from_str(body).context("dashboard JSON")?;
    ensure!(
        json["identity"]["chain_address"]
            .as_str()
            .is_some_and(|a| a.eq_ignore_ascii_case(chain_address)),
        "{json}"
    );
    // Counters read by user flowshield over the restricted socket, through
    // ProtectSystem=strict and friends.
    ensure!(
        json["traffic"]["state"] == "ok",
        "traffic: {}",
        json["traffic"]
    );
    ensure!(json["identity"]["wg_public_key"]
        .as_str()
        .is_some_and(|k| k.len() == 44));
    let (status, _) = c.http_get(8090, "/api/status", "evil.example:8090")?;
    ensure!(status == 421, "rebound Host got {status}");

    // The verifier timer fires and starts its service once.
    let verifier = "flowshield-verifier.service";
    c.exec(&["systemctl", "start", "flowshield-verifier.timer"])?;
    c.wait_until("the verifier service's start", || {
        Ok(
            c.property(verifier, "InactiveExitTimestampMonotonic")? != "0"
                && c.property(verifier, "ActiveState")? != "activating",
        )
    })?;
    ensure!(c.property("flowshield-verifier.timer", "LastTriggerUSecMonotonic")? != "0");
    let journal = c.journal(verifier);
    ensure!(
        journal.contains("chain.rpc_url") && c.property(verifier, "Result")? == "exit-code",
        "the verifier did not stop at its unfilled configuration:\n{journal}"
    );

    // Stopping takes the interface and its sockets away.
    c.exec(&[
        "systemctl",
        "stop",
        provider,
        "flowshield@flowshield0.service",
    ])?;
    ensure!(c.property(provider, "ActiveState")? == "inactive");
    ensure!(c.property("flowshield@flowshield0.service", "ActiveState")? == "inactive");
    let gone = c
        .command(&["ip", "link", "show", "dev", "flowshield0"])
        .output()?;
    ensure!(!gone.status.success(), "flowshield0 survived its stop");
    let left = c.exec(&[
        "sh",
        "-c",
        "ls /run/wireguard /run/wireguard/restricted 2>/dev/null || true",
    ])?;
    ensure!(!left.contains("flowshield0.sock"), "sockets left: {left}");
    Ok(())
}
