//! End-to-end test harness for the `flowshield` data plane.
//!
//! The tests under `tests/tests/` run real daemons — `flowshield daemon`,
//! `flowshield up`, and wireguard-go for interoperability — inside network
//! namespaces joined by veth pairs, configure them with the real `wg` from
//! wireguard-tools or with wg-quick files, and check traffic, counters and
//! error handling from outside. This crate is the harness they share:
//!
//! - [`netns::Netns`]: a namespace with a unique name, deleted on drop, and
//!   [`netns::VethPair`] to join two of them;
//! - [`daemon::Daemon`]: a data-plane daemon (flowshield or wireguard-go)
//!   started in a namespace, ready once its UAPI socket answers, stopped on
//!   drop, its log printed so failed tests show it;
//!   [`daemon::QuickUp`]: an interface brought up by `flowshield up`;
//! - [`dropin`]: `flowshieldd`, the wireguard-go drop-in, run detached or
//!   by Debian's wg-quick, with guards that kill detached daemons;
//! - [`wg`]: keys, `wg` and UAPI helpers, `flowshield show --json`;
//! - [`site::Site`]: a namespace with one interface, keys and addresses,
//!   configured by `wg set`, `wg setconf` or a wg-quick file;
//! - [`traffic`]: ping, TCP echo and raw UDP through the `e2e-helper` binary.
//!
//! Everything a test creates is removed by drop guards, also when the test
//! panics; [`cleanup_stale`] removes what a killed earlier run left behind.
//! All names carry this process's pid, so parallel tests and test binaries
//! never collide.
//!
//! It is not a unit-test helper for the tunnel crate (those tests live beside
//! its code) and it never touches addresses outside the namespaces it made.
//!
//! Running: `cargo build -p flowshield-tunnel && cargo test -p
//! flowshield-e2e` (as root). The test files, one concern each:
//! `quick_up` (wg-quick files, `show --json`, `down`, config errors, three
//! peers routed by AllowedIPs), `interop` (flowshield ↔ wireguard-go, each
//! side initiating), `uapi_errors` (malformed and non-atomic `set`),
//! `garbage_udp` (junk datagrams and unknown keys counted and dropped),
//! `roaming` (endpoint roaming, persistent keepalive), `reconfigure` (peer
//! removal, listen-port change, full-MTU packets), `daemon_lifecycle`
//! (signals, link deletion, one daemon per interface), `keys`,
//! `wg_quick_dropin` (flowshieldd under the real wg-quick, default route by
//! fwmark, the TUN link moved to another namespace), `sticky_source`
//! (replies from the address the peer wrote to, IPv4 and IPv6),
//! `conformance` (the scenarios of wireguard-go's tests/netns.sh),
//! `multicore` (a four-worker hub carrying eight peers at once, the
//! workers' TUN queues and sockets, `--threads` validation).
//! Failing tests print the daemons' logs.
//!
//! Requirements: root, `ip`, `wg`, `wireguard-go`, `ping`; the `flowshield`
//! binary built in the same target profile as the tests (`cargo build -p
//! flowshield-tunnel`), or named by `FLOWSHIELD_BIN`. A missing requirement
//! fails the test with a message saying what to do; nothing is skipped.

pub mod daemon;
pub mod dropin;
pub mod netns;
pub mod process;
pub mod site;
pub mod traffic;
pub mod wg;

use anyhow::{bail, Context};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Once;
use std::time::SystemTime;

/// Prefix of every namespace name this harness creates.
pub const NETNS_PREFIX: &str = "fse2e-";
/// Prefix of every WireGuard interface name this harness creates.
pub const IFACE_PREFIX: &str = "fe";
/// Prefix of every veth name this harness creates.
pub const VETH_PREFIX: &str = "fv";

static COUNTER: AtomicU32 = AtomicU32::new(0);

fn next_id() -> u32 {
    COUNTER.fetch_add(1, Ordering::Relaxed)
}

/// A new interface name, unique across threads and processes:
/// `fe<pid>i<n>` (at most 13 characters; the kernel allows 15).
pub fn unique_iface() -> String {
    format!("{IFACE_PREFIX}{}i{}", std::process::id(), next_id())
}

/// A new namespace name: `fse2e-<pid>-<n>`.
pub fn unique_netns() -> String {
    format!("{NETNS_PREFIX}{}-{}", std::process::id(), next_id())
}

/// Two new veth names sharing one id: `fv<pid>a<n>`, `fv<pid>b<n>`.
pub fn unique_veth_pair() -> (String, String) {
    let (pid, n) = (std::process::id(), next_id());
    (
        format!("{VETH_PREFIX}{pid}a{n}"),
        format!("{VETH_PREFIX}{pid}b{n}"),
    )
}

/// Fails unless the tests can run here: root, and the tools they drive
/// (the flowshield binary is checked where it is used, [`flowshield_bin`]).
/// Also runs [`cleanup_stale`] once per process.
pub fn require_environment() -> anyhow::Result<()> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    if euid != 0 {
        bail!("the end-to-end tests need root (network namespaces, TUN devices); euid is {euid}");
    }
    for tool in ["ip", "wg", "wireguard-go", "ping"] {
        if find_in_path(tool).is_none() {
            bail!("`{tool}` is not installed (apt-get install iproute2 wireguard-tools wireguard-go iputils-ping)");
        }
    }
    static CLEANUP: Once = Once::new();
    CLEANUP.call_once(cleanup_stale);
    Ok(())
}

fn find_in_path(tool: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(tool))
            .find(|p| p.is_file())
    })
}

/// The `flowshield` binary: `FLOWSHIELD_BIN`, or the one in the target
/// profile directory these tests were built into (`target/debug/`). Fails if
/// it is missing, or older than a source file of the tunnel crate (a stale
/// binary would test old code).
pub fn flowshield_bin() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("FLOWSHIELD_BIN") {
        let path = PathBuf::from(path);
        if !path.is_file() {
            bail!("FLOWSHIELD_BIN={} is not a file", path.display());
        }
        return Ok(path);
    }
    let exe = std::env::current_exe().context("cannot find the test executable")?;
    // target/<profile>/deps/<test>-<hash>  →  target/<profile>/flowshield
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .context("test executable is not in target/<profile>/deps")?;
    let bin = profile_dir.join("flowshield");
    if !bin.is_file() {
        bail!(
            "{} does not exist: run `cargo build -p flowshield-tunnel` (same profile) first, or set FLOWSHIELD_BIN",
            bin.display()
        );
    }
    check_not_stale(&bin)?;
    Ok(bin)
}

fn newest_mtime(dir: &Path) -> Option<SystemTime> {
    let mut newest = None;
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        let time = if path.is_dir() {
            newest_mtime(&path)
        } else {
            entry.metadata().ok().and_then(|m| m.modified().ok())
        };
        newest = newest.max(time);
    }
    newest
}

fn check_not_stale(bin: &Path) -> anyhow::Result<()> {
    let tunnel = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tunnel");
    let built = std::fs::metadata(bin)?.modified()?;
    let mut sources = newest_mtime(&tunnel.join("src"));
    if let Ok(meta) = std::fs::metadata(tunnel.join("Cargo.toml")) {
        sources = sources.max(meta.modified().ok());
    }
    if let Some(sources) = sources {
        if sources > built {
            bail!(
                "{} is older than the sources in {}: run `cargo build -p flowshield-tunnel` first (or set FLOWSHIELD_BIN)",
                bin.display(),
                tunnel.display()
            );
        }
    }
    Ok(())
}

/// The `e2e-helper` binary of this package (built by `cargo test`).
pub fn helper_bin() -> PathBuf {
    // Cargo builds the package's binaries for its integration tests and
    // places them in the profile directory, next to `deps/`.
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>");
    dir.join("e2e-helper")
}

fn pid_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// The pid embedded in one of this harness's names (`<prefix><pid>...`).
fn owner_pid(rest: &str) -> Option<u32> {
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// Removes namespaces, daemons and UAPI sockets that an earlier run of these
/// tests left behind when it was killed: only names with this harness's
/// prefixes whose owning test process is gone.
pub fn cleanup_stale() {
    let me = std::process::id();
    let stale = |rest: &str| owner_pid(rest).is_some_and(|pid| pid != me && !pid_alive(pid));
    let list = process::run_ok(std::process::Command::new("ip").args(["netns", "list"]))
        .unwrap_or_default();
    for line in list.lines() {
        let name = line.split_whitespace().next().unwrap_or_default();
        let Some(rest) = name.strip_prefix(NETNS_PREFIX) else {
            continue;
        };
        if !stale(rest) {
            continue;
        }
        // Processes still inside are daemons an earlier run started.
        netns::kill_processes_in(name);
        eprintln!("e2e: removing stale namespace {name}");
        let _ = process::run_ok(std::process::Command::new("ip").args(["netns", "del", name]));
    }
    if let Ok(entries) = std::fs::read_dir(wg::SOCKET_DIR) {
        for entry in entries.flatten() {
            let file = entry.file_name().to_string_lossy().into_owned();
            let Some(iface) = file.strip_suffix(".sock") else {
                continue;
            };
            if iface.strip_prefix(IFACE_PREFIX).is_some_and(stale) {
                for pid in daemon::daemon_pids(iface) {
                    // SAFETY: kill(2) on a daemon an earlier run started for its own interface.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
                eprintln!("e2e: removing stale socket {file}");
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
}
