//! `flowshield`: the FlowShield data-plane daemon and its wg/wg-quick-like
//! command line. All logic lives in the `flowshield_tunnel` library; this
//! binary parses arguments and wires things together.

mod cli;

use clap::{Parser, Subcommand};
use flowshield_logging::LogArgs;

#[derive(Parser)]
#[command(
    name = "flowshield",
    version,
    about = "FlowShield userspace WireGuard data plane"
)]
struct Args {
    #[command(flatten)]
    log: LogArgs,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Bring up an interface from a wg-quick file (path, or name of /etc/wireguard/NAME.conf).
    Up { config: String },
    /// Take down an interface brought up with `up`.
    Down { config: String },
    /// Show interfaces like `wg show`: IFACE, `all` (default) or `interfaces`.
    Show {
        target: Option<String>,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Change an interface like `wg set` (listen-port, fwmark, private-key, peer ...).
    Set {
        iface: String,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Print a new private key.
    Genkey,
    /// Print a new preshared key.
    Genpsk,
    /// Read a private key on standard input and print its public key.
    Pubkey,
    /// Run the data-plane daemon for IFACE in the foreground (as `wireguard-go -f`).
    Daemon {
        iface: String,
        /// Let this group (name or gid) use the UAPI socket: mode 0660 and
        /// group-owned instead of 0600. `up` passes the variable on to the
        /// daemon it starts.
        #[arg(long, env = "FLOWSHIELD_UAPI_GROUP", value_name = "GROUP")]
        uapi_group: Option<String>,
        /// Also serve the restricted UAPI socket
        /// (/var/run/wireguard/restricted/IFACE.sock), mode 0660 for this
        /// group: peers added through it may be changed and removed, counters
        /// read; no private key is shown, and the private key, listen port
        /// and fwmark cannot be set (for the market provider's user).
        #[arg(long, env = "FLOWSHIELD_RESTRICTED_GROUP", value_name = "GROUP")]
        restricted_group: Option<String>,
        #[command(flatten)]
        workers: flowshield_tunnel::service::ThreadArgs,
    },
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    if let Err(err) = args.log.init() {
        eprintln!("flowshield: {err}");
        return std::process::ExitCode::FAILURE;
    }
    let result = match args.command {
        Cmd::Up { config } => cli::quick::up(&config, &args.log),
        Cmd::Down { config } => cli::quick::down(&config),
        Cmd::Show { target, json } => cli::show::show(target.as_deref(), json),
        Cmd::Set { iface, args } => cli::keys::set(&iface, &args),
        Cmd::Genkey => cli::keys::genkey(),
        Cmd::Genpsk => cli::keys::genpsk(),
        Cmd::Pubkey => cli::keys::pubkey(),
        Cmd::Daemon {
            iface,
            uapi_group,
            restricted_group,
            workers,
        } => cli::daemon::run(
            &iface,
            uapi_group.as_deref(),
            restricted_group.as_deref(),
            workers.threads(),
        ),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("flowshield: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
