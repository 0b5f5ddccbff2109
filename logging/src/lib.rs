//! Logging for the FlowShield binaries: one set of flags, one behaviour.
//!
//! Every binary flattens [`LogArgs`] into its command line and calls
//! [`LogArgs::init`] first thing, so `flowshield`, `flowshield-market`,
//! `flowshield-verifier` and `flowshield-ca` all accept:
//!
//! - `-v` / `--verbose`: debug logs from FlowShield's own crates; `-vv` debug
//!   from every crate (libp2p, hyper …); `-vvv` trace.
//! - `--log FILTER`: an explicit [`EnvFilter`] directive such as
//!   `warn,flowshield_market=debug`; it wins over `RUST_LOG`, which wins
//!   over `-v`.
//! - `--log-format human|json`: human lines (ANSI colours only on a
//!   terminal) or one JSON object per event, for journald/Loki/Elastic.
//!
//! Logs always go to standard error: several commands print machine-readable
//! results on standard output.
//!
//! Not here: what to log (that is each crate's business, through `tracing`),
//! and log files (daemons are run by systemd or `flowshield up`, which
//! redirect standard error).

use clap::{ArgAction, Args, ValueEnum};
use std::ffi::OsString;
use std::io::IsTerminal;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

/// FlowShield's own crates: `-v` turns these to debug and leaves
/// dependencies at info.
pub const OWN_CRATES: &[&str] = &[
    "flowshield",
    "flowshield_tunnel",
    "flowshield_market",
    "flowshield_verifier",
    "flowshield_ca",
    "flowshield_chain",
    "flowshield_proto",
];

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("--log: '{filter}' is not a valid filter: {reason}")]
    Filter { filter: String, reason: String },
    #[error("RUST_LOG: '{filter}' is not a valid filter: {reason}")]
    Env { filter: String, reason: String },
    #[error("a logger is already installed")]
    AlreadySet,
}

/// How log events are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One readable line per event.
    #[default]
    Human,
    /// One JSON object per event (timestamp, level, target, fields, spans).
    Json,
}

/// The logging flags, global to every subcommand.
#[derive(Debug, Clone, Default, Args)]
pub struct LogArgs {
    /// More logs: -v debug for FlowShield, -vv debug for everything, -vvv trace.
    #[arg(short, long, action = ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Log filter, e.g. `warn,flowshield_market=debug` (overrides RUST_LOG and -v).
    #[arg(long, global = true, value_name = "FILTER")]
    pub log: Option<String>,
    /// Log format on standard error.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,
}

impl LogArgs {
    /// The filter directive these flags ask for, given `RUST_LOG`'s value.
    /// Explicit `--log` wins, then `RUST_LOG`, then the verbosity.
    pub fn directive(&self, rust_log: Option<&str>) -> (String, Source) {
        if let Some(filter) = &self.log {
            return (filter.clone(), Source::Flag);
        }
        if let Some(env) = rust_log.filter(|v| !v.trim().is_empty()) {
            return (env.to_string(), Source::Env);
        }
        let directive = match self.verbose {
            0 => "info".to_string(),
            1 => {
                let own: Vec<String> = OWN_CRATES.iter().map(|c| format!("{c}=debug")).collect();
                format!("info,{}", own.join(","))
            }
            2 => "debug".to_string(),
            _ => "trace".to_string(),
        };
        (directive, Source::Verbosity)
    }

    /// The parsed filter (see [`LogArgs::directive`]).
    pub fn filter(&self, rust_log: Option<&str>) -> Result<EnvFilter, LogError> {
        let (directive, source) = self.directive(rust_log);
        EnvFilter::try_new(&directive).map_err(|e| match source {
            Source::Env => LogError::Env {
                filter: directive.clone(),
                reason: e.to_string(),
            },
            Source::Flag | Source::Verbosity => LogError::Filter {
                filter: directive.clone(),
                reason: e.to_string(),
            },
        })
    }

    /// Installs the global subscriber writing to standard error.
    pub fn init(&self) -> Result<(), LogError> {
        let rust_log = std::env::var("RUST_LOG").ok();
        let ansi = std::io::stderr().is_terminal();
        self.try_init_with(rust_log.as_deref(), std::io::stderr, ansi)
    }

    /// Installs the global subscriber writing to `writer` (tests use a buffer).
    pub fn try_init_with<W>(
        &self,
        rust_log: Option<&str>,
        writer: W,
        ansi: bool,
    ) -> Result<(), LogError>
    where
        W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
    {
        let filter = self.filter(rust_log)?;
        let builder = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(writer);
        let result = match self.log_format {
            LogFormat::Human => builder.with_ansi(ansi).try_init(),
            LogFormat::Json => builder.json().with_current_span(true).try_init(),
        };
        result.map_err(|_| LogError::AlreadySet)
    }

    /// The same flags as command-line arguments, for a process that starts
    /// another FlowShield process (e.g. `flowshield up` starting its daemon).
    pub fn to_args(&self) -> Vec<OsString> {
        let mut args = Vec::new();
        if self.verbose > 0 {
            args.push(format!("-{}", "v".repeat(usize::from(self.verbose))).into());
        }
        if let Some(filter) = &self.log {
            args.push("--log".into());
            args.push(filter.into());
        }
        if self.log_format != LogFormat::Human {
            args.push("--log-format".into());
            args.push("json".into());
        }
        args
    }
}

/// Where the effective filter came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Flag,
    Env,
    Verbosity,
}

#[cfg(test)]
mod tests;
