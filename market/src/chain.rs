//! The market sidecar's hold on the chain: the `[chain]` table both the
//! provider and client configuration files carry, secp256k1 key files
//! (hex, 0600, never logged) and the connected [`MarketClient`].

use flowshield_chain::alloy::primitives::{Address, B256};
use flowshield_chain::alloy::signers::local::PrivateKeySigner;
use flowshield_chain::{rpc, Deployment, MarketClient};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// Why the chain could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ChainSetupError {
    #[error("{path}: {reason}")]
    KeyFile { path: PathBuf, reason: String },
    #[error("chain.{field}: {reason}")]
    Field { field: &'static str, reason: String },
    #[error(transparent)]
    Chain(#[from] flowshield_chain::ChainError),
    #[error("chain.deployment: {0}")]
    Deployment(#[from] flowshield_chain::DeploymentError),
}

/// `[chain]` in a configuration file.
///
/// ```toml
/// [chain]
/// rpc_url = "http://10.250.0.1:8545"
/// market_address = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
/// # or, instead of market_address, the manifest `flowshield-market deploy` wrote
/// # (its chain id and contract code are checked against rpc_url's chain):
/// # deployment = "/etc/flowshield/deployment.json"
/// key_file = "/var/lib/flowshield-market/chain.key"   # hex secp256k1 key, 0600
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainFile {
    pub rpc_url: String,
    #[serde(default)]
    pub market_address: Option<String>,
    #[serde(default)]
    pub deployment: Option<PathBuf>,
    pub key_file: PathBuf,
}

impl ChainFile {
    /// The signer from `key_file` and the market it signs for: `market_address`, or
    /// the manifest's market after checking chain id and code against `rpc_url`.
    pub async fn connect(&self) -> Result<(PrivateKeySigner, MarketClient), ChainSetupError> {
        let signer = read_key_file(&self.key_file)?;
        let provider = rpc::connect(&self.rpc_url, signer.clone())?;
        let market = match (&self.market_address, &self.deployment) {
            (Some(text), None) => {
                let address =
                    text.trim()
                        .parse::<Address>()
                        .map_err(|_| ChainSetupError::Field {
                            field: "market_address",
                            reason: format!("'{text}' is not a 0x address"),
                        })?;
                MarketClient::at(address, provider)
            }
            (None, Some(path)) => Deployment::load(path)?.market(provider).await?,
            _ => {
                return Err(ChainSetupError::Field {
                    field: "market_address",
                    reason: "set exactly one of market_address and deployment".into(),
                })
            }
        };
        Ok((signer, market))
    }
}

/// Reads a hex secp256k1 key. Refuses files others can read.
pub fn read_key_file(path: &Path) -> Result<PrivateKeySigner, ChainSetupError> {
    let err = |reason: String| ChainSetupError::KeyFile {
        path: path.to_path_buf(),
        reason,
    };
    let text = flowshield_keyfile::read_private_string(path).map_err(|e| err(e.reason()))?;
    let bytes = hex::decode(text.trim().trim_start_matches("0x"))
        .map_err(|_| err("not a hex key".into()))?;
    let key: [u8; 32] = bytes
        .try_into()
        .map_err(|_| err("a key is 32 bytes".into()))?;
    rpc::signer_from_key(&B256::from(key)).map_err(|e| err(e.to_string()))
}

/// Reads the key at `path`, or creates a new random one there (0600) if
/// absent, as [`crate::identity::load_or_create`] does for the node key.
pub fn load_or_create_key_file(path: &Path) -> Result<PrivateKeySigner, ChainSetupError> {
    match std::fs::symlink_metadata(path) {
        Ok(_) => read_key_file(path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let signer = PrivateKeySigner::random();
            write_key_file(path, &signer)?;
            tracing::info!(path = %path.display(), address = %signer.address(), "created chain key");
            Ok(signer)
        }
        Err(e) => Err(ChainSetupError::KeyFile {
            path: path.to_path_buf(),
            reason: e.to_string(),
        }),
    }
}

/// Writes `signer`'s key as hex, mode 0600 from the start.
pub fn write_key_file(path: &Path, signer: &PrivateKeySigner) -> Result<(), ChainSetupError> {
    let text = format!("{}\n", hex::encode(signer.to_bytes()));
    flowshield_keyfile::write_private(path, text.as_bytes()).map_err(|e| ChainSetupError::KeyFile {
        path: path.to_path_buf(),
        reason: e.reason(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn creates_a_key_once_then_keeps_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/chain.key");
        let first = load_or_create_key_file(&path).unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let second = load_or_create_key_file(&path).unwrap();
        assert_eq!(first.address(), second.address());
    }

    #[tokio::test]
    async fn market_address_or_deployment_exactly_one() {
        let dir = tempfile::tempdir().unwrap();
        let key_file = dir.path().join("chain.key");
        write_key_file(&key_file, &PrivateKeySigner::random()).unwrap();
        let file = |market_address: Option<&str>, deployment: Option<PathBuf>| ChainFile {
            rpc_url: "http://127.0.0.1:1".into(),
            market_address: market_address.map(str::to_string),
            deployment,
            key_file: key_file.clone(),
        };
        let one = "0x0000000000000000000000000000000000000001";
        for f in [file(None, None), file(Some(one), Some("/d.json".into()))] {
            let err = f.connect().await.unwrap_err().to_string();
            assert!(
                err.starts_with("chain.market_address: set exactly one"),
                "{err}"
            );
        }
        let missing = dir.path().join("missing.json");
        let err = file(None, Some(missing.clone()))
            .connect()
            .await
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("chain.deployment:"), "{err}");
        assert!(err.contains(&missing.display().to_string()), "{err}");
    }

    #[test]
    fn key_files_round_trip_and_must_be_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        let signer = PrivateKeySigner::random();
        write_key_file(&path, &signer).unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(read_key_file(&path).unwrap().address(), signer.address());
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = read_key_file(&path).unwrap_err().to_string();
        assert!(err.contains("chmod 600"), "{err}");
        std::fs::write(dir.path().join("bad"), "xyz").unwrap();
        std::fs::set_permissions(
            dir.path().join("bad"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        let err = read_key_file(&dir.path().join("bad"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a hex key"), "{err}");
    }
}
