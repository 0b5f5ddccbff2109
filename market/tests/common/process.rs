//! A process a test started (a market node, a helper server): its stdout
//! lines on a channel, so waits on readiness lines can time out; its stderr
//! in a log file shown when the test fails.

use anyhow::{bail, Context, Result};
use flowshield_e2e::netns::Netns;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A process a test started: stdout lines on a channel, stderr in a log
/// file printed when the process is dropped during a panic. Dropping it
/// kills its process group.
pub struct Proc {
    pub name: String,
    child: Child,
    lines: mpsc::Receiver<String>,
    log: PathBuf,
}

impl Proc {
    /// Runs `program args` inside `ns` with the market's test log filter.
    pub fn spawn(ns: &Netns, dir: &Path, name: &str, program: &str, args: &[&str]) -> Result<Self> {
        let mut command = ns.command(program);
        command
            .args(args)
            .env("RUST_LOG", "info,libp2p=warn,sqlx=warn");
        Self::start(dir, name, &mut command)
    }

    /// Starts `command` in a process group of its own; its stderr goes to
    /// `<dir>/<name>.log`.
    pub fn start(dir: &Path, name: &str, command: &mut Command) -> Result<Self> {
        let log = dir.join(format!("{name}.log"));
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log)?)
            .process_group(0)
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        let stdout = child.stdout.take().context("stdout")?;
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Self {
            name: name.into(),
            child,
            lines,
            log,
        })
    }

    /// The first stdout line satisfying `pick`, within `timeout`.
    pub fn wait_line<T>(
        &self,
        timeout: Duration,
        mut pick: impl FnMut(&str) -> Option<T>,
    ) -> Result<T> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    eprintln!("[{}] {line}", self.name);
                    if let Some(v) = pick(&line) {
                        return Ok(v);
                    }
                }
                Err(_) => bail!(
                    "{}: no expected line within {timeout:?}\nlog:\n{}",
                    self.name,
                    self.log_tail()
                ),
            }
        }
    }

    /// The rest of the first stdout line starting with `prefix`, trimmed.
    pub fn wait_prefix(&self, prefix: &str, timeout: Duration) -> Result<String> {
        self.wait_line(timeout, |line| {
            line.strip_prefix(prefix)
                .map(|rest| rest.trim().to_string())
        })
    }

    /// The next JSON event line with `"event": event`.
    pub fn wait_event(&self, event: &str, timeout: Duration) -> Result<Value> {
        self.wait_line(timeout, |line| {
            serde_json::from_str::<Value>(line)
                .ok()
                .filter(|v| v["event"] == event)
        })
    }

    /// Where its stderr goes.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    pub fn signal(&mut self, signal: i32) {
        // SAFETY: kill(2) on our own child's process group.
        unsafe { libc::kill(-(self.child.id() as i32), signal) };
    }

    pub fn wait_exit(&mut self, timeout: Duration) -> Result<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                bail!("{} still running after {timeout:?}", self.name);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.signal(libc::SIGKILL);
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- {} log ---\n{}", self.name, self.log_tail());
        }
    }
}
