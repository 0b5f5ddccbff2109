//! The client's configuration file (TOML).
//!
//! ```toml
//! identity_file = "/var/lib/flowshield-market/client.key"  # libp2p key (created 0600)
//! fullnodes = ["http://10.250.0.1:8101", "http://10.250.0.2:8101"]  # tried in order
//! bootstrap = ["/ip4/10.250.0.1/tcp/4101/p2p/12D3Koo..."]           # for the DHT fallback
//! interface = "fsclient0"
//! escrow_wei = "10000000000000000"          # escrowed per order (the most one order can cost)
//! region = "eu-west"                         # optional; --region overrides
//! max_price_per_gib_wei = "2000000000000000" # optional; --max-price overrides
//! voucher_secs = 2                           # a new voucher this often
//! max_failed_vouchers = 2                    # unanswered vouchers in a row → fail over
//! state_dir = "/run/flowshield-market"       # wg-quick file and control socket (0600)
//! flowshield_bin = "flowshield"              # the data plane's CLI
//! first_packet_timeout_secs = 15
//! routes = ["198.18.99.1/32"]                # accepted from a provider besides its tunnel subnet
//!
//! [chain]                                    # see crate::chain
//! rpc_url = "http://10.250.0.1:8545"
//! market_address = "0x..."
//! key_file = "/var/lib/flowshield-market/client-chain.key"
//! ```

use crate::chain::ChainFile;
use serde::Deserialize;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientFile {
    pub identity_file: PathBuf,
    pub chain: ChainFile,
    #[serde(default)]
    pub fullnodes: Vec<String>,
    #[serde(default)]
    pub bootstrap: Vec<String>,
    #[serde(default)]
    pub listen: Vec<String>,
    #[serde(default = "default_interface")]
    pub interface: String,
    pub escrow_wei: String,
    pub region: Option<String>,
    pub max_price_per_gib_wei: Option<String>,
    #[serde(default = "default_voucher_secs")]
    pub voucher_secs: u64,
    #[serde(default = "default_max_failed")]
    pub max_failed_vouchers: u32,
    #[serde(default = "default_state_dir")]
    pub state_dir: PathBuf,
    #[serde(default = "default_bin")]
    pub flowshield_bin: PathBuf,
    #[serde(default = "default_first_packet")]
    pub first_packet_timeout_secs: u64,
    /// Routes the client accepts from a provider besides its tunnel subnet.
    #[serde(default)]
    pub routes: Vec<String>,
    /// `routes`, parsed by [`ClientFile::load`].
    #[serde(skip)]
    pub requested_routes: Vec<ipnet::IpNet>,
}

fn default_interface() -> String {
    "fsclient0".into()
}
fn default_voucher_secs() -> u64 {
    2
}
fn default_max_failed() -> u32 {
    2
}
fn default_state_dir() -> PathBuf {
    PathBuf::from("/run/flowshield-market")
}
fn default_bin() -> PathBuf {
    PathBuf::from("flowshield")
}
fn default_first_packet() -> u64 {
    15
}

/// Why the configuration is unusable.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct ConfigError {
    pub path: PathBuf,
    pub reason: String,
}

impl ClientFile {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let err = |reason: String| ConfigError {
            path: path.to_path_buf(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        let mut file: Self = toml::from_str(&text).map_err(|e| err(e.to_string()))?;
        file.requested_routes = file
            .routes
            .iter()
            .map(|r| {
                r.parse::<ipnet::IpNet>().map(|n| n.trunc()).map_err(|_| {
                    err(format!(
                        "routes: '{r}' is not a network like 198.18.99.0/24"
                    ))
                })
            })
            .collect::<Result<_, _>>()?;
        if file.voucher_secs == 0 {
            return Err(err("voucher_secs must be at least 1".into()));
        }
        if file.interface.is_empty() || file.interface.len() > 15 || file.interface.contains('/') {
            return Err(err(format!(
                "interface '{}' is not a valid name",
                file.interface
            )));
        }
        Ok(file)
    }

    /// The unix socket `client disconnect` talks to.
    pub fn control_socket(&self) -> PathBuf {
        self.state_dir.join(format!("{}.ctl", self.interface))
    }

    /// The wg-quick file the client writes for its interface.
    pub fn wg_quick_path(&self) -> PathBuf {
        self.state_dir.join(format!("{}.conf", self.interface))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_defaults_and_names_bad_fields() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "identity_file = \"/k\"\nescrow_wei = \"5\"\n[chain]\nrpc_url = \"http://x\"\nmarket_address = \"0x00\"\nkey_file = \"/c\"\n",
        )
        .unwrap();
        let file = ClientFile::load(&path).unwrap();
        assert_eq!(file.interface, "fsclient0");
        assert_eq!(
            file.control_socket(),
            PathBuf::from("/run/flowshield-market/fsclient0.ctl")
        );
        std::fs::write(
            &path,
            "identity_file = \"/k\"\nescrow_wei = \"5\"\nroutes = [\"10.0.0.0/33\"]\n[chain]\nrpc_url = \"http://x\"\nmarket_address = \"0x00\"\nkey_file = \"/c\"\n",
        )
        .unwrap();
        let err = ClientFile::load(&path).unwrap_err().to_string();
        assert!(err.contains("routes: '10.0.0.0/33'"), "{err}");
        std::fs::write(&path, "identity_file = \"/k\"\nescrow = 5\n").unwrap();
        let err = ClientFile::load(&path).unwrap_err().to_string();
        assert!(err.contains("escrow"), "{err}");
    }
}
