//! The provider dashboard end to end, in headless Chromium.
//!
//! A whole market (see `common`): provider p0 runs with a DeCA certificate
//! (issued for its real keys by an operator registered in a `DecaRegistry`
//! deployed on the dev chain) and its dashboard on 127.0.0.1:8090 inside
//! its namespace; a client buys a session and fetches the origin's blob
//! through the tunnel. Debian's `chromedriver` and `chromium` run in p0's
//! namespace; the test drives them over WebDriver from a thread in that
//! namespace and checks the page against what it reads itself — the chain
//! (with `flowshield-chain`), the fullnode's API, both data planes — then
//! takes a full-page screenshot and checks it is real rendered content.
//! Then it degrades and changes the sources (fullnode down, certificate
//! revoked on chain, session settled) and checks the page follows.
//!
//! Needs root and `scripts/setup.sh` (chromium, chromium-driver, hardhat).
//! The screenshot is kept in the test's directory and copied to
//! `$FLOWSHIELD_ARTIFACTS` when that is set.

mod browser;
mod common;

use anyhow::{bail, ensure, Context, Result};
use browser::{check_screenshot, find_attr, find_text, full_page_png, geometry, Browser};
use common::{block_on, wei, ProviderExtras, ProviderKeys, World, BLOB_BYTES, WAIT};
use fantoccini::{Client, Locator};
use flowshield_ca::authority::{pem_encode, serial_hash, Authority};
use flowshield_ca::node::{NodeKeyFile, NodeKeys};
use flowshield_chain::alloy::primitives::{Address, B256, U256};
use flowshield_chain::{rpc, DecaRegistryClient, MarketClient};
use flowshield_proto::WgPublicKey;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const DASHBOARD: &str = "http://127.0.0.1:8090/?refresh=0";
const FULLNODE: &str = "http://10.250.0.1:8101";
/// The page's header colour (dashboard.css).
const HEADER_RGB: [u8; 3] = [0x14, 0x20, 0x2e];

/// What the test made for p0's certificate.
struct Deca {
    registry: Address,
    rpc_url: String,
    operator_key: PathBuf,
    serial: Vec<u8>,
    peer_id: String,
}

/// Deploys a `DecaRegistry`, registers an operator and issues p0 a
/// certificate binding the keys it is about to start with.
fn issue_certificate(world: &World, keys: &ProviderKeys) -> Result<(Deca, PathBuf)> {
    let dir = world.dir.path();
    let operator_key = dir.join("deca.key");
    let operator = flowshield_market::chain::read_key_file(&operator_key)?;
    let rpc_url = world.rpc_url()?.to_string();
    let now = flowshield_ca::unix_now();
    let authority = Authority::create(operator.address(), now)?;
    let registry = world.hub.run_inside(|| {
        block_on(async {
            let deployer = rpc::connect(&rpc_url, operator.clone())?;
            let registry = DecaRegistryClient::deploy(deployer).await?;
            registry
                .register_operator(
                    operator.address(),
                    B256::from(authority.ca_cert_hash()),
                    "http://deca.invalid",
                )
                .await?;
            anyhow::Ok(registry.address())
        })
    })??;

    // p0's three keys: its libp2p identity (created now, loaded by the
    // provider), its data plane's WireGuard key, its chain key.
    let identity = flowshield_market::identity::load_or_create(&keys.identity_file)?;
    let seed = identity.clone().try_into_ed25519()?.secret();
    use base64::Engine as _;
    let wg = base64::engine::general_purpose::STANDARD.decode(&keys.wg_private)?;
    let node = NodeKeys::from_file(&NodeKeyFile {
        wg_secret: hex::encode(wg),
        libp2p_secret: hex::encode(seed.as_ref()),
        eth_secret: std::fs::read_to_string(&keys.chain_key_file)?
            .trim()
            .to_string(),
    })?;
    let binding = node.binding();
    let peer_id = identity.public().to_peer_id().to_base58();
    ensure!(binding.peer_id.to_base58() == peer_id);
    ensure!(WgPublicKey(binding.wg_pubkey).to_string() == keys.wg_public);
    ensure!(binding
        .chain_address
        .to_string()
        .eq_ignore_ascii_case(&keys.chain_address));
    let csr = Authority::check_csr(&node.csr_der()?, &binding)?;
    let issued = authority.issue(csr, &binding, now, 3600)?;
    let pem = dir.join("p0-chain.pem");
    std::fs::write(
        &pem,
        format!(
            "{}{}",
            pem_encode("CERTIFICATE", &issued.der),
            authority.cert_pem()
        ),
    )?;
    Ok((
        Deca {
            registry,
            rpc_url,
            operator_key,
            serial: issued.serial,
            peer_id,
        },
        pem,
    ))
}

/// Amounts the page shows and the chain holds, compared as one snapshot.
#[derive(Debug, PartialEq, Eq)]
struct Money {
    stake: U256,
    claimable: U256,
    redeemed: U256,
}

async fn chain_money(market: &MarketClient, provider: Address, order: U256) -> Result<Money> {
    Ok(Money {
        stake: market.provider_record(provider).await?.stake,
        claimable: market.claimable(provider).await?,
        redeemed: market.order(order).await?.redeemed,
    })
}

async fn page_money(c: &Client, order: &str) -> Result<Money> {
    let amount = |css: String| async move {
        let text = find_attr(c, &css, "data-wei").await?;
        U256::from_str_radix(&text, 10).with_context(|| format!("{css}: '{text}'"))
    };
    Ok(Money {
        stake: amount("#stake [data-field=staked] .amount".into()).await?,
        claimable: amount("#earnings [data-field=claimable] .amount".into()).await?,
        redeemed: amount(format!(
            "#sessions tr[data-order='{order}'] [data-field=redeemed] .amount"
        ))
        .await?,
    })
}

/// Loads the page until it shows what the chain holds before and after
/// the load (vouchers are redeemed every few seconds while the session
/// runs, so a load can fall between two redemptions).
async fn page_matches_chain(
    c: &Client,
    market: &MarketClient,
    provider: Address,
    order: &str,
) -> Result<Money> {
    let id = U256::from_str_radix(order, 10)?;
    let deadline = Instant::now() + WAIT;
    loop {
        let before = chain_money(market, provider, id).await?;
        c.goto(DASHBOARD).await?;
        let shown = page_money(c, order).await?;
        let after = chain_money(market, provider, id).await?;
        if before == after && shown == after {
            return Ok(shown);
        }
        eprintln!(
            "chain moved during the load, again: chain {before:?} → {after:?}, page {shown:?}"
        );
        ensure!(Instant::now() < deadline, "page never matched the chain");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Saves the screenshot beside the test's files and in $FLOWSHIELD_ARTIFACTS.
fn keep_screenshot(world: &World, png: &[u8]) -> Result<PathBuf> {
    let path = world.dir.path().join("dashboard.png");
    std::fs::write(&path, png)?;
    if let Some(dir) = std::env::var_os("FLOWSHIELD_ARTIFACTS") {
        std::fs::create_dir_all(&dir)?;
        let kept = Path::new(&dir).join("dashboard.png");
        std::fs::copy(&path, &kept)?;
        eprintln!("screenshot copied to {}", kept.display());
        return Ok(kept);
    }
    Ok(path)
}

#[test]
fn dashboard_shows_a_live_session_in_chromium() {
    let mut deca = None;
    let mut world = World::start_with(1, &["deca"], &mut |world, keys| {
        if keys.index != 0 {
            return Ok(ProviderExtras::default());
        }
        let (made, pem) = issue_certificate(world, keys)?;
        let toml = format!(
            "\n[dashboard]\nlisten = \"127.0.0.1:8090\"\nfullnode_url = \"{FULLNODE}\"\n\
             deca_registry = \"{}\"\nrefresh_secs = 5\n",
            made.registry
        );
        deca = Some(made);
        Ok(ProviderExtras {
            toml,
            args: vec!["--certificate".into(), pem.display().to_string()],
        })
    })
    .expect("world");
    let deca = deca.expect("p0's certificate");
    let url = world.providers[0]
        .sidecar
        .as_ref()
        .expect("p0 runs")
        .wait_line(WAIT, |l| l.strip_prefix("dashboard ").map(str::to_string))
        .unwrap();
    assert_eq!(url, "http://127.0.0.1:8090/");

    let config = world.client_config(&World::fullnode_urls()).unwrap();
    let connected = world.connect_client(&config).unwrap();
    world.fetch_blob().expect("fetch through the tunnel");
    let client_wg = flowshield_tunnel::uapi::client::get(&world.client_iface)
        .unwrap()
        .private_key
        .expect("the client's data plane has a key")
        .public_key()
        .to_base64();

    let browser = Browser::start(&world.providers[0].ns).unwrap();
    let p0_ns = world.providers[0].ns.name().to_string();
    flowshield_e2e::netns::run_inside(&p0_ns, || {
        block_on(check(
            &mut world, &browser, &deca, &connected, &client_wg, &config,
        ))
    })
    .unwrap()
    .unwrap();
    drop(browser);
    world.client.as_mut().unwrap().wait_exit(WAIT).unwrap();
}

/// Everything checked through the browser, from inside p0's namespace.
async fn check(
    world: &mut World,
    browser: &Browser,
    deca: &Deca,
    connected: &Value,
    client_wg: &str,
    client_config: &Path,
) -> Result<()> {
    let order = connected["order_id"].as_str().context("order_id")?;
    let provider: Address = world.account("p0").parse()?;
    let client: Address = world.account("client").parse()?;
    let market_address: Address = world.market_address()?.parse()?;
    let market = MarketClient::at(market_address, rpc::connect_read_only(&deca.rpc_url)?);
    let id = U256::from_str_radix(order, 10)?;

    // Vouchers for the blob are redeemed within a few seconds: wait for a
    // payment, so the amounts compared below are not all zero.
    let deadline = Instant::now() + WAIT;
    while market.order(id).await?.redeemed.is_zero() {
        ensure!(
            Instant::now() < deadline,
            "nothing redeemed for order {order}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    let c = browser.connect().await?;
    let result = check_pages(
        world,
        &c,
        &market,
        deca,
        provider,
        client,
        connected,
        client_wg,
        client_config,
    )
    .await;
    let closed = c.close().await;
    result?;
    closed?;
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn check_pages(
    world: &mut World,
    c: &Client,
    market: &MarketClient,
    deca: &Deca,
    provider: Address,
    client: Address,
    connected: &Value,
    client_wg: &str,
    client_config: &Path,
) -> Result<()> {
    let order = connected["order_id"].as_str().context("order_id")?;
    // (a) The page against independent reads.
    let money = page_matches_chain(c, market, provider, order).await?;
    eprintln!("page matches the chain: {money:?}");
    ensure!(!money.redeemed.is_zero() && !money.claimable.is_zero() && !money.stake.is_zero());

    let row = format!("#sessions tr[data-order='{order}']");
    ensure!(find_text(c, &format!("{row} [data-field=client_wg_key]")).await? == client_wg);
    // What the client was told when it connected: its escrow and address.
    let escrow = find_attr(c, &format!("{row} [data-field=escrow] .amount"), "data-wei").await?;
    ensure!(
        connected["escrow_wei"] == escrow.as_str(),
        "escrow {escrow} vs {connected}"
    );
    let tunnel = find_text(c, &format!("{row} [data-field=tunnel_address]")).await?;
    let told = connected["tunnel_address"].as_str().unwrap_or_default();
    ensure!(
        told.split('/').next() == Some(tunnel.as_str()),
        "{tunnel} vs {told}"
    );
    let shown_client = find_text(c, &format!("{row} [data-field=client]")).await?;
    ensure!(
        shown_client.eq_ignore_ascii_case(&client.to_string()),
        "{shown_client}"
    );
    let cumulative = find_attr(
        c,
        &format!("{row} [data-field=vouchers_cumulative] .amount"),
        "data-wei",
    )
    .await?;
    ensure!(U256::from_str_radix(&cumulative, 10)? >= money.redeemed);

    let tx_css = format!("#traffic tr[data-order='{order}'] [data-field=tx] .bytes");
    let shown_tx: u64 = find_attr(c, &tx_css, "data-bytes").await?.parse()?;
    let peers = flowshield_tunnel::uapi::client::get(&world.providers[0].iface)?.peers;
    let peer = peers
        .iter()
        .find(|p| p.public_key.to_base64() == client_wg)
        .context("the client is a peer of p0's data plane")?;
    eprintln!(
        "traffic: page tx {shown_tx} B, data plane now {} B",
        peer.tx_bytes
    );
    ensure!(
        shown_tx >= BLOB_BYTES as u64,
        "page shows {shown_tx} B sent, the blob is {BLOB_BYTES}"
    );
    ensure!(
        shown_tx <= peer.tx_bytes,
        "page shows more than the data plane counted"
    );

    let shown_peer = find_text(c, "#identity [data-field=peer_id]").await?;
    ensure!(shown_peer == deca.peer_id, "{shown_peer}");
    let shown_addr = find_text(c, "#identity [data-field=chain_address]").await?;
    ensure!(shown_addr.eq_ignore_ascii_case(&provider.to_string()));
    ensure!(find_text(c, "#stake [data-field=status]").await? == "active");

    let verdict = find_attr(c, "#certificate [data-field=verdict]", "data-verdict").await?;
    ensure!(verdict == "valid", "certificate verdict {verdict}");
    ensure!(find_text(c, "#certificate [data-field=serial]").await? == hex::encode(&deca.serial));
    ensure!(
        find_text(c, "#certificate [data-field=subject]").await? == format!("CN={}", deca.peer_id)
    );
    ensure!(find_text(c, "#certificate [data-field=binds_this_node]")
        .await?
        .starts_with("yes"));
    ensure!(find_text(c, "#certificate [data-field=revocation]")
        .await?
        .starts_with("not revoked"));

    // The exit policy in force: the uplink shown is the one p0's nftables
    // table masquerades through; SMTP and the private ranges are blocked,
    // each client is shaped.
    ensure!(find_attr(c, "#exit", "data-state").await? == "ok");
    ensure!(find_text(c, "#exit [data-field=egress]").await? == "egress filter on");
    let uplink = find_text(c, "#exit [data-field=uplink]").await?;
    let ruleset = world.providers[0].ns.run(&["nft", "list", "ruleset"])?;
    ensure!(
        !uplink.is_empty() && ruleset.contains(&format!("oifname \"{uplink}\" ip saddr")),
        "uplink {uplink:?} is not what nftables masquerades through:\n{ruleset}"
    );
    ensure!(find_text(c, "#exit [data-field=smtp]").await? == "blocked");
    let ranges = find_text(c, "#exit [data-field=blocked_ranges]").await?;
    ensure!(
        ranges.contains("169.254.0.0/16") && ranges.contains("10.0.0.0/8"),
        "{ranges}"
    );
    let rate = find_text(c, "#exit [data-field=shaping]").await?;
    ensure!(rate.contains("Mbit/s guaranteed"), "{rate}");

    let reputation: Value =
        reqwest::get(format!("{FULLNODE}/v1/providers/{provider:#x}/reputation"))
            .await?
            .json()
            .await?;
    let shown_reports: u64 = find_attr(c, "#reputation [data-field=reports]", "data-reports")
        .await?
        .parse()?;
    ensure!(
        Some(shown_reports) == reputation["reports"].as_u64(),
        "{shown_reports} vs {reputation}"
    );
    let shown_score: f64 = find_attr(c, "#reputation [data-field=score]", "data-score")
        .await?
        .parse()?;
    ensure!(
        Some(shown_score) == reputation["reputation"].as_f64(),
        "{shown_score} vs {reputation}"
    );

    // (b) A full-page screenshot of the same load.
    let (size, table) = geometry(c, "#sessions table").await?;
    let png = full_page_png(c, size).await?;
    let kept = keep_screenshot(world, &png)?;
    eprintln!("screenshot: {}", kept.display());
    check_screenshot(&png, size, HEADER_RGB, table)?;

    // A source failing degrades its panel only: the fullnode goes away.
    world.fullnodes[0].take();
    c.goto(DASHBOARD).await?;
    let state = find_attr(c, "#reputation", "data-state").await?;
    ensure!(state == "unavailable", "reputation panel is {state}");
    let why = find_text(c, "#reputation").await?;
    ensure!(why.contains("10.250.0.1:8101"), "{why}");
    ensure!(
        c.find(Locator::Css("#reputation [data-field=score]"))
            .await
            .is_err(),
        "no score without a fullnode"
    );
    ensure!(find_attr(c, "#sessions", "data-state").await? == "ok");
    c.find(Locator::Css(&row))
        .await
        .context("the session is still shown")?;

    // Revoked on chain: the certificate panel says so.
    let operator = flowshield_market::chain::read_key_file(&deca.operator_key)?;
    let registry = DecaRegistryClient::at(deca.registry, rpc::connect(&deca.rpc_url, operator)?);
    registry
        .record_revocation(serial_hash(&deca.serial))
        .await?;
    c.goto(DASHBOARD).await?;
    let verdict = find_attr(c, "#certificate [data-field=verdict]", "data-verdict").await?;
    ensure!(
        verdict == "revoked",
        "after revocation the verdict is {verdict}"
    );

    // Settled: the session leaves the table, its payment moves to "settled".
    let summary = world.disconnect(client_config)?;
    ensure!(summary["status"] == "Settled", "{summary}");
    let paid = market
        .order(U256::from_str_radix(order, 10)?)
        .await?
        .redeemed;
    ensure!(paid == U256::from(wei(&summary["provider_paid_wei"])));
    // The provider answers Disconnect before its settlement is mined and
    // drops the session once it is: reload until then (bounded).
    let deadline = Instant::now() + WAIT;
    loop {
        c.goto(DASHBOARD).await?;
        if c.find(Locator::Css(&row)).await.is_err() {
            break;
        }
        if Instant::now() >= deadline {
            bail!("order {order} still listed after settlement");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let settled = find_attr(c, "#earnings [data-field=settled_paid] .amount", "data-wei").await?;
    ensure!(
        settled == paid.to_string(),
        "settled {settled}, chain {paid}"
    );
    ensure!(find_text(c, "#earnings [data-field=settled_paid]")
        .await?
        .ends_with("from 1 session"));
    let claimable = find_attr(c, "#earnings [data-field=claimable] .amount", "data-wei").await?;
    ensure!(claimable == market.claimable(provider).await?.to_string());
    Ok(())
}

/// The screenshot check refuses a blank capture (so it can fail).
#[test]
fn a_uniform_screenshot_is_refused() {
    let (w, h) = (400u32, 300u32);
    let mut png = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut png, w, h);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header().unwrap();
        let pixels: Vec<u8> = HEADER_RGB.repeat((w * h) as usize);
        writer.write_image_data(&pixels).unwrap();
    }
    let err = check_screenshot(&png, (w, h), HEADER_RGB, [0, 0, 300, 100]).unwrap_err();
    assert!(err.to_string().contains("colours"), "{err}");
    let err = check_screenshot(&png, (w, h + 1), HEADER_RGB, [0, 0, 300, 100]).unwrap_err();
    assert!(err.to_string().contains("screenshot is 400x300"), "{err}");
}
