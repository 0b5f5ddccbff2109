//! Running commands with a deadline and their output captured, so a hung
//! `ping` or `ip` fails the test with what it printed instead of hanging it.

use anyhow::{bail, Context};
use std::io::Read;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Deadline for ordinary commands (`ip`, `wg`, `flowshield show`).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// What a finished command printed.
#[derive(Debug)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// `program arg arg ...`, for error messages.
pub fn describe(cmd: &Command) -> String {
    let mut text = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        let arg = arg.to_string_lossy();
        text.push(' ');
        if arg.len() > 200 {
            text.push_str(&arg[..200]);
            text.push_str("...");
        } else {
            text.push_str(&arg);
        }
    }
    text
}

fn drain(mut pipe: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = pipe.read_to_end(&mut buf);
        let _ = tx.send(String::from_utf8_lossy(&buf).into_owned());
    });
    rx
}

/// Sends SIGKILL to a child this harness started, by its pid, and reaps it.
pub fn kill_child(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// Runs `cmd` with no standard input; kills it after `timeout`.
pub fn run_with_timeout(cmd: &mut Command, timeout: Duration) -> anyhow::Result<Output> {
    let what = describe(cmd);
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start `{what}`"))?;
    let stdout = drain(child.stdout.take().expect("piped stdout"));
    let stderr = drain(child.stderr.take().expect("piped stderr"));
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() >= deadline {
            kill_child(&mut child);
            let out = stdout
                .recv_timeout(Duration::from_secs(1))
                .unwrap_or_default();
            let err = stderr
                .recv_timeout(Duration::from_secs(1))
                .unwrap_or_default();
            bail!("`{what}` did not finish within {timeout:?}\nstdout:\n{out}\nstderr:\n{err}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    // A grandchild (a daemon started by `flowshield up`) may keep a pipe
    // open; do not wait for it past a short grace period.
    let grace = Duration::from_secs(2);
    Ok(Output {
        status,
        stdout: stdout.recv_timeout(grace).unwrap_or_default(),
        stderr: stderr.recv_timeout(grace).unwrap_or_default(),
    })
}

/// Runs `cmd` with [`DEFAULT_TIMEOUT`]; fails unless it exits 0. Returns stdout.
pub fn run_ok(cmd: &mut Command) -> anyhow::Result<String> {
    run_ok_timeout(cmd, DEFAULT_TIMEOUT)
}

/// Like [`run_ok`] with an explicit deadline.
pub fn run_ok_timeout(cmd: &mut Command, timeout: Duration) -> anyhow::Result<String> {
    let out = run_with_timeout(cmd, timeout)?;
    if !out.status.success() {
        bail!(
            "`{}` failed ({})\nstdout:\n{}\nstderr:\n{}",
            describe(cmd),
            out.status,
            out.stdout,
            out.stderr
        );
    }
    Ok(out.stdout)
}

/// Polls `check` until it returns `Some`, with backoff from 10 ms to 200 ms;
/// fails after `timeout`, naming `what` was awaited.
pub fn wait_for<T>(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> anyhow::Result<Option<T>>,
) -> anyhow::Result<T> {
    let deadline = Instant::now() + timeout;
    let mut delay = Duration::from_millis(10);
    loop {
        if let Some(value) = check()? {
            return Ok(value);
        }
        if Instant::now() >= deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(delay);
        delay = (delay * 2).min(Duration::from_millis(200));
    }
}
