//! The verifier's TOML configuration: parsed into raw serde structs (unknown keys are
//! refused), then validated into typed values with errors naming the field.
//!
//! ```toml
//! database = "/var/lib/flowshield-verifier/results.db"   # SQLite file (created)
//! fullnodes = ["http://192.0.2.10:8700"]                  # POST {url}/v1/reports
//!
//! [verifier]
//! wg_private_key_file = "/etc/flowshield-verifier/wg.key" # base64, mode 0600
//! flowshield_bin = "flowshield"                           # the data plane binary
//! interface = "fsverify0"                                 # probe interface name
//! netns = "probe"                                         # optional: probe inside it
//!
//! [probe]                     # all optional, defaults shown
//! ping_count = 10
//! ping_interval_ms = 200
//! transfer_bytes = 2097152    # at most 16 MiB
//! transfer_timeout_secs = 5
//! handshake_timeout_secs = 10
//! responder_port = 9909
//! fail_streak = 3             # K: report failure after K consecutive failing probes in
//!                             # a period (default and minimum: the market's failStreak)
//!
//! [schedule]                  # exactly one of cron / interval_secs
//! cron = "*/5 * * * *"
//! jitter_secs = 30
//!
//! [chain]                     # optional for `probe`, required for `run`
//! rpc_url = "http://127.0.0.1:8545"
//! market = "0x…"             # or: deployment = "/etc/flowshield/deployment.json"
//! private_key_file = "/etc/flowshield-verifier/chain.key" # hex, mode 0600
//! source = "chain"            # "config" (default): probe [[targets]]; "chain": see below
//!
//! [[targets]]
//! name = "alpha"
//! provider = "0x…"                  # chain address
//! wg_public_key = "base64…"         # optional with source = "chain"
//! endpoint = "198.51.100.7:51820"   # numeric only: the verifier never resolves names
//! tunnel_address = "10.77.0.2/32"   # the verifier's address inside the tunnel
//! probe_address = "10.77.0.1"       # answers ping, runs the probe responder
//! # Optional, all three or none: used only when the provider registered no quality
//! # promise on chain (or there is no chain), and then failures are never reported.
//! min_throughput_mbps = 10
//! max_loss_pct = 2
//! max_rtt_ms = 100
//! ```
//!
//! Providers are judged against the `QualityPromise` they registered on chain
//! ([`crate::judge`]), not against these thresholds.

use alloy::primitives::Address;
use serde::Deserialize;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::ConfigError;
use crate::schedule::{Jittered, Schedule};
use crate::stats::AdvertisedQuality;
use crate::target::{Cidr, ProbeTarget};
use flowshield_tunnel::key::PublicKey;

/// Largest transfer a probe may ask for: probes must stay small.
pub const MAX_TRANSFER_BYTES: u64 = 16 << 20;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    database: Option<PathBuf>,
    #[serde(default)]
    fullnodes: Vec<String>,
    verifier: RawVerifier,
    #[serde(default)]
    probe: RawProbe,
    schedule: Option<RawSchedule>,
    chain: Option<RawChain>,
    #[serde(default)]
    targets: Vec<RawTarget>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVerifier {
    wg_private_key_file: PathBuf,
    flowshield_bin: Option<PathBuf>,
    interface: Option<String>,
    netns: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProbe {
    ping_count: Option<u32>,
    ping_interval_ms: Option<u64>,
    transfer_bytes: Option<u64>,
    transfer_timeout_secs: Option<f64>,
    handshake_timeout_secs: Option<f64>,
    responder_port: Option<u16>,
    fail_streak: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSchedule {
    cron: Option<String>,
    interval_secs: Option<u64>,
    #[serde(default)]
    jitter_secs: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawChain {
    rpc_url: String,
    market: Option<String>,
    deployment: Option<PathBuf>,
    private_key_file: PathBuf,
    #[serde(default)]
    source: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTarget {
    name: String,
    provider: String,
    wg_public_key: Option<String>,
    endpoint: String,
    tunnel_address: String,
    probe_address: String,
    responder_port: Option<u16>,
    min_throughput_mbps: Option<f64>,
    max_loss_pct: Option<f64>,
    max_rtt_ms: Option<f64>,
}

/// Where probe targets come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    /// The `[[targets]]` list as written.
    Config,
    /// Providers with active orders on the market; endpoint and advertised quality from
    /// the `[[targets]]` entry with the same provider address.
    Chain,
}

/// How the probe engine works.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeSettings {
    /// The `flowshield` binary.
    pub flowshield_bin: PathBuf,
    /// Name of the WireGuard interface the probe brings up (and always removes).
    pub interface: String,
    /// Network namespace the probe runs in (`None`: the verifier's own).
    pub netns: Option<String>,
    /// Echo requests per probe.
    pub ping_count: u32,
    /// Gap between echo requests.
    pub ping_interval: Duration,
    /// Bytes requested from the responder.
    pub transfer_bytes: u64,
    /// Time cap of the transfer.
    pub transfer_timeout: Duration,
    /// Time allowed for the WireGuard handshake.
    pub handshake_timeout: Duration,
}

/// Where the market's address comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum MarketSource {
    /// `chain.market`.
    Address(Address),
    /// `chain.deployment`: the manifest of `flowshield-market deploy`, whose chain id
    /// and contract code are checked against `chain.rpc_url` at start.
    Deployment(PathBuf),
}

/// The chain the verifier reports to.
#[derive(Debug, Clone, PartialEq)]
pub struct ChainConfig {
    /// HTTP JSON-RPC URL.
    pub rpc_url: String,
    /// `BandwidthMarket`: its address, or the deployment manifest naming it.
    pub market: MarketSource,
    /// Hex secp256k1 key file of the verifier's chain account (mode 0600).
    pub private_key_file: PathBuf,
    /// Where targets come from.
    pub source: SourceKind,
}

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// SQLite database file.
    pub database: PathBuf,
    /// Fullnode base URLs.
    pub fullnodes: Vec<String>,
    /// Base64 WireGuard private key file (mode 0600).
    pub wg_private_key_file: PathBuf,
    /// Probe engine settings.
    pub probe: ProbeSettings,
    /// Schedule of `run`; `None` when the file has no `[schedule]` (only `probe` works).
    pub schedule: Option<Jittered>,
    /// Chain access; `None`: results are stored but not signed, published or reported.
    pub chain: Option<ChainConfig>,
    /// The `[[targets]]` entries.
    pub targets: Vec<ProbeTarget>,
    /// `probe.fail_streak`: K configured (`None`: the market's `failStreak`).
    pub fail_streak: Option<u32>,
}

impl Config {
    /// Read and validate `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text).map_err(|e| match e {
            ConfigError::Parse { message, .. } => ConfigError::Parse {
                path: path.to_path_buf(),
                message,
            },
            other => other,
        })
    }

    /// Validate TOML text.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: PathBuf::from("<config>"),
            message: e.to_string(),
        })?;
        let probe = probe_settings(&raw.verifier, &raw.probe)?;
        let responder_port = raw.probe.responder_port.unwrap_or(9909);
        let schedule = raw.schedule.as_ref().map(schedule).transpose()?;
        let chain = raw.chain.as_ref().map(chain).transpose()?;
        for (i, url) in raw.fullnodes.iter().enumerate() {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(ConfigError::field(
                    format!("fullnodes[{i}]"),
                    format!("'{url}' is not an http(s) URL"),
                ));
            }
        }
        let need_key = chain
            .as_ref()
            .is_none_or(|c| c.source == SourceKind::Config);
        let mut targets = Vec::with_capacity(raw.targets.len());
        for (i, t) in raw.targets.iter().enumerate() {
            let target = target(&format!("targets[{i}]"), t, responder_port, need_key)?;
            if targets.iter().any(|o: &ProbeTarget| o.name == target.name) {
                return Err(ConfigError::field(
                    format!("targets[{i}].name"),
                    format!("'{}' is used twice", target.name),
                ));
            }
            targets.push(target);
        }
        Ok(Config {
            database: raw
                .database
                .unwrap_or_else(|| PathBuf::from("flowshield-verifier.db")),
            fullnodes: raw.fullnodes,
            wg_private_key_file: raw.verifier.wg_private_key_file,
            probe,
            schedule,
            chain,
            targets,
            fail_streak: raw
                .probe
                .fail_streak
                .map(|k| {
                    if (1..=1000).contains(&k) {
                        Ok(k)
                    } else {
                        Err(ConfigError::field("probe.fail_streak", "must be 1-1000"))
                    }
                })
                .transpose()?,
        })
    }
}

fn secs(field: &str, value: Option<f64>, default: f64) -> Result<Duration, ConfigError> {
    let v = value.unwrap_or(default);
    if !(v > 0.0 && v <= 3600.0) {
        return Err(ConfigError::field(
            field,
            "must be between 0 and 3600 seconds",
        ));
    }
    Ok(Duration::from_secs_f64(v))
}

fn probe_settings(v: &RawVerifier, p: &RawProbe) -> Result<ProbeSettings, ConfigError> {
    let interface = v.interface.clone().unwrap_or_else(|| "fsverify0".into());
    if interface.is_empty()
        || interface.len() > 15
        || !interface
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(ConfigError::field(
            "verifier.interface",
            format!("'{interface}' is not an interface name (1-15 of [A-Za-z0-9_-])"),
        ));
    }
    if let Some(ns) = &v.netns {
        if ns.is_empty() || ns.contains('/') || ns.starts_with('.') {
            return Err(ConfigError::field(
                "verifier.netns",
                format!("'{ns}' is not a namespace name"),
            ));
        }
    }
    let ping_count = p.ping_count.unwrap_or(10);
    if !(1..=1000).contains(&ping_count) {
        return Err(ConfigError::field("probe.ping_count", "must be 1-1000"));
    }
    let ping_interval_ms = p.ping_interval_ms.unwrap_or(200);
    if !(200..=10_000).contains(&ping_interval_ms) {
        return Err(ConfigError::field(
            "probe.ping_interval_ms",
            "must be 200-10000",
        ));
    }
    let transfer_bytes = p.transfer_bytes.unwrap_or(2 << 20);
    if transfer_bytes == 0 || transfer_bytes > MAX_TRANSFER_BYTES {
        return Err(ConfigError::field(
            "probe.transfer_bytes",
            format!("must be 1-{MAX_TRANSFER_BYTES} (probes stay small)"),
        ));
    }
    Ok(ProbeSettings {
        flowshield_bin: v
            .flowshield_bin
            .clone()
            .unwrap_or_else(|| PathBuf::from("flowshield")),
        interface,
        netns: v.netns.clone(),
        ping_count,
        ping_interval: Duration::from_millis(ping_interval_ms),
        transfer_bytes,
        transfer_timeout: secs("probe.transfer_timeout_secs", p.transfer_timeout_secs, 5.0)?,
        handshake_timeout: secs(
            "probe.handshake_timeout_secs",
            p.handshake_timeout_secs,
            10.0,
        )?,
    })
}

fn schedule(s: &RawSchedule) -> Result<Jittered, ConfigError> {
    let base = match (&s.cron, s.interval_secs) {
        (Some(expr), None) => Schedule::cron(expr)?,
        (None, Some(secs)) => Schedule::interval(secs)?,
        _ => {
            return Err(ConfigError::field(
                "schedule",
                "set exactly one of `cron` and `interval_secs`",
            ))
        }
    };
    Ok(Jittered {
        schedule: base,
        jitter: Duration::from_secs(s.jitter_secs),
    })
}

fn chain(c: &RawChain) -> Result<ChainConfig, ConfigError> {
    if !(c.rpc_url.starts_with("http://") || c.rpc_url.starts_with("https://")) {
        return Err(ConfigError::field(
            "chain.rpc_url",
            format!("'{}' is not an http(s) URL", c.rpc_url),
        ));
    }
    let market = match (&c.market, &c.deployment) {
        (Some(text), None) => MarketSource::Address(parse_address("chain.market", text)?),
        (None, Some(path)) => MarketSource::Deployment(path.clone()),
        _ => {
            return Err(ConfigError::field(
                "chain.market",
                "set exactly one of `market` and `deployment`",
            ))
        }
    };
    let source = match c.source.as_deref() {
        None | Some("config") => SourceKind::Config,
        Some("chain") => SourceKind::Chain,
        Some(other) => {
            return Err(ConfigError::field(
                "chain.source",
                format!("'{other}' is not `config` or `chain`"),
            ))
        }
    };
    Ok(ChainConfig {
        rpc_url: c.rpc_url.clone(),
        market,
        private_key_file: c.private_key_file.clone(),
        source,
    })
}

fn parse_address(field: &str, text: &str) -> Result<Address, ConfigError> {
    text.parse::<Address>()
        .map_err(|e| ConfigError::field(field, format!("'{text}' is not an address: {e}")))
}

fn quality_value(field: String, v: f64, max: f64) -> Result<f64, ConfigError> {
    if !(v.is_finite() && v >= 0.0 && v <= max) {
        return Err(ConfigError::field(
            field,
            format!("must be between 0 and {max}"),
        ));
    }
    Ok(v)
}

/// The optional thresholds of a target: all three or none.
fn config_quality(at: &str, t: &RawTarget) -> Result<Option<AdvertisedQuality>, ConfigError> {
    let f = |name: &str| format!("{at}.{name}");
    match (t.min_throughput_mbps, t.max_loss_pct, t.max_rtt_ms) {
        (None, None, None) => Ok(None),
        (Some(tp), Some(loss), Some(rtt)) => Ok(Some(AdvertisedQuality {
            min_throughput_mbps: quality_value(f("min_throughput_mbps"), tp, 1e6)?,
            max_loss_pct: quality_value(f("max_loss_pct"), loss, 100.0)?,
            max_rtt_ms: quality_value(f("max_rtt_ms"), rtt, 1e6)?,
        })),
        (tp, loss, _) => {
            let missing = if tp.is_none() {
                "min_throughput_mbps"
            } else if loss.is_none() {
                "max_loss_pct"
            } else {
                "max_rtt_ms"
            };
            Err(ConfigError::field(
                f(missing),
                "set all three of min_throughput_mbps, max_loss_pct, max_rtt_ms, or none",
            ))
        }
    }
}

fn target(
    at: &str,
    t: &RawTarget,
    default_port: u16,
    need_key: bool,
) -> Result<ProbeTarget, ConfigError> {
    let f = |name: &str| format!("{at}.{name}");
    if t.name.is_empty() {
        return Err(ConfigError::field(f("name"), "must not be empty"));
    }
    let wg_public_key = match &t.wg_public_key {
        Some(k) => Some(
            PublicKey::from_base64(k)
                .map_err(|e| ConfigError::field(f("wg_public_key"), e.to_string()))?,
        ),
        None if need_key => {
            return Err(ConfigError::field(
                f("wg_public_key"),
                "required unless chain.source = \"chain\"",
            ))
        }
        None => None,
    };
    // Numeric only: a probe never resolves a name (DNS could be observed or spoofed).
    let endpoint: SocketAddr = t.endpoint.parse().map_err(|_| {
        ConfigError::field(
            f("endpoint"),
            format!(
                "'{}' is not a numeric IP:port (names are never resolved)",
                t.endpoint
            ),
        )
    })?;
    let tunnel_address: Cidr = t
        .tunnel_address
        .parse()
        .map_err(|e| ConfigError::field(f("tunnel_address"), e))?;
    let probe_address: IpAddr = t.probe_address.parse().map_err(|_| {
        ConfigError::field(
            f("probe_address"),
            format!("'{}' is not a numeric IP address", t.probe_address),
        )
    })?;
    if tunnel_address.addr.is_ipv4() != probe_address.is_ipv4() {
        return Err(ConfigError::field(
            f("probe_address"),
            "must be the same IP version as tunnel_address",
        ));
    }
    Ok(ProbeTarget {
        name: t.name.clone(),
        provider: parse_address(&f("provider"), &t.provider)?,
        wg_public_key,
        endpoint,
        tunnel_address,
        probe_address,
        responder_port: t.responder_port.unwrap_or(default_port),
        config_quality: config_quality(at, t)?,
    })
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
