//! Running probe work inside a network namespace.
//!
//! Commands are prefixed with `ip netns exec NAME` (`ip -n NAME` for `ip` itself).
//! Sockets are opened on a short-lived thread that first joins the namespace with
//! `setns(2)`: a socket stays in the namespace it was created in, and the namespace of
//! a thread is its own, so the rest of the process (chain RPC, fullnode HTTP) keeps
//! using the verifier's normal network.

use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::error::ProbeError;

/// Where probe traffic originates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    netns: Option<String>,
}

impl Place {
    /// The namespace `netns` (`None`: the verifier's own).
    pub fn new(netns: Option<String>) -> Self {
        Place { netns }
    }

    /// Name for messages.
    pub fn describe(&self) -> String {
        match &self.netns {
            Some(ns) => format!("netns {ns}"),
            None => "host".into(),
        }
    }

    /// `program` as a command running in this place.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        match &self.netns {
            Some(ns) => {
                let mut cmd = Command::new("ip");
                cmd.args(["netns", "exec", ns]).arg(program);
                cmd
            }
            None => Command::new(program),
        }
    }

    /// `ip [-n NS] args...`, failing unless it exits 0; returns stdout.
    pub fn ip(&self, args: &[&str]) -> Result<String, ProbeError> {
        let mut cmd = Command::new("ip");
        if let Some(ns) = &self.netns {
            cmd.args(["-n", ns]);
        }
        cmd.args(args);
        run(&mut cmd, Duration::from_secs(10))
    }

    /// Run `f` with this place's network: on a thread inside the namespace, or on the
    /// calling thread for the host.
    pub fn enter<T, F>(&self, f: F) -> Result<T, ProbeError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let Some(ns) = &self.netns else {
            return Ok(f());
        };
        let path = format!("/var/run/netns/{ns}");
        let file = std::fs::File::open(&path).map_err(|source| ProbeError::Io {
            what: format!("opening {path}"),
            source,
        })?;
        let handle = std::thread::spawn(move || {
            // SAFETY: setns(2) on an open namespace file; it changes only this thread's
            // network namespace, and the thread ends when `f` returns.
            let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            if rc != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(f())
        });
        let joined = handle.join().map_err(|_| ProbeError::Io {
            what: format!("probe thread in {ns}"),
            source: std::io::Error::other("panicked"),
        })?;
        joined.map_err(|source| ProbeError::Io {
            what: format!("entering netns {ns}"),
            source,
        })
    }
}

fn describe(cmd: &Command) -> String {
    let mut parts = vec![cmd.get_program().to_string_lossy().into_owned()];
    parts.extend(cmd.get_args().map(|a| a.to_string_lossy().into_owned()));
    parts.join(" ")
}

/// Run `cmd` to completion within `timeout` (killed after it); stdout if it exits 0.
pub fn run(cmd: &mut Command, timeout: Duration) -> Result<String, ProbeError> {
    let (status, stdout, stderr) = run_status(cmd, timeout)?;
    if !status.success() {
        return Err(ProbeError::Command {
            command: describe(cmd),
            message: format!("{status}: {}", stderr.trim()),
        });
    }
    Ok(stdout)
}

/// Exit status, stdout and stderr of a command.
pub type Finished = (std::process::ExitStatus, String, String);

/// Run `cmd` within `timeout`; exit status, stdout and stderr whatever the status.
pub fn run_status(cmd: &mut Command, timeout: Duration) -> Result<Finished, ProbeError> {
    run_status_inner(cmd, timeout, false)
}

/// [`run_status`] for measurements: also killed, with [`ProbeError::Stopped`],
/// when the process is stopping. Teardown commands use [`run_status`], which
/// always runs to the end.
pub fn run_status_stoppable(cmd: &mut Command, timeout: Duration) -> Result<Finished, ProbeError> {
    run_status_inner(cmd, timeout, true)
}

fn run_status_inner(
    cmd: &mut Command,
    timeout: Duration,
    stoppable: bool,
) -> Result<Finished, ProbeError> {
    let what = describe(cmd);
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| ProbeError::Command {
            command: what.clone(),
            message: e.to_string(),
        })?;
    // Read both pipes on threads so a chatty child cannot block on a full pipe.
    let mut out = child.stdout.take();
    let mut err = child.stderr.take();
    let out_t = std::thread::spawn(move || read_all(out.as_mut()));
    let err_t = std::thread::spawn(move || read_all(err.as_mut()));
    let deadline = std::time::Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if stoppable && super::check_stop().is_err() => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(ProbeError::Stopped);
            }
            Ok(None) if std::time::Instant::now() < deadline => {
                // Child exit poll, bounded by the deadline.
                std::thread::sleep(Duration::from_millis(10));
            }
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(ProbeError::Timeout {
                    what: format!("`{what}`"),
                    after: timeout,
                });
            }
            Err(e) => {
                return Err(ProbeError::Command {
                    command: what,
                    message: e.to_string(),
                })
            }
        }
    };
    let stdout = out_t.join().unwrap_or_default();
    let stderr = err_t.join().unwrap_or_default();
    Ok((status, stdout, stderr))
}

fn read_all<R: std::io::Read>(r: Option<&mut R>) -> String {
    let mut buf = Vec::new();
    if let Some(r) = r {
        let _ = r.read_to_end(&mut buf);
    }
    String::from_utf8_lossy(&buf).into_owned()
}
