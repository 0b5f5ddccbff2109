//! A selling provider in this process (session host on a local chain, a
//! `flowshield` data plane in a namespace) and raw libp2p nodes to attack
//! it with.

use crate::common;
use crate::common::devnet;
use crate::common::net::{listen_tcp, provider_config};
use flowshield_chain::alloy::primitives::U256;
use flowshield_chain::alloy::signers::local::PrivateKeySigner;
use flowshield_chain::voucher::sign_voucher;
use flowshield_chain::{LocalChain, MarketClient, ProviderTerms};
use flowshield_e2e::daemon::{Daemon, Implementation};
use flowshield_e2e::site::{self as e2e, PeerSpec};
use flowshield_market::dataplane::DataPlane;
use flowshield_market::net::{self, MarketRequest, MarketResponse, NetConfig, NetHandle};
use flowshield_market::provider::egress::{EgressFile, NetTools};
use flowshield_market::provider::host::{HostConfig, SessionHost};
use flowshield_market::provider::shaping::{Shaper, ShapingPlan};
use flowshield_market::provider::{Provider, ProviderConfig};
use flowshield_market::session::pricing::Prices;
use flowshield_market::session::table::SessionPolicy;
use flowshield_market::unix_ms;
use flowshield_market::wire::raw::RawSessionRequest;
use flowshield_market::wire::session::{
    ConnectRequest, SessionRequest, SessionResponse, VoucherMessage,
};
use flowshield_proto::{Keypair, Offer, PeerId, WgPublicKey};
use flowshield_tunnel::uapi::restricted;
use std::time::Duration;

/// The least escrow the provider takes.
pub const MIN_ESCROW: u64 = 1000;
/// What honest orders escrow.
pub const ESCROW: u64 = 1_000_000;
/// The provider's sessions at once, and per client.
pub const MAX_CLIENTS: u32 = 3;
pub const MAX_PER_CLIENT: u32 = 2;
/// The offer's capacity: 5 s of it (6.25 MB) is the default credit limit.
pub const CAPACITY_MBPS: u32 = 10;
/// 1 wei per byte...
pub const PRICE_PER_GIB: u64 = 1 << 30;
/// ...and 1000 wei per second connected (1 wei per ms).
pub const PRICE_PER_HOUR: u64 = 3_600_000;

/// What a test changes in the provider: all off / the defaults by default.
#[derive(Default)]
pub struct Options {
    /// The `[egress]` table (interface and subnet are the fixture's).
    pub egress: Option<EgressFile>,
    /// Per-client shaping at this capacity.
    pub shaping_mbps: Option<u32>,
    /// Instead of 5 s at [`CAPACITY_MBPS`].
    pub credit_limit: Option<U256>,
    /// Instead of [`MAX_CLIENTS`] sessions at once.
    pub max_clients: Option<u32>,
}

/// The provider, its chain and data plane.
pub struct Site {
    /// The provider's data plane: namespace, keys, tunnel address 10.77.0.1/24.
    pub wg: e2e::Site,
    /// A second namespace joined to it by a veth pair (tunnel address
    /// 10.77.0.2, the first the provider hands out), for a client with a
    /// real tunnel ([`Site::tunnel_client`]).
    pub client_wg: e2e::Site,
    pub iface: String,
    pub chain: LocalChain,
    pub market: MarketClient,
    pub provider_signer: PrivateKeySigner,
    pub provider_peer: PeerId,
    pub host: SessionHost,
    pub provider: Provider,
}

/// A libp2p node and a funded chain key: a client, honest or not.
pub struct Actor {
    pub net: NetHandle,
    pub signer: PrivateKeySigner,
    pub market: MarketClient,
}

impl Site {
    pub async fn start() -> Self {
        Self::start_with(Options::default()).await
    }

    /// [`Site::start`] with room for `max_clients` sessions.
    pub async fn start_with_clients(max_clients: u32) -> Self {
        Self::start_with(Options {
            max_clients: Some(max_clients),
            ..Options::default()
        })
        .await
    }

    /// [`Site::start`] with `options`; the egress filter and shaping act
    /// inside the data plane's namespace.
    pub async fn start_with(options: Options) -> Self {
        let max_clients = options.max_clients.unwrap_or(MAX_CLIENTS);
        let (mut wg, client_wg) = e2e::two_sites().expect("namespaces");
        // The provider drives its data plane through the restricted socket
        // (as the packaged units set it up); root keeps the full one.
        wg.daemon = Some(
            Daemon::spawn_with_env(
                &wg.ns,
                Implementation::Flowshield,
                &wg.iface,
                &[("FLOWSHIELD_RESTRICTED_GROUP", "0")],
            )
            .expect("data plane"),
        );
        let tools = NetTools::in_netns(wg.ns.name());
        let shaper = options.shaping_mbps.map(|mbps| {
            let plan = ShapingPlan::new(
                &wg.iface,
                "10.77.0.0/24".parse().expect("subnet"),
                mbps,
                max_clients,
            )
            .expect("shaping plan");
            Shaper::new(plan, tools.clone())
        });
        let egress = options.egress.map(|file| {
            file.policy(&wg.iface, "10.77.0.0/24")
                .expect("egress policy")
                .expect("enabled")
        });
        wg.wg_set(&[]).expect("private key and port");
        wg.link_up().expect("tunnel address");
        let iface = wg.iface.clone();
        let provider_wg_key: WgPublicKey = wg.keys.public.parse().expect("provider key");
        let chain = LocalChain::start().await.expect("local chain");
        let market = devnet::deploy(&chain, &devnet::demo_params())
            .await
            .expect("market");
        let provider_signer = chain.funded_signer().await.expect("signer");
        let as_provider =
            market.with_provider(chain.provider_for(provider_signer.clone()).expect("rpc"));
        let prices = Prices {
            per_gib: U256::from(PRICE_PER_GIB),
            per_hour: U256::from(PRICE_PER_HOUR),
        };
        let keypair = Keypair::generate_ed25519();
        let provider_peer = keypair.public().to_peer_id();
        let terms = ProviderTerms {
            price_per_gib: prices.per_gib,
            price_per_hour: prices.per_hour,
            peer_id_hash: flowshield_proto::peer_id_hash(&provider_peer),
            wg_public_key: provider_wg_key.0,
            quality: flowshield_chain::default_quality(),
        };
        as_provider
            .register(U256::from(10u64).pow(U256::from(18u64)), &terms)
            .await
            .expect("register");
        let host = SessionHost::new(HostConfig {
            peer_id: provider_peer,
            market: as_provider,
            // A session store of its own (sessions are recorded before they are
            // acknowledged).
            store: flowshield_market::provider::store::SessionStore::connect(&format!(
                "sqlite://{}/flowshield-test-{}-{}.db",
                std::env::temp_dir().display(),
                std::process::id(),
                flowshield_market::unix_ms()
            ))
            .await
            .expect("session store"),
            dataplane: DataPlane::with_socket(&iface, restricted::socket_path(&iface)),
            tunnel_subnet: "10.77.0.0/24".into(),
            provider_wg_public_key: provider_wg_key,
            endpoint: format!("{}:{}", wg.underlay, wg.port)
                .parse()
                .expect("endpoint"),
            client_allowed_ips: vec![],
            keepalive_secs: 25,
            policy: SessionPolicy {
                credit_limit: options
                    .credit_limit
                    .unwrap_or(prices.default_credit_limit(CAPACITY_MBPS)),
                ..policy(provider_signer.address(), prices, max_clients)
            },
            shaper,
        })
        .await
        .expect("session host");
        let offer = Offer {
            chain_address: flowshield_proto::ChainAddress(provider_signer.address().0 .0),
            price_per_gib_wei: PRICE_PER_GIB.into(),
            price_per_hour_wei: PRICE_PER_HOUR.into(),
            capacity_mbps: CAPACITY_MBPS,
            max_clients,
            ..common::net::offer(&keypair)
        };
        let provider = Provider::start(ProviderConfig {
            heartbeat_interval: Duration::from_secs(1),
            dht_refresh_every: 6,
            sessions: Some(host.clone()),
            egress,
            net_tools: tools,
            ..provider_config(keypair, offer)
        })
        .await
        .expect("provider");
        Self {
            wg,
            client_wg,
            iface,
            chain,
            market,
            provider_signer,
            provider_peer,
            host,
            provider,
        }
    }

    /// Starts the client namespace's data plane with the provider as its
    /// peer (endpoint known, the provider's /24 routed through it) and
    /// returns its WireGuard key, for a `Connect`.
    pub fn tunnel_client(&mut self) -> WgPublicKey {
        self.tunnel_client_routing(&["10.77.0.0/24"], None)
    }

    /// [`Site::tunnel_client`] sending `allowed_ips` to the provider (routes
    /// for them are the caller's), with an optional keepalive.
    pub fn tunnel_client_routing(
        &mut self,
        allowed_ips: &[&str],
        keepalive: Option<u16>,
    ) -> WgPublicKey {
        let mut provider = PeerSpec::new(&self.wg).allowed_ips(allowed_ips);
        provider.keepalive = keepalive;
        self.client_wg
            .start(Implementation::Flowshield)
            .expect("client data plane");
        self.client_wg.wg_set(&[provider]).expect("client peer");
        self.client_wg.link_up().expect("client tunnel address");
        self.client_wg.keys.public.parse().expect("client key")
    }

    /// A libp2p node dialled to the provider, with a funded chain key.
    pub async fn actor(&self) -> Actor {
        let mut config = NetConfig::new(Keypair::generate_ed25519());
        config.listen = listen_tcp();
        config.bootstrap = self.provider.net.listen_addrs().to_vec();
        let (net, _events) = net::spawn(config).await.expect("libp2p node");
        let signer = self.chain.funded_signer().await.expect("signer");
        let market = self
            .market
            .with_provider(self.chain.provider_for(signer.clone()).expect("rpc"));
        Actor {
            net,
            signer,
            market,
        }
    }

    /// Opens an order with this provider as `actor`, escrowing `escrow`.
    pub async fn open_order(&self, actor: &Actor, escrow: u64) -> U256 {
        actor
            .market
            .open_order(self.provider_signer.address(), U256::from(escrow))
            .await
            .expect("openOrder")
            .0
    }

    /// `actor`'s signed Connect for `order` with WireGuard key `wg`.
    pub fn connect(&self, actor: &Actor, order: U256, wg: WgPublicKey) -> SessionRequest {
        SessionRequest::Connect(
            ConnectRequest::sign(&actor.signer, order, wg, &self.provider_peer, unix_ms())
                .expect("sign connect"),
        )
    }

    /// A voucher for `order` signed by `signer`.
    pub async fn voucher(
        &self,
        signer: &PrivateKeySigner,
        order: U256,
        amount: u64,
    ) -> SessionRequest {
        let domain = self.market.eip712_domain().await.expect("domain");
        SessionRequest::Voucher(VoucherMessage::from_signed(
            &sign_voucher(signer, &domain, order, U256::from(amount)).expect("sign voucher"),
        ))
    }

    /// Sends `request` from `from`'s libp2p node; the provider's answer.
    pub async fn ask(&self, from: &Actor, request: &SessionRequest) -> SessionResponse {
        let raw = RawSessionRequest::encode(request).expect("encode");
        match from
            .net
            .request(self.provider_peer, MarketRequest::Session(raw))
            .await
            .expect("request")
        {
            MarketResponse::Session(r) => r.decode().expect("decode"),
            other => panic!("unexpected {other:?}"),
        }
    }

    /// Public keys of the peers on the provider's data plane.
    pub fn peers(&self) -> Vec<WgPublicKey> {
        flowshield_tunnel::uapi::client::get(&self.iface)
            .expect("uapi get")
            .peers
            .iter()
            .map(|p| WgPublicKey(p.public_key.0))
            .collect()
    }

    pub async fn shutdown(self, actors: Vec<Actor>) {
        self.stop(actors).await;
    }

    /// Stops the provider (and `actors`) and hands back the data plane's
    /// site, still running, to look at what the provider left behind.
    pub async fn stop(self, actors: Vec<Actor>) -> e2e::Site {
        for actor in actors {
            actor.net.shutdown().await;
        }
        self.provider.shutdown().await;
        self.wg
    }
}

/// The refusal's kind and text; panics on anything else.
pub fn refusal(response: &SessionResponse) -> (&str, &str) {
    match response {
        SessionResponse::Rejected { kind, error } => (kind.as_str(), error),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn policy(
    me: flowshield_chain::alloy::primitives::Address,
    prices: Prices,
    max_clients: u32,
) -> SessionPolicy {
    SessionPolicy {
        me,
        min_escrow: U256::from(MIN_ESCROW),
        prices,
        idle_timeout_ms: 60_000,
        redeem_threshold: U256::MAX,
        redeem_interval_ms: 600_000,
        credit_limit: prices.default_credit_limit(CAPACITY_MBPS),
        max_clients,
        max_orders_per_client: MAX_PER_CLIENT,
    }
}
