//! The provider's configuration file: raw TOML tables in, a validated
//! [`Offer`] out (keys the file omits are found by [`super::offer_keys`]).

use super::dashboard::DashboardFile;
use super::egress::EgressFile;
use super::error::ProviderError;
use super::offer_keys;
use crate::chain::ChainFile;
use flowshield_proto::offer::u128_text;
use flowshield_proto::{Keypair, Offer, Region};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The provider's configuration file (TOML).
///
/// ```toml
/// identity_file = "/var/lib/flowshield-market/provider.key"
/// listen = ["/ip4/0.0.0.0/tcp/4001", "/ip4/0.0.0.0/udp/4001/quic-v1"]
/// bootstrap = ["/ip4/203.0.113.5/tcp/4001/p2p/12D3Koo..."]
/// heartbeat_secs = 5
/// interface = "flowshield0"
/// data_plane_socket = "/var/run/wireguard/restricted/flowshield0.sock"  # optional, see below
/// tunnel_subnet = "10.77.0.0/16"
///
/// [offer]
/// region = "eu-west"
/// price_per_gib_wei = "1000000000000000"
/// price_per_hour_wei = "100000000000000"
/// capacity_mbps = 500
/// max_clients = 50
/// endpoint = "203.0.113.7:51820"
/// wg_public_key = "base64..."      # optional: default, the data plane's (UAPI get)
/// chain_address = "0x..."          # optional with [chain]: default, chain.key_file's
///
/// [chain]                             # optional: sell (see crate::chain)
/// rpc_url = "http://10.250.0.1:8545"
/// market_address = "0x..."
/// key_file = "/var/lib/flowshield-market/chain.key"
///
/// [promise]                           # optional, defaults shown: the quality registered
/// min_throughput_kbps = 1000          # on chain with the stake; verifiers judge the
/// max_rtt_ms = 1000                   # provider against it (and only it)
/// max_loss_bps = 500                  # 5 %
///
/// [session]                           # optional, defaults shown
/// client_allowed_ips = []             # routes behind the provider, e.g. ["198.18.99.0/24"]
/// min_escrow_wei = "1000000000000000"  # smaller orders are rejected on chain
/// credit_limit_wei = "..."            # owed past the best voucher before forwarding
///                                     # stops; default: the price of 4 MiB or of
///                                     # 5 s at capacity_mbps, whichever is more
/// max_orders_per_client = 4           # open orders of one chain address at once
/// stake_wei = "1000000000000000000"   # staked at start if not yet registered
/// keepalive_secs = 25
/// idle_timeout_secs = 30              # no voucher this long: settle, remove the peer
/// redeem_threshold_wei = "1000000000000000"
/// redeem_interval_secs = 60
/// store = "sqlite:///var/lib/flowshield-market/provider-sessions.db"
///                                     # sessions, vouchers, peers added (durable,
///                                     # reconciled at start); postgres://... also works;
///                                     # default: beside identity_file, e.g. provider.sessions.db
///
/// [dashboard]                         # optional: the web dashboard (see crate::provider::dashboard)
/// listen = "127.0.0.1:8090"           # GET / (page), GET /api/status (JSON)
/// fullnode_url = "http://10.250.0.1:8080"   # optional: reputation from this fullnode
/// deca_registry = "0x..."             # optional: certificate status on chain (via chain.rpc_url)
/// refresh_secs = 5                    # page reload interval; 0: never
///
/// [egress]                            # optional: on by default (see crate::provider::egress)
/// enabled = true                      # nftables table inet flowshield_<interface>
/// uplink = "eth0"                     # default: the default route's interface
/// allow = []                          # CIDRs exempt from the blocked ranges
/// block_ports = []                    # more TCP/UDP destination ports to drop
/// allow_smtp = false                  # outbound TCP 25 dropped unless true
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderFile {
    pub identity_file: PathBuf,
    #[serde(default)]
    pub listen: Vec<String>,
    #[serde(default)]
    pub bootstrap: Vec<String>,
    #[serde(default = "default_heartbeat_secs")]
    pub heartbeat_secs: u64,
    #[serde(default = "default_interface")]
    pub interface: String,
    /// The data plane's UAPI socket. Default: the interface's restricted
    /// socket if its daemon serves one, else its full socket.
    #[serde(default)]
    pub data_plane_socket: Option<PathBuf>,
    pub tunnel_subnet: String,
    pub offer: OfferFile,
    pub chain: Option<ChainFile>,
    #[serde(default)]
    pub promise: PromiseFile,
    #[serde(default)]
    pub session: SessionFile,
    pub dashboard: Option<DashboardFile>,
    /// What clients may reach through this host; on unless `enabled = false`.
    #[serde(default)]
    pub egress: EgressFile,
}

/// The `[promise]` table (see [`ProviderFile`]): the quality the provider promises on
/// chain.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PromiseFile {
    pub min_throughput_kbps: u32,
    pub max_rtt_ms: u32,
    pub max_loss_bps: u16,
}

impl Default for PromiseFile {
    fn default() -> Self {
        let q = flowshield_chain::default_quality();
        Self {
            min_throughput_kbps: q.minThroughputKbps,
            max_rtt_ms: q.maxRttMs,
            max_loss_bps: q.maxLossBps,
        }
    }
}

impl PromiseFile {
    /// The on-chain form.
    pub fn quality(&self) -> flowshield_chain::QualityPromise {
        flowshield_chain::QualityPromise {
            minThroughputKbps: self.min_throughput_kbps,
            maxRttMs: self.max_rtt_ms,
            maxLossBps: self.max_loss_bps,
        }
    }
}

/// The `[session]` table (see [`ProviderFile`]).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionFile {
    pub client_allowed_ips: Vec<String>,
    pub min_escrow_wei: String,
    /// `None`: [`crate::session::pricing::Prices::default_credit_limit`].
    pub credit_limit_wei: Option<String>,
    pub max_orders_per_client: u32,
    pub stake_wei: String,
    pub keepalive_secs: u16,
    pub idle_timeout_secs: u64,
    pub redeem_threshold_wei: String,
    pub redeem_interval_secs: u64,
    /// `None`: [`ProviderFile::session_store_url`]'s default.
    pub store: Option<String>,
}

impl Default for SessionFile {
    fn default() -> Self {
        Self {
            client_allowed_ips: Vec::new(),
            min_escrow_wei: DEFAULT_MIN_ESCROW_WEI.into(),
            credit_limit_wei: None,
            max_orders_per_client: crate::session::table::DEFAULT_MAX_ORDERS_PER_CLIENT,
            stake_wei: "1000000000000000000".into(),
            keepalive_secs: 25,
            idle_timeout_secs: 30,
            redeem_threshold_wei: "1000000000000000".into(),
            redeem_interval_secs: 60,
            store: None,
        }
    }
}

/// The least escrow an order must hold (0.001 ETH): smaller ones are dust.
pub const DEFAULT_MIN_ESCROW_WEI: &str = "1000000000000000";

fn default_heartbeat_secs() -> u64 {
    5
}

fn default_interface() -> String {
    "flowshield0".into()
}

/// The `[offer]` table; prices are decimal strings of wei.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OfferFile {
    pub region: String,
    pub price_per_gib_wei: String,
    pub price_per_hour_wei: String,
    pub capacity_mbps: u32,
    pub max_clients: u32,
    /// Omitted: derived from the data plane ([`crate::provider::offer_keys`]).
    #[serde(default)]
    pub wg_public_key: Option<String>,
    pub endpoint: String,
    /// Omitted: `chain.key_file`'s address ([`crate::provider::offer_keys`]).
    #[serde(default)]
    pub chain_address: Option<String>,
}

impl ProviderFile {
    /// Where the session store lives: `session.store`, or by default
    /// beside `identity_file`, named after it (`provider.key` →
    /// `provider.sessions.db`), so two providers sharing a directory keep
    /// apart.
    pub fn session_store_url(&self) -> String {
        match &self.session.store {
            Some(url) => url.clone(),
            None => format!(
                "sqlite://{}",
                self.identity_file.with_extension("sessions.db").display()
            ),
        }
    }

    /// The `[egress]` policy for this file's interface and subnet (`None`
    /// when disabled); bad input names the field.
    pub fn egress_policy(
        &self,
        path: &Path,
    ) -> Result<Option<super::egress::EgressPolicy>, ProviderError> {
        self.egress
            .policy(&self.interface, &self.tunnel_subnet)
            .map_err(|e| ProviderError::Config {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })
    }

    /// The data plane, through `data_plane_socket` or the least privileged
    /// socket its daemon serves.
    pub fn dataplane(&self) -> crate::dataplane::DataPlane {
        match &self.data_plane_socket {
            Some(socket) => crate::dataplane::DataPlane::with_socket(&self.interface, socket),
            None => crate::dataplane::DataPlane::least_privileged(&self.interface),
        }
    }

    pub fn load(path: &Path) -> Result<Self, ProviderError> {
        let text = std::fs::read_to_string(path).map_err(|e| ProviderError::Config {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        toml::from_str(&text).map_err(|e| ProviderError::Config {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
    }

    /// The offer this file describes, for the provider with `keypair`.
    /// Keys the file omits are looked up: the WireGuard key from the data
    /// plane over its UAPI socket (a short blocking call), the chain address
    /// from `chain.key_file` (see [`crate::provider::offer_keys`]).
    pub fn offer(&self, path: &Path, keypair: &Keypair) -> Result<Offer, ProviderError> {
        let field = |field: &'static str, reason: String| ProviderError::ConfigField {
            path: path.to_path_buf(),
            field,
            reason,
        };
        let o = &self.offer;
        let offer = Offer {
            provider_peer_id: keypair.public().to_peer_id(),
            chain_address: offer_keys::chain_address(
                o.chain_address.as_deref(),
                self.chain.as_ref(),
            )
            .map_err(|e| field("offer.chain_address", e))?,
            wg_public_key: offer_keys::wg_public_key(
                o.wg_public_key.as_deref(),
                &self.interface,
                |iface| flowshield_tunnel::uapi::client::get_at(self.dataplane().socket(), iface),
            )
            .map_err(|e| field("offer.wg_public_key", e))?,
            endpoint: o
                .endpoint
                .parse::<SocketAddr>()
                .map_err(|e| field("offer.endpoint", e.to_string()))?,
            region: Region::new(&o.region).map_err(|e| field("offer.region", e.to_string()))?,
            price_per_gib_wei: u128_text::parse(&o.price_per_gib_wei)
                .map_err(|e| field("offer.price_per_gib_wei", e))?,
            price_per_hour_wei: u128_text::parse(&o.price_per_hour_wei)
                .map_err(|e| field("offer.price_per_hour_wei", e))?,
            capacity_mbps: o.capacity_mbps,
            max_clients: o.max_clients,
            tunnel_subnet: Some(self.tunnel_subnet.parse().map_err(
                |e: flowshield_proto::ProtoError| field("tunnel_subnet", e.to_string()),
            )?),
        };
        offer
            .validate()
            .map_err(|e| field("offer", e.to_string()))?;
        if self.heartbeat_secs == 0 {
            return Err(field("heartbeat_secs", "must be at least 1".into()));
        }
        Ok(offer)
    }
}
