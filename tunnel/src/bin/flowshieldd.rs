//! `flowshieldd [-f|--foreground] [--threads N] IFACE`: the FlowShield data plane as a
//! drop-in for `wireguard-go IFACE`, so wg-quick can use it unchanged
//! (`WG_QUICK_USERSPACE_IMPLEMENTATION=flowshieldd wg-quick up wg0`).
//!
//! It creates the TUN device and the UAPI socket
//! (`/var/run/wireguard/IFACE.sock`), then detaches: the command returns 0
//! once the device is ready, or non-zero with the reason if it could not
//! start. `-f` keeps it in the foreground. The daemon logic is
//! [`flowshield_tunnel::service`]; this file only parses arguments and
//! detaches.
//!
//! Detaching re-executes this binary with [`DETACHED_ENV`] set, in a new
//! session, before any runtime or thread exists: the child reports `ready`
//! or `error: REASON` on a pipe (its stdout) and the parent passes that on
//! as its exit status. The detached daemon logs to
//! `/var/log/flowshield/IFACE.log` (or nowhere if that cannot be opened).

use clap::Parser;
use flowshield_logging::LogArgs;
use flowshield_tunnel::service;
use flowshield_tunnel::uapi::SocketAccess;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

/// Set in the detached child; its stdout is then the readiness pipe.
const DETACHED_ENV: &str = "FLOWSHIELDD_DETACHED";
const LOG_DIR: &str = "/var/log/flowshield";

#[derive(Parser)]
#[command(
    name = "flowshieldd",
    version,
    about = "FlowShield userspace WireGuard daemon, a drop-in for wireguard-go"
)]
struct Args {
    #[command(flatten)]
    log: LogArgs,
    /// Stay in the foreground instead of detaching.
    #[arg(short, long)]
    foreground: bool,
    /// Let this group (name or gid) use the UAPI socket (mode 0660).
    #[arg(long, env = "FLOWSHIELD_UAPI_GROUP", value_name = "GROUP")]
    uapi_group: Option<String>,
    #[command(flatten)]
    workers: service::ThreadArgs,
    /// The interface to create.
    iface: String,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if !service::valid_iface_name(&args.iface) {
        eprintln!(
            "flowshieldd: {}",
            service::ServiceError::InterfaceName(args.iface)
        );
        return ExitCode::FAILURE;
    }
    let detached = std::env::var_os(DETACHED_ENV).is_some();
    if !args.foreground && !detached {
        return match detach(&args.iface) {
            Ok(()) => ExitCode::SUCCESS,
            Err(reason) => {
                eprintln!("flowshieldd: {reason}");
                ExitCode::FAILURE
            }
        };
    }
    if let Err(err) = args.log.init() {
        return fail(detached, &err.to_string());
    }
    let access = match SocketAccess::from_group_spec(args.uapi_group.as_deref()) {
        Ok(access) => access,
        Err(err) => return fail(detached, &err.to_string()),
    };
    let ready = || {
        if detached {
            report_ready();
        }
    };
    match service::run(&args.iface, access, None, args.workers.threads(), ready) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => fail(detached, &err.to_string()),
    }
}

/// Reports `reason` on stderr (the log) and, when detached, to the waiting
/// parent.
fn fail(detached: bool, reason: &str) -> ExitCode {
    eprintln!("flowshieldd: {reason}");
    if detached {
        let mut stdout = std::io::stdout();
        let _ = writeln!(stdout, "error: {reason}").and_then(|()| stdout.flush());
    }
    ExitCode::FAILURE
}

/// Tells the parent the device is ready, then points stdout at /dev/null so
/// the pipe closes and nothing later writes into it.
fn report_ready() {
    let mut stdout = std::io::stdout();
    let _ = writeln!(stdout, "ready").and_then(|()| stdout.flush());
    if let Ok(null) = std::fs::File::open("/dev/null") {
        use std::os::fd::AsRawFd;
        // SAFETY: dup2 onto fd 1 with a descriptor we hold open; stdout's
        // buffer was flushed above.
        unsafe { libc::dup2(null.as_raw_fd(), libc::STDOUT_FILENO) };
    }
}

fn log_file(iface: &str) -> (Stdio, Option<PathBuf>) {
    let path = Path::new(LOG_DIR).join(format!("{iface}.log"));
    let opened = std::fs::create_dir_all(LOG_DIR).and_then(|()| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o640)
            .open(&path)
    });
    match opened {
        Ok(file) => {
            let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640));
            (file.into(), Some(path))
        }
        Err(_) => (Stdio::null(), None),
    }
}

/// Starts the detached daemon and waits until it says it is ready (`Ok`)
/// or why it is not (`Err` with the reason).
fn detach(iface: &str) -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find own executable: {e}"))?;
    let (stderr, log) = log_file(iface);
    let mut cmd = Command::new(exe);
    cmd.args(std::env::args_os().skip(1))
        .env(DETACHED_ENV, "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr);
    // SAFETY: setsid(2) is async-signal-safe and touches no memory of ours.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start the daemon: {e}"))?;
    let Some(stdout) = child.stdout.take() else {
        return Err("the daemon has no readiness pipe".into());
    };
    let mut line = String::new();
    let _ = BufReader::new(stdout).read_line(&mut line);
    let line = line.trim_end();
    if line == "ready" {
        return Ok(());
    }
    let status = child.wait();
    if let Some(reason) = line.strip_prefix("error: ") {
        return Err(reason.to_string());
    }
    let status = status.map_or_else(|e| e.to_string(), |s| s.to_string());
    let see = log.map_or_else(String::new, |p| format!("; see {}", p.display()));
    Err(format!(
        "daemon for {iface} exited before it was ready ({status}){see}"
    ))
}
