//! Network namespaces and veth pairs that exist for one test.

use crate::process::run_ok;
use anyhow::Context;
use std::process::Command;

/// A network namespace with a unique name; deleted (with every device in
/// it) on drop. Loopback is up and IPv6 is off, so no router solicitations
/// or ND traffic disturb byte counters.
pub struct Netns {
    name: String,
}

impl Netns {
    pub fn new() -> anyhow::Result<Self> {
        crate::require_environment()?;
        let name = crate::unique_netns();
        run_ok(Command::new("ip").args(["netns", "add", &name]))?;
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"])?;
        for sysctl in [
            "net.ipv6.conf.all.disable_ipv6=1",
            "net.ipv6.conf.default.disable_ipv6=1",
        ] {
            ns.run(&["sysctl", "-q", "-w", sysctl])?;
        }
        Ok(ns)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `ip netns exec NAME program` as a [`Command`], to add arguments to.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name]).arg(program);
        cmd
    }

    /// Runs `argv` inside the namespace; fails unless it exits 0.
    pub fn run(&self, argv: &[&str]) -> anyhow::Result<String> {
        let (program, args) = argv.split_first().context("empty command")?;
        run_ok(self.command(program).args(args))
    }

    /// [`run_inside`] this namespace.
    pub fn run_inside<T: Send>(&self, f: impl FnOnce() -> T + Send) -> anyhow::Result<T> {
        run_inside(&self.name, f)
    }

    /// SIGKILLs every process inside the namespace (see [`kill_processes_in`]).
    pub fn kill_processes(&self) {
        kill_processes_in(&self.name);
    }

    /// `ip -n NAME args...`.
    pub fn ip(&self, args: &[&str]) -> anyhow::Result<String> {
        run_ok(Command::new("ip").args(["-n", &self.name]).args(args))
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Err(err) = run_ok(Command::new("ip").args(["netns", "del", &self.name])) {
            eprintln!("e2e: cannot delete namespace {}: {err:#}", self.name);
        }
    }
}

/// SIGKILLs every process inside the namespace `name` (`ip netns pids`):
/// daemons a test started there and did not stop. Best effort; nothing is
/// reported.
pub fn kill_processes_in(name: &str) {
    let pids = run_ok(Command::new("ip").args(["netns", "pids", name])).unwrap_or_default();
    for pid in pids
        .split_whitespace()
        .filter_map(|p| p.parse::<i32>().ok())
    {
        // SAFETY: plain kill(2) on a pid read from `ip netns pids` for a
        // namespace this harness created.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
}

/// Runs `f` on a thread that has joined the namespace `name`, so the
/// sockets it opens (and those of threads it starts, such as an async
/// runtime's) are in there: for clients the test itself runs against
/// services bound inside. A panic in `f` is passed on.
pub fn run_inside<T: Send>(name: &str, f: impl FnOnce() -> T + Send) -> anyhow::Result<T> {
    use std::os::fd::AsRawFd;
    let path = format!("/run/netns/{name}");
    let ns = std::fs::File::open(&path).with_context(|| format!("opening {path}"))?;
    std::thread::scope(|scope| {
        let joined = scope
            .spawn(move || {
                // SAFETY: setns(2) with a namespace fd we hold open; it
                // changes this (new, scoped) thread only.
                if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                    return Err(std::io::Error::last_os_error())
                        .with_context(|| format!("setns into {path}"));
                }
                Ok(f())
            })
            .join();
        joined.unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// A veth pair joining two namespaces, each end with an IPv4 address and up
/// (MTU 1500). It disappears with the namespaces, so it needs no guard.
pub struct VethPair {
    pub a_dev: String,
    pub b_dev: String,
}

impl VethPair {
    /// Joins `a` and `b`; `a_cidr`/`b_cidr` like "198.18.0.1/24".
    pub fn new(a: &Netns, a_cidr: &str, b: &Netns, b_cidr: &str) -> anyhow::Result<Self> {
        let (a_dev, b_dev) = crate::unique_veth_pair();
        run_ok(Command::new("ip").args([
            "link", "add", &a_dev, "netns", &a.name, "type", "veth", "peer", "name", &b_dev,
            "netns", &b.name,
        ]))?;
        for (ns, dev, cidr) in [(a, &a_dev, a_cidr), (b, &b_dev, b_cidr)] {
            ns.ip(&["addr", "add", cidr, "dev", dev])?;
            ns.ip(&["link", "set", dev, "mtu", "1500", "up"])?;
        }
        Ok(VethPair { a_dev, b_dev })
    }
}
