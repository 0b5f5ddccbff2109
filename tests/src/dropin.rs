//! `flowshieldd`, the wireguard-go drop-in: its binary, running it the way
//! wg-quick and wireguard-go's own test script do (detached), and guards
//! that make sure detached daemons die with the test.

use crate::daemon::{daemon_pids, STOP_TIMEOUT};
use crate::netns::Netns;
use crate::process::{run_with_timeout, wait_for, Output};
use anyhow::{bail, Context};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long `flowshieldd IFACE` or `wg-quick up/down` may take.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// The `flowshieldd` binary beside `flowshield` (same package, same build).
pub fn flowshieldd_bin() -> anyhow::Result<PathBuf> {
    let bin = crate::flowshield_bin()?.with_file_name("flowshieldd");
    if !bin.is_file() {
        bail!(
            "{} does not exist: run `cargo build -p flowshield-tunnel` (same profile) first",
            bin.display()
        );
    }
    Ok(bin)
}

/// Kills, on drop, every daemon still running for the interfaces it
/// tracks: detached daemons are nobody's children, and one left running
/// would also keep its namespace alive.
#[derive(Default)]
pub struct DaemonGuard {
    ifaces: Vec<String>,
}

impl DaemonGuard {
    pub fn track(&mut self, iface: &str) {
        self.ifaces.push(iface.to_string());
    }

    /// The single daemon running for `iface`.
    pub fn pid(iface: &str) -> anyhow::Result<i32> {
        match daemon_pids(iface).as_slice() {
            [pid] => Ok(*pid),
            other => bail!("expected one daemon for {iface}, found {other:?}"),
        }
    }

    /// Waits until no daemon runs for `iface` any more.
    pub fn wait_gone(iface: &str) -> anyhow::Result<()> {
        wait_for(
            &format!("the daemon for {iface} to exit"),
            STOP_TIMEOUT,
            || Ok(daemon_pids(iface).is_empty().then_some(())),
        )
    }
}

impl Drop for DaemonGuard {
    fn drop(&mut self) {
        for iface in &self.ifaces {
            for pid in daemon_pids(iface) {
                eprintln!("e2e: daemon for {iface} still runs; killing pid {pid}");
                // SAFETY: kill(2) on a daemon this test started for its own interface.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
            let _ = std::fs::remove_file(crate::wg::socket_path(iface));
            let log = crate::daemon::quick_log_path(iface);
            if let Ok(text) = std::fs::read_to_string(&log) {
                eprintln!("----- flowshieldd log for {iface} -----\n{text}-----");
            }
            let _ = std::fs::remove_file(log);
        }
    }
}

/// `flowshieldd ARGS` in `ns`; returns its output whatever the status.
pub fn flowshieldd(ns: &Netns, args: &[&str]) -> anyhow::Result<Output> {
    let mut cmd = ns.command(flowshieldd_bin()?);
    cmd.args(args).env("RUST_LOG", "debug");
    run_with_timeout(&mut cmd, COMMAND_TIMEOUT)
}

/// Starts a detached `flowshieldd IFACE` in `ns` (tracked by `guard`) and
/// checks that it returned only once the interface and its UAPI socket
/// exist.
pub fn start_detached(ns: &Netns, iface: &str, guard: &mut DaemonGuard) -> anyhow::Result<()> {
    guard.track(iface);
    let out = flowshieldd(ns, &[iface])?;
    if !out.status.success() {
        bail!(
            "`flowshieldd {iface}` failed ({}):\n{}",
            out.status,
            out.stderr
        );
    }
    crate::wg::uapi_request(iface, "get=1\n\n")
        .with_context(|| format!("flowshieldd {iface} returned before its socket answered"))?;
    ns.ip(&["link", "show", iface])
        .with_context(|| format!("flowshieldd {iface} returned before the link existed"))?;
    Ok(())
}

/// Runs Debian's `wg-quick ACTION CONFIG` in `ns` with flowshieldd as the
/// userspace implementation (found on PATH, as wg-quick looks it up).
pub fn wg_quick(ns: &Netns, action: &str, config: &Path) -> anyhow::Result<Output> {
    let bin_dir = flowshieldd_bin()?
        .parent()
        .context("flowshieldd has no directory")?
        .to_path_buf();
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs = vec![bin_dir];
    dirs.extend(std::env::split_paths(&path));
    let mut cmd = ns.command("wg-quick");
    cmd.args([action])
        .arg(config)
        .env("PATH", std::env::join_paths(dirs)?)
        .env("WG_QUICK_USERSPACE_IMPLEMENTATION", "flowshieldd")
        .env("RUST_LOG", "debug");
    run_with_timeout(&mut cmd, COMMAND_TIMEOUT)
}

/// wireguard-go's test topology (its tests/netns.sh): two flowshieldd
/// daemons started in `ns0`, talking over its loopback (127.0.0.1 or ::1,
/// ports 10000 and 20000), their links `wg1`/`wg2` moved into `ns1`/`ns2`
/// with 192.168.241.1-2/24 and fd00::1-2/24. Endpoints are not set yet.
pub struct Trick {
    pub guard: DaemonGuard,
    pub ns1: Netns,
    pub ns2: Netns,
    pub ns0: Netns,
    pub dir: tempfile::TempDir,
    pub wg1: String,
    pub wg2: String,
    pub key1: crate::wg::KeyPair,
    pub key2: crate::wg::KeyPair,
}

/// Turns IPv6 on in `ns` for `dev` (the harness turns it off by default).
pub fn enable_ipv6(ns: &Netns, dev: &str) -> anyhow::Result<()> {
    for sysctl in [
        "net.ipv6.conf.all.disable_ipv6=0".to_string(),
        format!("net.ipv6.conf.{dev}.disable_ipv6=0"),
    ] {
        ns.run(&["sysctl", "-q", "-w", &sysctl])?;
    }
    Ok(())
}

impl Trick {
    pub fn new() -> anyhow::Result<Self> {
        let mut trick = Trick {
            guard: DaemonGuard::default(),
            ns1: Netns::new()?,
            ns2: Netns::new()?,
            ns0: Netns::new()?,
            dir: tempfile::Builder::new().prefix("fse2e-").tempdir()?,
            wg1: crate::unique_iface(),
            wg2: crate::unique_iface(),
            key1: crate::wg::KeyPair::generate()?,
            key2: crate::wg::KeyPair::generate()?,
        };
        enable_ipv6(&trick.ns0, "lo")?;
        let t = &mut trick;
        for (iface, ns) in [(&t.wg1, &t.ns1), (&t.wg2, &t.ns2)] {
            start_detached(&t.ns0, iface, &mut t.guard)?;
            t.ns0.ip(&["link", "set", iface, "netns", ns.name()])?;
        }
        let sides = [
            (&t.wg1, &t.ns1, &t.key1, "10000", &t.key2, "1", "2"),
            (&t.wg2, &t.ns2, &t.key2, "20000", &t.key1, "2", "1"),
        ];
        for (iface, ns, key, port, peer, me, other) in sides {
            let key_file = key.write_private(t.dir.path(), iface)?;
            let allowed = format!("192.168.241.{other}/32,fd00::{other}/128");
            crate::wg::wg(&[
                "set",
                iface,
                "private-key",
                &key_file.to_string_lossy(),
                "listen-port",
                port,
                "peer",
                &peer.public,
                "allowed-ips",
                &allowed,
            ])?;
            enable_ipv6(ns, iface)?;
            ns.ip(&["addr", "add", &format!("192.168.241.{me}/24"), "dev", iface])?;
            ns.ip(&[
                "addr",
                "add",
                &format!("fd00::{me}/24"),
                "dev",
                iface,
                "nodad",
            ])?;
            ns.ip(&["link", "set", iface, "up"])?;
        }
        Ok(trick)
    }

    /// Points both peers at each other over ns0's loopback: `host` is
    /// "127.0.0.1" or "[::1]".
    pub fn set_endpoints(&self, host: &str) -> anyhow::Result<()> {
        crate::wg::wg(&[
            "set",
            &self.wg1,
            "peer",
            &self.key2.public,
            "endpoint",
            &format!("{host}:20000"),
        ])?;
        crate::wg::wg(&[
            "set",
            &self.wg2,
            "peer",
            &self.key1.public,
            "endpoint",
            &format!("{host}:10000"),
        ])?;
        Ok(())
    }

    /// The endpoint `iface` has for `peer` (`wg show dump`).
    pub fn endpoint_seen_by(
        &self,
        iface: &str,
        peer: &crate::wg::KeyPair,
    ) -> anyhow::Result<Option<String>> {
        Ok(crate::wg::dump(iface)?.peer(&peer.public)?.endpoint.clone())
    }
}
