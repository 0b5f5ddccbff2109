//! A provider that sells, under the packaged unit and a real systemd: the
//! .deb is installed into the debootstrap tree of `systemd.rs`, which is
//! booted with `systemd-nspawn --boot` in a network namespace this test
//! wires to a local market ([`common::market`]: a chain with the market
//! contracts, a fullnode, a client and an "internet" host). Then:
//! - `flowshield-provider` (provider.toml with `[chain]`, the funded key in
//!   /etc/flowshield/chain.key) registers and stakes on chain (the
//!   fullnode, which admits only staked providers, lists it), loads its
//!   nftables egress table and per-client shaping (HTB root and ingress
//!   redirect on flowshield0, the IFB device), prints its egress policy,
//!   all as user flowshield with CAP_NET_ADMIN only, through the unit's
//!   sandbox;
//! - a client in its own namespace buys a session on chain: the provider
//!   adds its peer over the restricted UAPI socket and shapes its address
//!   (HTB classes and u32 filters both ways); the client reaches the
//!   internet host through the tunnel, but not SMTP there nor a private
//!   address behind the provider (both reachable from the provider's
//!   namespace itself: the filter drops them, not routing);
//! - `systemctl stop flowshield-provider` parks the client's peer (off the
//!   data plane, which stays up) and removes the table, the qdiscs and
//!   the IFB device; the client's traffic stops.
//!
//! Needs root, systemd-nspawn, debootstrap and the contracts' EVM node:
//! `scripts/setup.sh`.

mod common;

use anyhow::{ensure, Context, Result};
use common::container::{require_prerequisites, steadily_sandboxed, Container, Network, PACKAGES};
use common::market::{reaches, Market, CLIENT_ROUTES, CONTAINER, INTERNET, LAN, SMTP};
use common::{build_deb, Chroot};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::{Duration, Instant};

const PROVIDER: &str = "flowshield-provider.service";
const DATAPLANE: &str = "flowshield@flowshield0.service";
const TABLE: &str = "flowshield_flowshield0";
const IFB: &str = "flowshield0-up";
/// Registering and staking on chain, then gossip to the fullnode.
const SELLING: Duration = Duration::from_secs(120);

/// `text` with `from` replaced by `to`; fails if `from` is not there (the
/// shipped file changed under the test).
fn replace(text: &str, from: &str, to: &str) -> Result<String> {
    ensure!(text.contains(from), "provider.toml has no {from:?}");
    Ok(text.replacen(from, to, 1))
}

/// The packaged provider.toml with a selling site's values.
fn selling_config(shipped: &str, market: &Market) -> Result<String> {
    let routes: Vec<String> = CLIENT_ROUTES.iter().map(|r| format!("\"{r}\"")).collect();
    let mut text = shipped.to_string();
    for (from, to) in [
        ("<multiaddr of a fullnode>", market.fullnode.clone()),
        ("<region>", "eu-west".into()),
        ("<public IPv4 address>", CONTAINER.into()),
        ("heartbeat_secs = 5", "heartbeat_secs = 1".into()),
        ("<http://chain-rpc:8545>", market.rpc_url.clone()),
        (
            "<0x market contract address>",
            market.market_address.clone(),
        ),
        (
            "client_allowed_ips = []",
            format!("client_allowed_ips = [{}]", routes.join(", ")),
        ),
    ] {
        text = replace(&text, from, &to)?;
    }
    common::ensure_filled_in(&text)?;
    Ok(text)
}

/// Puts the dev-chain's funded provider key in place of the package's
/// chain.key: same file, so its owner (flowshield) and mode (0600) stay.
fn install_chain_key(tree: &Chroot, funded: &Path) -> Result<()> {
    let key = tree.host_path("/etc/flowshield/chain.key");
    let before = std::fs::metadata(&key).context("the package made no chain.key")?;
    std::fs::write(&key, std::fs::read(funded)?)?;
    let after = std::fs::metadata(&key)?;
    ensure!(
        after.permissions().mode() & 0o777 == 0o600 && after.uid() == before.uid(),
        "chain.key is {:o} uid {}",
        after.permissions().mode(),
        after.uid()
    );
    Ok(())
}

#[test]
fn a_provider_sells_filters_shapes_and_parks_under_systemd() -> Result<()> {
    require_prerequisites()?;
    let deb = build_deb()?;
    // build-deb.sh builds the binaries it packs into target/release.
    let release = deb
        .parent()
        .and_then(Path::parent)
        .context("the .deb is not in target/debian")?
        .join("release");
    let tree = Chroot::create_with(PACKAGES)?;
    tree.dpkg_install(&deb)?;

    let mut market = Market::start(&release)?;
    let config = tree.host_path("/etc/flowshield/provider.toml");
    let filled = selling_config(&std::fs::read_to_string(&config)?, &market)?;
    std::fs::write(&config, filled)?;
    install_chain_key(&tree, &market.key_file("provider"))?;

    let started = Instant::now();
    let netns = Path::new("/run/netns").join(market.container.name());
    let logs = market.dir.path().join("nspawn.log");
    // Declared after `market`: powered off before the namespaces go.
    let container = Container::boot(tree.path(), logs, Network::Namespace(netns))?;
    let result = exercise(&container, &mut market).map_err(|e| {
        e.context(format!(
            "provider journal:\n{}\n{}",
            container.journal(PROVIDER),
            market.logs()
        ))
    });
    eprintln!("booted and exercised in {:?}", started.elapsed());
    drop(container);
    result
}

fn exercise(c: &Container, market: &mut Market) -> Result<()> {
    c.exec(&["systemctl", "start", DATAPLANE])
        .with_context(|| c.journal(DATAPLANE))?;

    // 1. Selling under the sandbox.
    c.exec(&["systemctl", "start", PROVIDER])?;
    c.wait_within("the provider's listening line", SELLING, || {
        ensure!(
            c.property(PROVIDER, "ActiveState")? != "failed",
            "{PROVIDER} failed"
        );
        Ok(c.journal(PROVIDER).contains("listening /ip4/"))
    })?;
    steadily_sandboxed(c, PROVIDER, "")?;
    let journal = c.journal(PROVIDER);
    ensure!(
        journal.contains("registered on chain"),
        "the provider did not register on chain"
    );
    let policy = "egress filter on flowshield0: masquerade 10.77.0.0/16 via default route; \
        dropped: client to client, private/loopback/link-local (169.254.169.254)/CGNAT/multicast \
        v4+v6, ports [25]";
    ensure!(journal.contains(policy), "no egress policy line {policy:?}");
    ensure!(
        journal.contains(&format!("(uplink {})", market.uplink)),
        "the policy does not name the uplink {}",
        market.uplink
    );
    ensure!(
        journal.contains("/run/wireguard/restricted/flowshield0.sock"),
        "the provider does not use the restricted UAPI socket"
    );
    let table = c.exec(&["nft", "list", "table", "inet", TABLE])?;
    for rule in [
        "hook forward",
        "th dport 25 drop",
        &format!(
            "oifname \"{}\" ip saddr 10.77.0.0/16 masquerade",
            market.uplink
        ),
    ] {
        ensure!(table.contains(rule), "no {rule:?} in the table:\n{table}");
    }
    let qdiscs = c.exec(&["tc", "qdisc", "show", "dev", "flowshield0"])?;
    ensure!(
        qdiscs.contains("qdisc htb 1: root") && qdiscs.contains("qdisc ingress ffff:"),
        "flowshield0's qdiscs: {qdiscs}"
    );
    let ifb = c.exec(&["tc", "qdisc", "show", "dev", IFB])?;
    ensure!(ifb.contains("qdisc htb 1: root"), "{IFB}'s qdiscs: {ifb}");
    let provider = market.account("provider")?;
    c.wait_within("the fullnode listing the staked provider", SELLING, || {
        market.fullnode_lists(&provider)
    })?;

    // Sanity: the blocked destinations are reachable from the provider's
    // namespace itself, so only the filter keeps clients from them.
    for target in [SMTP, LAN, INTERNET] {
        ensure!(
            reaches(&market.container, target)?,
            "{target} is not reachable from the container"
        );
    }

    // 2. A client buys a session.
    let connected = market.connect_client()?;
    let address = connected["tunnel_address"]
        .as_str()
        .and_then(|a| a.split('/').next())
        .and_then(|a| a.parse::<std::net::Ipv4Addr>().ok())
        .with_context(|| format!("no tunnel address in {connected}"))?;
    // The client sends these destinations into its tunnel (so the drops
    // below are the provider's, not a missing route).
    let tunnel = format!(" dev {} ", market.client_interface());
    for route in CLIENT_ROUTES {
        let host = route.trim_end_matches("/32");
        let via = market.client.ip(&["route", "get", host])?;
        ensure!(
            via.contains(&tunnel),
            "the client routes {host} outside its tunnel: {via}"
        );
    }
    let peers = dataplane_peers(c)?;
    ensure!(
        peers.len() == 1 && peers[0]["allowed_ips"][0] == format!("{address}/32"),
        "flowshield0's peers: {peers:?}"
    );
    let hex = format!("{:08x}", u32::from(address));
    for dev in ["flowshield0", IFB] {
        let classes = c.exec(&["tc", "class", "show", "dev", dev])?;
        let filters = c.exec(&["tc", "filter", "show", "dev", dev])?;
        ensure!(
            classes.matches("class htb").count() == 2 && filters.contains(&hex),
            "{dev} does not shape {address}:\n{classes}\n{filters}"
        );
    }
    ensure!(
        reaches(&market.client, INTERNET)?,
        "{INTERNET} not reached through the tunnel"
    );
    ensure!(
        !reaches(&market.client, SMTP)?,
        "{SMTP} reached through the tunnel"
    );
    ensure!(
        !reaches(&market.client, LAN)?,
        "{LAN} reached through the tunnel"
    );
    let peers = dataplane_peers(c)?;
    ensure!(
        peers[0]["rx_bytes"].as_u64().unwrap_or(0) > 0,
        "no traffic from the client: {peers:?}"
    );

    // 3. Stopping parks the peer and takes the filter and shaping away. The
    // provider runs `nft` and `tc` as it stops: only it gets SIGTERM.
    ensure!(c.property(PROVIDER, "KillMode")? == "mixed");
    c.exec(&["systemctl", "stop", PROVIDER])?;
    ensure!(c.property(PROVIDER, "ActiveState")? == "inactive");
    ensure!(c.property(DATAPLANE, "ActiveState")? == "active");
    let journal = c.journal(PROVIDER);
    for line in [
        "parked=1",
        "per-client shaping removed",
        "egress filter removed",
    ] {
        ensure!(journal.contains(line), "no {line:?} in the journal");
    }
    for line in [
        "removing per-client shaping failed",
        "cannot take the peer off",
    ] {
        ensure!(!journal.contains(line), "{line:?} in the journal");
    }
    ensure!(dataplane_peers(c)?.is_empty(), "peers left on flowshield0");
    let table = c
        .command(&["nft", "list", "table", "inet", TABLE])
        .output()?;
    ensure!(
        !table.status.success(),
        "the nftables table survived the stop"
    );
    let qdiscs = c.exec(&["tc", "qdisc", "show", "dev", "flowshield0"])?;
    ensure!(
        !qdiscs.contains("htb") && !qdiscs.contains("ingress"),
        "qdiscs left on flowshield0: {qdiscs}"
    );
    let ifb = c.command(&["ip", "link", "show", "dev", IFB]).output()?;
    ensure!(!ifb.status.success(), "{IFB} survived the stop");
    ensure!(
        !reaches(&market.client, INTERNET)?,
        "the client still reaches {INTERNET} with the provider stopped"
    );
    Ok(())
}

/// flowshield0's peers, as root over the full UAPI socket.
fn dataplane_peers(c: &Container) -> Result<Vec<serde_json::Value>> {
    let shown = c.exec(&["flowshield", "show", "flowshield0", "--json"])?;
    let device: serde_json::Value = serde_json::from_str(&shown).context("flowshield show")?;
    device["peers"]
        .as_array()
        .cloned()
        .with_context(|| format!("no peers in {device}"))
}
