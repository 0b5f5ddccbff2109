//! A throwaway local EVM node (Hardhat's EDR node from `contracts/node_modules`) for tests
//! and demos.
//!
//! Each [`LocalChain`] runs its own `hardhat node` on a free loopback port, in its own
//! process group, and kills that group when dropped. Dev accounts are derived from a
//! per-instance salt (test-only keys: never hold real funds with them) and handed to the
//! node through the environment; the node's stdout (which prints keys) is discarded.
//! Because the keys are unique per instance, `eth_accounts` proves that the node that
//! answers on the port is ours and not one started concurrently by another test.

use std::fs::File;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use alloy::eips::BlockNumberOrTag;
use alloy::primitives::{keccak256, Address, B256, U256};
use alloy::providers::{DynProvider, Provider};
use alloy::signers::local::PrivateKeySigner;

use crate::error::{ChainError, Result};
use crate::rpc;

/// Chain id of the local node (Hardhat's default, pinned in `hardhat.config.js`).
pub const LOCAL_CHAIN_ID: u64 = 31337;

/// Balance of every dev account and of [`LocalChain::funded_signer`] accounts: 10 000 ETH.
pub const DEV_BALANCE_WEI: u128 = 10_000 * 10u128.pow(18);

/// How to start a [`LocalChain`].
#[derive(Debug, Clone)]
pub struct LocalChainOptions {
    /// The `contracts/` folder holding `node_modules/` and `hardhat.config.js`.
    pub contracts_dir: PathBuf,
    /// Number of funded dev accounts.
    pub accounts: usize,
    /// How long to wait for the node to answer `eth_chainId`.
    pub startup_timeout: Duration,
}

impl Default for LocalChainOptions {
    fn default() -> Self {
        let contracts_dir = std::env::var_os("FLOWSHIELD_CONTRACTS_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
        LocalChainOptions {
            contracts_dir,
            accounts: 10,
            startup_timeout: Duration::from_secs(90),
        }
    }
}

/// A running local Hardhat (EDR) node; killed (whole process group) on drop.
pub struct LocalChain {
    child: Child,
    rpc_url: String,
    log_path: PathBuf,
    dev_keys: Vec<B256>,
    salt: String,
    extra_accounts: AtomicU64,
    reader: DynProvider,
}

impl std::fmt::Debug for LocalChain {
    // Hand-written so that the dev keys never end up in logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalChain")
            .field("rpc_url", &self.rpc_url)
            .field("pid", &self.child.id())
            .field("dev_accounts", &self.dev_keys.len())
            .finish_non_exhaustive()
    }
}

/// Dev key `index` of the instance with `salt`: keccak256 of a label (test-only).
fn derive_dev_key(salt: &str, label: &str, index: u64) -> B256 {
    keccak256(format!("flowshield-localchain/{salt}/{label}/{index}"))
}

/// A salt unique to this process, port and moment.
fn instance_salt(port: u16) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{}-{port}-{nanos}", std::process::id())
}

fn free_port() -> Result<u16, std::io::Error> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

impl LocalChain {
    /// Start a node with default options (see [`LocalChainOptions`]).
    pub async fn start() -> Result<Self> {
        Self::start_with(LocalChainOptions::default()).await
    }

    /// Start a node, retrying on a fresh port if the first one was taken meanwhile.
    pub async fn start_with(opts: LocalChainOptions) -> Result<Self> {
        let mut last_err = None;
        for _attempt in 0..3 {
            match Self::try_start(&opts).await {
                Ok(chain) => return Ok(chain),
                Err(e @ ChainError::NodeSpawn { .. }) => return Err(e),
                Err(e) => {
                    tracing::warn!(error = %e, "local chain failed to start, retrying");
                    last_err = Some(e);
                }
            }
        }
        Err(last_err.unwrap_or_else(|| ChainError::NodeNotReady {
            url: String::new(),
            reason: "no attempt made".into(),
            log_tail: String::new(),
        }))
    }

    async fn try_start(opts: &LocalChainOptions) -> Result<Self> {
        let dir = &opts.contracts_dir;
        let hardhat = dir.join("node_modules/.bin/hardhat");
        let spawn_err = |source: std::io::Error| ChainError::NodeSpawn {
            command: format!("{} node", hardhat.display()),
            dir: dir.display().to_string(),
            source,
        };
        if !hardhat.exists() {
            return Err(spawn_err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "hardhat not installed: run contracts/scripts/setup.sh",
            )));
        }
        let port = free_port().map_err(spawn_err)?;
        let rpc_url = format!("http://127.0.0.1:{port}");
        let salt = instance_salt(port);
        let dev_keys: Vec<B256> = (0..opts.accounts.max(1) as u64)
            .map(|i| derive_dev_key(&salt, "dev", i))
            .collect();
        let keys_env = dev_keys
            .iter()
            .map(|k| k.to_string())
            .collect::<Vec<_>>()
            .join(",");
        let log_path = std::env::temp_dir().join(format!(
            "flowshield-hardhat-{}-{port}.log",
            std::process::id()
        ));
        let log = File::create(&log_path).map_err(spawn_err)?;
        let child = Command::new(&hardhat)
            .args([
                "node",
                "--hostname",
                "127.0.0.1",
                "--port",
                &port.to_string(),
            ])
            .current_dir(dir)
            .env("HARDHAT_DISABLE_TELEMETRY_PROMPT", "true")
            .env("FLOWSHIELD_DEV_KEYS", keys_env)
            .env("FLOWSHIELD_DEV_BALANCE", DEV_BALANCE_WEI.to_string())
            .stdin(Stdio::null())
            // stdout lists the accounts' private keys: never keep it.
            .stdout(Stdio::null())
            .stderr(log)
            .process_group(0)
            .spawn()
            .map_err(spawn_err)?;
        let reader = rpc::connect_read_only(&rpc_url)?;
        let mut chain = LocalChain {
            child,
            rpc_url,
            log_path,
            dev_keys,
            salt,
            extra_accounts: AtomicU64::new(0),
            reader,
        };
        chain.wait_ready(opts.startup_timeout).await?;
        tracing::info!(url = %chain.rpc_url, "local chain ready");
        Ok(chain)
    }

    async fn wait_ready(&mut self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let not_ready = |this: &Self, reason: String| ChainError::NodeNotReady {
            url: this.rpc_url.clone(),
            reason,
            log_tail: log_tail(&this.log_path),
        };
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(not_ready(self, format!("node exited with {status}")));
            }
            if let Ok(id) = self.reader.get_chain_id().await {
                if id != LOCAL_CHAIN_ID {
                    return Err(not_ready(self, format!("unexpected chain id {id}")));
                }
                // Is it our node? Its accounts are derived from our salt.
                let accounts = self.reader.get_accounts().await.unwrap_or_default();
                let ours = self.dev_signer(0).map(|s| s.address());
                if accounts.first().copied() == ours {
                    return Ok(());
                }
                return Err(not_ready(self, "another node answers on this port".into()));
            }
            if Instant::now() >= deadline {
                return Err(not_ready(self, format!("no answer within {timeout:?}")));
            }
            // Poll interval, bounded by the deadline above (not a fixed startup sleep).
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// HTTP JSON-RPC URL of the node.
    pub fn rpc_url(&self) -> &str {
        &self.rpc_url
    }

    /// Chain id ([`LOCAL_CHAIN_ID`]).
    pub fn chain_id(&self) -> u64 {
        LOCAL_CHAIN_ID
    }

    /// Private keys of the funded dev accounts (test-only, unique to this instance).
    pub fn dev_private_keys(&self) -> &[B256] {
        &self.dev_keys
    }

    /// Signer for dev account `index`, if it exists.
    pub fn dev_signer(&self, index: usize) -> Option<PrivateKeySigner> {
        self.dev_keys
            .get(index)
            .and_then(|k| rpc::signer_from_key(k).ok())
    }

    /// Addresses of the dev accounts.
    pub fn dev_addresses(&self) -> Vec<Address> {
        (0..self.dev_keys.len())
            .filter_map(|i| self.dev_signer(i).map(|s| s.address()))
            .collect()
    }

    /// A provider signing as `signer`.
    pub fn provider_for(&self, signer: PrivateKeySigner) -> Result<DynProvider> {
        rpc::connect(&self.rpc_url, signer)
    }

    /// A read-only provider (views, balances, raw RPC).
    pub fn reader(&self) -> &DynProvider {
        &self.reader
    }

    /// A brand-new account funded with [`DEV_BALANCE_WEI`] via `hardhat_setBalance`.
    /// Tests sharing a node use these so their nonces never collide.
    pub async fn funded_signer(&self) -> Result<PrivateKeySigner> {
        let n = self.extra_accounts.fetch_add(1, Ordering::Relaxed);
        let signer = rpc::signer_from_key(&derive_dev_key(&self.salt, "extra", n))?;
        self.set_balance(signer.address(), U256::from(DEV_BALANCE_WEI))
            .await?;
        Ok(signer)
    }

    /// Set an account's balance (`hardhat_setBalance`).
    pub async fn set_balance(&self, account: Address, wei: U256) -> Result<()> {
        self.raw("hardhat_setBalance", (account, wei)).await
    }

    /// Balance of `account` in wei.
    pub async fn balance(&self, account: Address) -> Result<U256> {
        self.reader
            .get_balance(account)
            .await
            .map_err(|source| ChainError::Rpc {
                method: "eth_getBalance",
                source: Box::new(source),
            })
    }

    /// Advance the chain clock by `seconds` and mine a block (`evm_increaseTime` + `evm_mine`).
    pub async fn increase_time(&self, seconds: u64) -> Result<()> {
        self.raw("evm_increaseTime", (seconds,)).await?;
        self.mine().await
    }

    /// Mine a block every `ms` milliseconds instead of one per
    /// transaction (`evm_setAutomine false` + `evm_setIntervalMining`), as
    /// a real chain does; `None` goes back to one block per transaction.
    pub async fn set_interval_mining(&self, ms: Option<u64>) -> Result<()> {
        match ms {
            Some(ms) => {
                self.raw("evm_setAutomine", (false,)).await?;
                self.raw("evm_setIntervalMining", (ms,)).await
            }
            None => {
                self.raw("evm_setIntervalMining", (0u64,)).await?;
                self.raw("evm_setAutomine", (true,)).await
            }
        }
    }

    /// Mine one block.
    pub async fn mine(&self) -> Result<()> {
        self.raw("evm_mine", Vec::<u64>::new()).await
    }

    /// Timestamp of the latest block.
    pub async fn latest_timestamp(&self) -> Result<u64> {
        let block = self
            .reader
            .get_block_by_number(BlockNumberOrTag::Latest)
            .await
            .map_err(|source| ChainError::Rpc {
                method: "eth_getBlockByNumber",
                source: Box::new(source),
            })?;
        block
            .map(|b| b.header.timestamp)
            .ok_or_else(|| ChainError::NodeNotReady {
                url: self.rpc_url.clone(),
                reason: "no latest block".into(),
                log_tail: String::new(),
            })
    }

    async fn raw<P>(&self, method: &'static str, params: P) -> Result<()>
    where
        P: alloy::rpc::json_rpc::RpcSend,
    {
        self.reader
            .raw_request::<P, serde_json::Value>(method.into(), params)
            .await
            .map(|_| ())
            .map_err(|source| ChainError::Rpc {
                method,
                source: Box::new(source),
            })
    }
}

impl Drop for LocalChain {
    fn drop(&mut self) {
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: plain syscall; the child leads its own process group (process_group(0)),
        // so -pid addresses exactly the node and anything it spawned.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log_path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_keys_are_valid_and_distinct() {
        let a = rpc::signer_from_key(&derive_dev_key("s", "dev", 0)).map(|s| s.address());
        let b = rpc::signer_from_key(&derive_dev_key("s", "dev", 1)).map(|s| s.address());
        assert!(a.is_ok() && b.is_ok());
        assert_ne!(a.ok(), b.ok());
    }
}
