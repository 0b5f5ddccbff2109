//! Data-plane daemons started for one test: `flowshield daemon IFACE`,
//! `wireguard-go -f IFACE`, or an interface brought up by `flowshield up`.

use crate::netns::Netns;
use crate::process::{run_with_timeout, wait_for};
use crate::wg;
use anyhow::{bail, Context};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a daemon may take to answer on its UAPI socket.
pub const READY_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a daemon may take to exit after SIGTERM or link deletion.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// Which WireGuard implementation runs the interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Implementation {
    Flowshield,
    WireguardGo,
}

/// A foreground daemon owned by the test: SIGTERM then SIGKILL on drop, its
/// leftover socket removed, its log printed (libtest shows it only for
/// failing tests).
pub struct Daemon {
    child: Child,
    iface: String,
    kind: Implementation,
    log: tempfile::NamedTempFile,
}

impl Daemon {
    /// Starts `kind` for a new interface `iface` inside `ns` and waits until
    /// its UAPI socket answers `get=1`.
    pub fn spawn(ns: &Netns, kind: Implementation, iface: &str) -> anyhow::Result<Self> {
        Self::spawn_with_env(ns, kind, iface, &[])
    }

    /// As [`Daemon::spawn`], with extra environment variables for the daemon.
    pub fn spawn_with_env(
        ns: &Netns,
        kind: Implementation,
        iface: &str,
        env: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        crate::require_environment()?;
        let log = tempfile::Builder::new()
            .prefix(&format!("{iface}-"))
            .suffix(".log")
            .tempfile()?;
        let mut cmd = match kind {
            Implementation::Flowshield => {
                let mut cmd = ns.command(crate::flowshield_bin()?);
                cmd.args(["daemon", iface]);
                cmd.env(
                    "RUST_LOG",
                    std::env::var("RUST_LOG").unwrap_or("debug".into()),
                );
                cmd
            }
            Implementation::WireguardGo => {
                let mut cmd = ns.command("wireguard-go");
                cmd.args(["-f", iface]).env("LOG_LEVEL", "debug");
                cmd
            }
        };
        cmd.envs(env.iter().copied());
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.reopen()?)
            .stderr(log.reopen()?)
            .spawn()
            .with_context(|| format!("cannot start {kind:?} for {iface}"))?;
        let mut daemon = Daemon {
            child,
            iface: iface.to_string(),
            kind,
            log,
        };
        daemon.wait_ready()?;
        Ok(daemon)
    }

    fn wait_ready(&mut self) -> anyhow::Result<()> {
        let what = format!(
            "{:?} daemon for {} to answer on its socket",
            self.kind, self.iface
        );
        let result = wait_for(&what, READY_TIMEOUT, || {
            if let Some(status) = self.child.try_wait()? {
                bail!("{:?} for {} exited early ({status})", self.kind, self.iface);
            }
            Ok(wg::uapi_request(&self.iface, "get=1\n\n").ok())
        });
        result.with_context(|| format!("daemon log:\n{}", self.log()))?;
        Ok(())
    }

    pub fn iface(&self) -> &str {
        &self.iface
    }

    pub fn kind(&self) -> Implementation {
        self.kind
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Everything the daemon printed so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    /// Sends `signal` (e.g. `libc::SIGTERM`) to the daemon process.
    pub fn signal(&mut self, signal: i32) {
        if self.is_running() {
            // SAFETY: kill(2) on the pid of our own, not yet reaped, child.
            unsafe { libc::kill(self.child.id() as i32, signal) };
        }
    }

    /// Waits until the process exits by itself (after the link is deleted).
    pub fn wait_exit(&mut self, timeout: Duration) -> anyhow::Result<std::process::ExitStatus> {
        let what = format!("{:?} for {} to exit", self.kind, self.iface);
        wait_for(&what, timeout, || Ok(self.child.try_wait()?))
    }

    fn stop(&mut self) {
        if self.is_running() {
            // SAFETY: kill(2) on the pid of our own child.
            unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
            if self.wait_exit(STOP_TIMEOUT).is_err() {
                eprintln!("e2e: {} ignored SIGTERM; killing it", self.iface);
                crate::process::kill_child(&mut self.child);
            }
        }
        let _ = std::fs::remove_file(wg::socket_path(&self.iface));
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
        eprintln!(
            "----- {:?} log for {} -----\n{}-----",
            self.kind,
            self.iface,
            self.log()
        );
    }
}

/// Pids of running processes whose command line is a daemon for `iface`
/// (`flowshield daemon IFACE`, `flowshieldd [-f] IFACE` or `wireguard-go -f
/// IFACE`). Used only to clean up daemons this harness started (names carry
/// its prefix and pid).
pub fn daemon_pids(iface: &str) -> Vec<i32> {
    let mut pids = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return pids;
    };
    for entry in entries.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        let is_daemon = args.windows(2).any(|w| {
            (w[0] == b"daemon" || w[0] == b"-f" || w[0].ends_with(b"flowshieldd"))
                && w[1] == iface.as_bytes()
        });
        if is_daemon {
            pids.push(pid);
        }
    }
    pids
}

/// An interface brought up with `flowshield up FILE` inside a namespace.
/// Drop runs `flowshield down` (bounded) and, if the daemon survives, kills
/// it by pid and removes its socket.
pub struct QuickUp {
    ns_name: String,
    iface: String,
    config: PathBuf,
    down: bool,
}

/// Where `flowshield up` sends the daemon's log.
pub fn quick_log_path(iface: &str) -> PathBuf {
    Path::new("/var/log/flowshield").join(format!("{iface}.log"))
}

impl QuickUp {
    /// Runs `flowshield up config` in `ns`; `config`'s stem is the interface.
    pub fn up(ns: &Netns, config: &Path) -> anyhow::Result<Self> {
        Self::up_with_flags(ns, config, &[])
    }

    /// [`QuickUp::up`] with global flags before `up`, e.g. `--log-format json`.
    pub fn up_with_flags(ns: &Netns, config: &Path, flags: &[&str]) -> anyhow::Result<Self> {
        let iface = config
            .file_stem()
            .and_then(|s| s.to_str())
            .context("config file has no stem")?
            .to_string();
        let guard = QuickUp {
            ns_name: ns.name().to_string(),
            iface: iface.clone(),
            config: config.to_path_buf(),
            down: false,
        };
        let mut cmd = ns.command(crate::flowshield_bin()?);
        cmd.args(flags).arg("up").arg(config);
        let out = run_with_timeout(&mut cmd, Duration::from_secs(30))?;
        if !out.status.success() {
            bail!(
                "`flowshield up {}` failed ({}):\n{}\ndaemon log:\n{}",
                config.display(),
                out.status,
                out.stderr,
                std::fs::read_to_string(quick_log_path(&iface)).unwrap_or_default()
            );
        }
        Ok(guard)
    }

    pub fn iface(&self) -> &str {
        &self.iface
    }

    /// The pid of the daemon `up` started, if it runs.
    pub fn daemon_pid(&self) -> Option<i32> {
        daemon_pids(&self.iface).into_iter().next()
    }

    /// Runs `flowshield down target` (the config path or the interface
    /// name) in the namespace; returns its output whatever the exit status.
    pub fn down_with(&mut self, target: &str) -> anyhow::Result<crate::process::Output> {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns_name])
            .arg(crate::flowshield_bin()?)
            .args(["down", target]);
        let out = run_with_timeout(&mut cmd, Duration::from_secs(30))?;
        if out.status.success() {
            self.down = true;
        }
        Ok(out)
    }

    /// `flowshield down CONFIG`.
    pub fn down(&mut self) -> anyhow::Result<crate::process::Output> {
        let config = self.config.to_string_lossy().into_owned();
        self.down_with(&config)
    }
}

impl Drop for QuickUp {
    fn drop(&mut self) {
        if !self.down {
            if let Err(err) = self.down() {
                eprintln!("e2e: flowshield down {} failed: {err:#}", self.iface);
            }
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        while self.daemon_pid().is_some() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        for pid in daemon_pids(&self.iface) {
            eprintln!(
                "e2e: daemon for {} still runs; killing pid {pid}",
                self.iface
            );
            // SAFETY: kill(2) on the daemon `flowshield up` started for this test's interface.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        let _ = std::fs::remove_file(wg::socket_path(&self.iface));
        let log_path = quick_log_path(&self.iface);
        eprintln!(
            "----- flowshield up log for {} -----\n{}-----",
            self.iface,
            std::fs::read_to_string(&log_path).unwrap_or_default()
        );
        let _ = std::fs::remove_file(log_path);
    }
}
