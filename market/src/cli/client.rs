//! `flowshield-market client connect|disconnect`.

use super::terminated;
use anyhow::Result;
use flowshield_market::client::{self, config::ClientFile, control, Overrides};
use flowshield_market::wire::client::ClientEvent;
use std::path::PathBuf;
use std::time::Duration;

#[derive(clap::Subcommand)]
pub enum ClientAction {
    /// Find a provider, open an order, bring the tunnel up, pay as it flows.
    Connect {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        region: Option<String>,
        /// Highest price per GiB, decimal wei.
        #[arg(long)]
        max_price: Option<String>,
    },
    /// Ask the running client to disconnect; waits for settlement on chain.
    Disconnect {
        #[arg(long)]
        config: PathBuf,
        /// Seconds to wait for the answer.
        #[arg(long, default_value_t = 180)]
        timeout_secs: u64,
    },
}

pub async fn run(action: ClientAction) -> Result<()> {
    match action {
        ClientAction::Connect {
            config,
            region,
            max_price,
        } => {
            let file = ClientFile::load(&config)?;
            let overrides = Overrides {
                region,
                max_price_per_gib_wei: max_price,
            };
            // Returns the `disconnected` summary (already printed) or the error.
            client::run(file, overrides, terminated()).await?;
        }
        ClientAction::Disconnect {
            config,
            timeout_secs,
        } => {
            let file = ClientFile::load(&config)?;
            let answer = control::request_disconnect(
                &file.control_socket(),
                Duration::from_secs(timeout_secs),
            )
            .await?;
            println!("{}", serde_json::to_string(&answer)?);
            if !matches!(answer, ClientEvent::Disconnected(_)) {
                anyhow::bail!("the client did not disconnect cleanly");
            }
        }
    }
    Ok(())
}
