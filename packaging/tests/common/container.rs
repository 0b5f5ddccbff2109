//! A Debian tree booted with `systemd-nspawn --boot` (see `systemd.rs`
//! and `systemd_selling.rs`): commands run inside it with nsenter, units
//! are started and watched through its systemd, and it is powered off (or
//! killed) on drop.

use super::{run, stdout};
use anyhow::{bail, ensure, Context, Result};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The package's Depends that minbase lacks, and a systemd to boot.
pub const PACKAGES: &[&str] = &[
    "iproute2",
    "iputils-ping",
    "nftables",
    "systemd",
    "systemd-sysv",
    "dbus",
];
/// Boot, unit start and stop: each well under this.
pub const WAIT: Duration = Duration::from_secs(60);
/// CAP_NET_ADMIN's bit in /proc/PID/status.
pub const CAP_NET_ADMIN: u64 = 1 << 12;

pub fn require_prerequisites() -> Result<()> {
    // SAFETY: geteuid(2) cannot fail.
    ensure!(
        unsafe { libc::geteuid() } == 0,
        "the systemd test needs root (nspawn, chroot): run scripts/test.sh as root"
    );
    super::require_tools(&["systemd-nspawn", "nsenter", "debootstrap", "chroot"])?;
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
/// Where a booted container's network lives.
pub enum Network {
    /// A namespace of its own with only `lo` (`--private-network`).
    Private,
    /// A namespace the test made and wired (`--network-namespace-path=`).
    Namespace(PathBuf),
}

pub struct Container {
    nspawn: Child,
    /// The container's systemd (PID 1 inside), for nsenter.
    leader: u32,
    log: PathBuf,
}

impl Container {
    pub fn boot(tree: &Path, log: PathBuf, network: Network) -> Result<Self> {
        let machine = format!("fs-units-{}", std::process::id());
        let mut nspawn = Command::new("systemd-nspawn");
        match network {
            // No systemd-machined on the host to register with; our own
            // network namespace keeps the interface and its routes off
            // the host.
            Network::Private => nspawn.arg("--private-network"),
            // nspawn keeps CAP_NET_ADMIN for --private-network only; this
            // namespace is as much the container's own.
            Network::Namespace(path) => nspawn
                .arg(format!(
                    "--network-namespace-path={}",
                    path.to_str().context("namespace path")?
                ))
                .arg("--capability=CAP_NET_ADMIN"),
        };
        let nspawn = nspawn
            .arg("--boot")
            .arg("--directory")
            .arg(tree)
            .arg(format!("--machine={machine}"))
            .args(["--register=no", "--keep-unit"])
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

    pub fn logs(&self) -> String {
        let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
        format!(
            "{}{}",
            read(&self.log),
            read(&self.log.with_extension("err"))
        )
    }

    /// `argv` inside the container (all its namespaces), within [`WAIT`].
    pub fn command(&self, argv: &[&str]) -> Command {
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

    pub fn exec(&self, argv: &[&str]) -> Result<String> {
        Ok(stdout(&run(&mut self.command(argv))?))
    }

    /// `systemctl show UNIT -p PROPERTY --value`.
    pub fn property(&self, unit: &str, property: &str) -> Result<String> {
        Ok(self
            .exec(&["systemctl", "show", unit, "-p", property, "--value"])?
            .trim()
            .to_string())
    }

    /// The unit's journal (for failure messages and checks).
    pub fn journal(&self, unit: &str) -> String {
        self.exec(&["journalctl", "-u", unit, "--no-pager", "-o", "cat"])
            .unwrap_or_else(|e| e.to_string())
    }

    /// Polls `check` until it holds, within [`WAIT`] (systemd has no
    /// "wait until a unit's process printed X" to block on).
    pub fn wait_until(&self, what: &str, check: impl FnMut() -> Result<bool>) -> Result<()> {
        self.wait_within(what, WAIT, check)
    }

    /// [`Self::wait_until`] with its own deadline (chain transactions,
    /// gossip).
    pub fn wait_within(
        &self,
        what: &str,
        timeout: Duration,
        mut check: impl FnMut() -> Result<bool>,
    ) -> Result<()> {
        let deadline = Instant::now() + timeout;
        while !check()? {
            ensure!(Instant::now() < deadline, "{what}: not within {timeout:?}");
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(())
    }

    /// A raw HTTP/1.1 GET from inside the container's network namespace.
    pub fn http_get(&self, port: u16, path: &str, host: &str) -> Result<(u16, String)> {
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

/// Checks that `unit` runs steadily (active, never restarted) as user
/// flowshield with CAP_NET_ADMIN as its only effective capability;
/// returns its main pid. `context` is quoted when it does not.
pub fn steadily_sandboxed(c: &Container, unit: &str, context: &str) -> Result<String> {
    ensure!(
        c.property(unit, "ActiveState")? == "active" && c.property(unit, "NRestarts")? == "0",
        "{unit} is not steadily active{context}"
    );
    let pid = c.property(unit, "MainPID")?;
    let user = c.exec(&["stat", "-c", "%U", &format!("/proc/{pid}")])?;
    ensure!(user.trim() == "flowshield", "{unit} runs as {user}");
    let caps = effective_caps(c, &pid)?;
    ensure!(
        caps == CAP_NET_ADMIN,
        "{unit}'s effective capabilities {caps:#x}, want CAP_NET_ADMIN only"
    );
    Ok(pid)
}

/// Effective capabilities of `pid` inside the container.
pub fn effective_caps(container: &Container, pid: &str) -> Result<u64> {
    let status = container.exec(&["cat", &format!("/proc/{pid}/status")])?;
    let hex = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .context("no CapEff")?;
    Ok(u64::from_str_radix(hex.trim(), 16)?)
}
