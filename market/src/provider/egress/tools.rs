//! The thin driver: runs the host's network tools (`nft`, `tc`, `ip`) as
//! child processes, in this process's network namespace or inside a named
//! one (a data plane in its own namespace, as in the end-to-end tests).

use std::io::Write as _;
use std::process::{Command, Stdio};

/// Why a tool could not do what it was asked.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    #[error(
        "cannot run {program}: {source} (is it installed? Debian: apt install nftables iproute2)"
    )]
    Spawn {
        program: String,
        source: std::io::Error,
    },
    #[error("`{command}` failed ({status}): {stderr}")]
    Failed {
        command: String,
        status: std::process::ExitStatus,
        stderr: String,
    },
}

/// Where the tools run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetTools {
    /// `None`: this process's namespace; `Some(name)`: `ip netns exec name`.
    netns: Option<String>,
}

impl NetTools {
    /// Tools acting on this process's network namespace.
    pub fn here() -> Self {
        Self::default()
    }

    /// Tools acting inside the named namespace (`/run/netns/NAME`).
    pub fn in_netns(name: impl Into<String>) -> Self {
        Self {
            netns: Some(name.into()),
        }
    }

    /// Runs `program args...`, feeding it `stdin`; its stdout on success.
    pub fn run(
        &self,
        program: &str,
        args: &[&str],
        stdin: Option<&str>,
    ) -> Result<String, ToolError> {
        let mut command = match &self.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, program]);
                c
            }
            None => Command::new(program),
        };
        command
            .args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let spawn = |source| ToolError::Spawn {
            program: program.to_string(),
            source,
        };
        let mut child = command.spawn().map_err(spawn)?;
        if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
            pipe.write_all(text.as_bytes()).map_err(spawn)?;
        }
        let out = child.wait_with_output().map_err(spawn)?;
        if !out.status.success() {
            return Err(ToolError::Failed {
                command: format!("{program} {}", args.join(" ")),
                status: out.status,
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}
