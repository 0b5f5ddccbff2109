//! Deploying FlowShield to a chain, and the deployment manifest the binaries read.
//!
//! [`deploy`] deploys the timelock, the market it owns and the DeCA registry (whose
//! ownership then moves to the timelock too), and returns a [`Deployment`]: chain id,
//! addresses, the deploy block, the parameters and the keccak256 of each contract's
//! deployed code. Written as JSON, it is what `--deployment FILE` (or a config's
//! `deployment = "FILE"`) reads instead of bare addresses: [`Deployment::load`] names
//! the field that is wrong, and [`Deployment::verify`] refuses an RPC endpoint on
//! another chain or addresses whose code is missing or differs from the manifest's.
//!
//! ```json
//! {
//!   "format": 1,
//!   "chain_id": 31337,
//!   "deploy_block": 1,
//!   "deployer": "0x…",
//!   "contracts": {
//!     "market":        { "address": "0x…", "code_hash": "0x…" },
//!     "timelock":      { "address": "0x…", "code_hash": "0x…" },
//!     "deca_registry": { "address": "0x…", "code_hash": "0x…" }
//!   },
//!   "timelock": { "min_delay": 172800, "proposers": ["0x…"], "executors": ["0x…"] },
//!   "market_params": { "min_stake": "1000000000000000000", "…": "…" }
//! }
//! ```

use std::path::{Path, PathBuf};

use alloy::primitives::{keccak256, Address, B256};
use alloy::providers::{DynProvider, Provider as _};
use serde::{Deserialize, Serialize};

use crate::bindings::DecaRegistry;
use crate::deca::DecaRegistryClient;
use crate::error::{ChainError, ContractKind};
use crate::governance::Timelock;
use crate::market::{MarketClient, MarketParams};
use crate::tx;

/// The manifest format this code writes and reads.
pub const FORMAT: u32 = 1;

/// Why a manifest could not be used.
#[derive(Debug, thiserror::Error)]
pub enum DeploymentError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The manifest file.
        path: PathBuf,
        /// The IO error.
        source: std::io::Error,
    },
    /// A field is missing or malformed.
    #[error("{path}: {field}: {reason}")]
    Field {
        /// The manifest file.
        path: PathBuf,
        /// Dotted path of the field (`contracts.market.address`).
        field: String,
        /// What is wrong.
        reason: String,
    },
    /// The RPC endpoint serves another chain.
    #[error("chain_id: the manifest is for chain {manifest}, the RPC endpoint serves chain {rpc}")]
    WrongChain {
        /// Chain id in the manifest.
        manifest: u64,
        /// Chain id the RPC endpoint answered.
        rpc: u64,
    },
    /// No code, or other code, at an address of the manifest.
    #[error("contracts.{contract}.address: {reason} at {address}")]
    Code {
        /// Which contract (`market`, `timelock`, `deca_registry`).
        contract: &'static str,
        /// Its address.
        address: Address,
        /// What was found.
        reason: String,
    },
    /// A chain call failed.
    #[error(transparent)]
    Chain(#[from] ChainError),
}

/// One deployed contract.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Deployed {
    /// Its address.
    pub address: Address,
    /// keccak256 of its deployed (runtime) code.
    pub code_hash: B256,
}

/// The deployed contracts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Contracts {
    /// `BandwidthMarket`.
    pub market: Deployed,
    /// `FlowShieldTimelock`, owner of the other two.
    pub timelock: Deployed,
    /// `DecaRegistry`.
    pub deca_registry: Deployed,
}

/// The timelock's settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimelockSettings {
    /// Minimum delay of every governance change, seconds.
    pub min_delay: u64,
    /// Accounts that may schedule (and cancel) changes.
    pub proposers: Vec<Address>,
    /// Accounts that may execute ready changes (`0x0…0`: anyone).
    pub executors: Vec<Address>,
}

/// Wei amounts in a manifest ([`MarketParams`]'s stake and bond fields) as
/// decimal strings.
pub(crate) mod decimal {
    use alloy::primitives::U256;
    use serde::{de::Error as _, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &U256, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&v.to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<U256, D::Error> {
        let text = String::deserialize(d)?;
        if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(D::Error::custom(format!(
                "'{text}' is not a decimal amount of wei"
            )));
        }
        U256::from_str_radix(&text, 10).map_err(|e| D::Error::custom(e.to_string()))
    }
}

/// A deployment manifest (see the module doc).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Deployment {
    /// [`FORMAT`].
    pub format: u32,
    /// EIP-155 chain id.
    pub chain_id: u64,
    /// Block number before the first deployment transaction (event scans start here).
    pub deploy_block: u64,
    /// The account that sent the deployment transactions.
    pub deployer: Address,
    /// The deployed contracts.
    pub contracts: Contracts,
    /// The timelock's settings.
    pub timelock: TimelockSettings,
    /// The market's initial parameters.
    pub market_params: MarketParams,
}

impl Deployment {
    /// Read and check the manifest at `path`; errors name the field.
    pub fn load(path: &Path) -> Result<Self, DeploymentError> {
        let text = std::fs::read_to_string(path).map_err(|source| DeploymentError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text).map_err(|(field, reason)| DeploymentError::Field {
            path: path.to_path_buf(),
            field,
            reason,
        })
    }

    /// Parse manifest text: `Err((field, reason))`.
    pub fn parse(text: &str) -> Result<Self, (String, String)> {
        let mut de = serde_json::Deserializer::from_str(text);
        let d: Deployment = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let field = e.path().to_string();
            let field = if field == "." {
                "(document)".to_string()
            } else {
                field
            };
            (field, e.into_inner().to_string())
        })?;
        if d.format != FORMAT {
            return Err((
                "format".into(),
                format!(
                    "{} is not a known format (this build reads {FORMAT})",
                    d.format
                ),
            ));
        }
        let named = [
            ("contracts.market.address", d.contracts.market.address),
            ("contracts.timelock.address", d.contracts.timelock.address),
            (
                "contracts.deca_registry.address",
                d.contracts.deca_registry.address,
            ),
        ];
        for (field, address) in named {
            if address == Address::ZERO {
                return Err((field.into(), "the zero address".into()));
            }
        }
        Ok(d)
    }

    /// Write as pretty JSON (not secret: 0644 is fine).
    pub fn write(&self, path: &Path) -> Result<(), DeploymentError> {
        let mut text = serde_json::to_string_pretty(self).map_err(|e| DeploymentError::Field {
            path: path.to_path_buf(),
            field: "(document)".into(),
            reason: e.to_string(),
        })?;
        text.push('\n');
        std::fs::write(path, text).map_err(|source| DeploymentError::Io {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Check `provider` against the manifest: same chain id, and at every address the
    /// code whose hash the manifest recorded.
    pub async fn verify(&self, provider: &DynProvider) -> Result<(), DeploymentError> {
        let rpc = provider
            .get_chain_id()
            .await
            .map_err(|source| ChainError::Rpc {
                method: "eth_chainId",
                source: Box::new(source),
            })?;
        if rpc != self.chain_id {
            return Err(DeploymentError::WrongChain {
                manifest: self.chain_id,
                rpc,
            });
        }
        let c = &self.contracts;
        for (name, deployed) in [
            ("market", &c.market),
            ("timelock", &c.timelock),
            ("deca_registry", &c.deca_registry),
        ] {
            let hash = code_hash(provider, deployed.address).await?;
            let reason = match hash {
                None => "no contract code".to_string(),
                Some(h) if h != deployed.code_hash => {
                    format!(
                        "code hash {h} differs from the manifest's {}",
                        deployed.code_hash
                    )
                }
                Some(_) => continue,
            };
            return Err(DeploymentError::Code {
                contract: name,
                address: deployed.address,
                reason,
            });
        }
        Ok(())
    }

    /// The market, through `provider`, after [`Deployment::verify`].
    pub async fn market(&self, provider: DynProvider) -> Result<MarketClient, DeploymentError> {
        self.verify(&provider).await?;
        Ok(MarketClient::at(self.contracts.market.address, provider))
    }

    /// The DeCA registry, through `provider`, after [`Deployment::verify`].
    pub async fn deca_registry(
        &self,
        provider: DynProvider,
    ) -> Result<DecaRegistryClient, DeploymentError> {
        self.verify(&provider).await?;
        Ok(DecaRegistryClient::at(
            self.contracts.deca_registry.address,
            provider,
        ))
    }
}

/// keccak256 of the code at `address`; `None` when there is none.
async fn code_hash(provider: &DynProvider, address: Address) -> Result<Option<B256>, ChainError> {
    let code = provider
        .get_code_at(address)
        .await
        .map_err(|source| ChainError::Rpc {
            method: "eth_getCode",
            source: Box::new(source),
        })?;
    Ok((!code.is_empty()).then(|| keccak256(&code)))
}

/// What [`deploy`] deploys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployPlan {
    /// The market's initial parameters.
    pub params: MarketParams,
    /// The timelock's minimum delay, seconds.
    pub timelock_delay: u64,
    /// Accounts that may propose governance changes.
    pub proposers: Vec<Address>,
    /// Accounts that may execute them (`Address::ZERO`: anyone).
    pub executors: Vec<Address>,
}

/// Deploy timelock, market and DeCA registry through `provider` (its signer pays), hand
/// the registry to the timelock, and describe the result.
pub async fn deploy(provider: DynProvider, plan: &DeployPlan) -> Result<Deployment, ChainError> {
    let rpc_err = |method: &'static str| {
        move |source: alloy::transports::TransportError| ChainError::Rpc {
            method,
            source: Box::new(source),
        }
    };
    let chain_id = provider
        .get_chain_id()
        .await
        .map_err(rpc_err("eth_chainId"))?;
    let deploy_block = provider
        .get_block_number()
        .await
        .map_err(rpc_err("eth_blockNumber"))?;
    let timelock = Timelock::deploy(
        provider.clone(),
        plan.timelock_delay,
        plan.proposers.clone(),
        plan.executors.clone(),
    )
    .await?;
    let market = MarketClient::deploy(provider.clone(), &plan.params, timelock.address()).await?;
    let deca = DecaRegistryClient::deploy(provider.clone()).await?;
    let handover = deca.instance().transferOwnership(timelock.address());
    let receipt = tx::send(ContractKind::Deca, "transferOwnership", handover).await?;
    let deployed = |address: Address| {
        let provider = provider.clone();
        async move {
            let hash = code_hash(&provider, address).await?.ok_or_else(|| {
                ChainError::UnexpectedValue(format!("no code at the new contract {address}"))
            })?;
            Ok::<_, ChainError>(Deployed {
                address,
                code_hash: hash,
            })
        }
    };
    let owner = DecaRegistry::new(deca.address(), provider.clone());
    let deca_owner = tx::call(ContractKind::Deca, "owner", owner.owner()).await?;
    if deca_owner != timelock.address() {
        return Err(ChainError::UnexpectedValue(format!(
            "DecaRegistry owner is {deca_owner}, not the timelock"
        )));
    }
    Ok(Deployment {
        format: FORMAT,
        chain_id,
        deploy_block,
        deployer: receipt.from,
        contracts: Contracts {
            market: deployed(market.address()).await?,
            timelock: deployed(timelock.address()).await?,
            deca_registry: deployed(deca.address()).await?,
        },
        timelock: TimelockSettings {
            min_delay: plan.timelock_delay,
            proposers: plan.proposers.clone(),
            executors: plan.executors.clone(),
        },
        market_params: plan.params.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Deployment {
        let d = |n: u8| Deployed {
            address: Address::repeat_byte(n),
            code_hash: B256::repeat_byte(n),
        };
        Deployment {
            format: FORMAT,
            chain_id: 31337,
            deploy_block: 7,
            deployer: Address::repeat_byte(9),
            contracts: Contracts {
                market: d(1),
                timelock: d(2),
                deca_registry: d(3),
            },
            timelock: TimelockSettings {
                min_delay: 172_800,
                proposers: vec![Address::repeat_byte(9)],
                executors: vec![Address::ZERO],
            },
            market_params: MarketParams::default(),
        }
    }

    fn field_of(text: &str) -> String {
        Deployment::parse(text).expect_err("must fail").0
    }

    #[test]
    fn round_trips_with_decimal_wei() {
        let d = sample();
        let text = serde_json::to_string_pretty(&d).expect("json");
        assert!(
            text.contains("\"min_stake\": \"1000000000000000000\""),
            "{text}"
        );
        assert_eq!(Deployment::parse(&text).expect("parse"), d);
        assert_eq!(d.market_params, MarketParams::default());
    }

    #[test]
    fn errors_name_the_field() {
        let good = serde_json::to_value(sample()).expect("json");
        let with = |pointer: &str, v: serde_json::Value| {
            let mut doc = good.clone();
            *doc.pointer_mut(pointer).expect("pointer") = v;
            doc.to_string()
        };
        let cases = [
            (
                with("/contracts/market/address", "0x12".into()),
                "contracts.market.address",
            ),
            (
                with("/market_params/min_stake", "1e18".into()),
                "market_params.min_stake",
            ),
            (with("/chain_id", "31337".into()), "chain_id"),
            (with("/format", 2.into()), "format"),
            (
                with(
                    "/contracts/deca_registry/address",
                    format!("{}", Address::ZERO).into(),
                ),
                "contracts.deca_registry.address",
            ),
        ];
        for (text, field) in cases {
            assert_eq!(field_of(&text), field, "{text}");
        }
        let mut doc = good.clone();
        doc["contracts"]
            .as_object_mut()
            .expect("object")
            .remove("timelock");
        let e = Deployment::parse(&doc.to_string()).expect_err("missing");
        assert_eq!(e.0, "contracts", "{e:?}");
        assert!(e.1.contains("timelock"), "{e:?}");
        let mut doc = good;
        doc["colour"] = "blue".into();
        let e = Deployment::parse(&doc.to_string()).expect_err("unknown");
        assert!(e.1.contains("colour"), "{e:?}");
    }

    #[test]
    fn load_names_the_file() {
        let dir = std::env::temp_dir().join(format!("fs-deploy-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("deployment.json");
        std::fs::write(&path, "{\"format\": 1}").expect("write");
        let e = Deployment::load(&path).expect_err("incomplete").to_string();
        assert!(e.starts_with(&path.display().to_string()), "{e}");
        sample().write(&path).expect("write");
        assert_eq!(Deployment::load(&path).expect("load"), sample());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
