//! `flowshield-verifier`: the binary. Argument parsing and wiring only; see the library.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use flowshield_logging::LogArgs;
use flowshield_verifier::{display, Config, Verifier};

#[derive(Parser)]
#[command(
    name = "flowshield-verifier",
    version,
    about = "Probe FlowShield providers and report on their quality"
)]
struct Cli {
    #[command(flatten)]
    log: LogArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Probe every target on the configured schedule, forever (or once).
    Run {
        /// Configuration file (TOML).
        #[arg(long)]
        config: PathBuf,
        /// One round now, then exit (for a systemd timer or cron); no
        /// [schedule] needed. Exits 1 if a target could not be probed.
        #[arg(long)]
        once: bool,
    },
    /// Probe one provider now and print the result.
    Probe {
        /// Configuration file (TOML).
        #[arg(long)]
        config: PathBuf,
        /// Target name or provider address.
        provider: String,
    },
    /// Serve probe transfers (run by providers, on their probe address).
    Responder {
        /// Address to listen on, e.g. 10.77.0.1:9909.
        #[arg(long)]
        listen: std::net::SocketAddr,
    },
}

/// Resolves on SIGTERM (systemd, kill) or SIGINT (Ctrl-C), naming which.
async fn stopped() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = tokio::signal::ctrl_c() => "SIGINT",
        },
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            "SIGINT"
        }
    }
}

fn load(path: &std::path::Path) -> anyhow::Result<Config> {
    Config::load(path).with_context(|| format!("configuration {}", path.display()))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    cli.log.init()?;
    match cli.command {
        Command::Run { config, once: true } => {
            let verifier = Verifier::new(load(&config)?).await?;
            // Stopped mid-probe (systemctl stop): the probe's guards remove
            // its interface when the round is dropped.
            let report = tokio::select! {
                r = verifier.round_report() => r?,
                signal = stopped() => {
                    flowshield_verifier::probe::request_stop();
                    anyhow::bail!("{signal}: round abandoned");
                }
            };
            let failed = report.results.iter().filter(|r| !r.verdict.passed).count();
            tracing::info!(
                probed = report.results.len(),
                failed,
                not_run = report.not_run.len(),
                "round finished"
            );
            if !report.not_run.is_empty() {
                let names: Vec<&str> = report.not_run.iter().map(|(n, _)| n.as_str()).collect();
                anyhow::bail!("could not probe: {}", names.join(", "));
            }
        }
        Command::Run {
            config,
            once: false,
        } => {
            let verifier = Verifier::new(load(&config)?).await?;
            tokio::select! {
                r = verifier.run_forever() => r?,
                signal = stopped() => {
                    flowshield_verifier::probe::request_stop();
                    tracing::info!(signal, "stopping");
                }
            }
        }
        Command::Probe { config, provider } => {
            let verifier = Verifier::new(load(&config)?).await?;
            let result = verifier
                .probe_named(&provider, |stage| {
                    eprintln!("{}", display::stage_line(stage))
                })
                .await?;
            println!("{}", display::result_table(&result));
            if !result.verdict.passed {
                std::process::exit(1);
            }
        }
        Command::Responder { listen } => {
            let listener = tokio::net::TcpListener::bind(listen)
                .await
                .with_context(|| format!("cannot listen on {listen}"))?;
            // Tests and supervisors wait for this line.
            println!("listening on {}", listener.local_addr()?);
            flowshield_verifier::probe::responder::serve(listener).await?;
        }
    }
    Ok(())
}
