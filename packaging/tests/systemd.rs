//! The packaged units under a real systemd: the .deb is installed into a
//! Debian tree (debootstrap minbase plus systemd, cached like the package
//! test's under `/var/tmp/flowshield-debootstrap`), the tree is booted with
//! `systemd-nspawn --boot` in its own network namespace with the host's
//! `/dev/net/tun`, and systemd inside starts and stops the units:
//! - `flowshield@flowshield0` (the data plane) comes up: the interface and
//!   both UAPI sockets exist, the restricted one root:flowshield 0660;
//! - `flowshield-provider` (filled-in provider.toml without `[chain]`: it
//!   announces and serves its dashboard but does not sell, see below) stays
//!   active as user flowshield with CAP_NET_ADMIN as its only capability,
//!   and its dashboard shows the data plane's counters read over the
//!   restricted socket through the sandbox (and refuses a rebound Host);
//! - `flowshield-verifier.timer` fires (a drop-in moves it to 1 s after
//!   start) and starts the verifier service, which stops at its
//!   configuration's first placeholder, `chain.rpc_url`, as documented;
//! - stopping the units removes the interface and its sockets.
//!
//! A selling provider (`[chain]`, egress filter and tc shaping) under the
//! same unit is `systemd_selling.rs`. Needs root, systemd-nspawn (systemd-container),
//! debootstrap and what the package test needs: `scripts/setup.sh`.

mod common;

use anyhow::{ensure, Context, Result};
use common::container::{require_prerequisites, steadily_sandboxed, Container, Network, PACKAGES};
use common::{build_deb, Chroot};
use std::time::Instant;

/// The packaged provider.toml with a site's values, announcing only (no
/// `[chain]` table, so `chain_address` is given).
fn provider_config(shipped: &str, chain_address: &str) -> Result<String> {
    let mut text = shipped
        .replace(
            "<multiaddr of a fullnode>",
            // Nobody listens there: the provider keeps retrying, as it
            // would while its fullnode is down.
            "/ip4/127.0.0.1/tcp/4999/p2p/12D3KooWLiuAhzaG5UnQLhYgMa6uJuKTJgXhv7xKRXeKQwmTkPv8",
        )
        .replace("<region>", "eu-west")
        .replace("<public IPv4 address>", "203.0.113.7")
        .replace(
            "# chain_address = \"<0x address>\"",
            &format!("chain_address = \"{chain_address}\""),
        );
    let start = text
        .find("\n[chain]")
        .context("provider.toml has no [chain]")?;
    let end = start
        + text[start + 1..]
            .find("\n[")
            .context("nothing after [chain]")?
        + 1;
    text.replace_range(start..end, "\n");
    common::ensure_filled_in(&text)?;
    Ok(text)
}

#[test]
fn units_start_sandboxed_fire_and_stop_under_systemd() -> Result<()> {
    require_prerequisites()?;
    let deb = build_deb()?;
    let tree = Chroot::create_with(PACKAGES)?;
    tree.dpkg_install(&deb)?;

    // The site's values, as an operator fills them in.
    let keys = tree.run(&[
        "flowshield-market",
        "keys",
        "--identity",
        "/etc/flowshield/provider.key",
        "--chain-key",
        "/etc/flowshield/chain.key",
    ])?;
    let chain_address = keys
        .lines()
        .find_map(|l| l.strip_prefix("chain_address "))
        .context("keys printed no chain_address")?
        .trim()
        .to_string();
    let config = tree.host_path("/etc/flowshield/provider.toml");
    let filled = provider_config(&std::fs::read_to_string(&config)?, &chain_address)?;
    std::fs::write(&config, filled)?;
    // The verifier timer, 1 s after it starts instead of every 5 minutes.
    let dropin = tree.host_path("/etc/systemd/system/flowshield-verifier.timer.d");
    std::fs::create_dir_all(&dropin)?;
    std::fs::write(
        dropin.join("test.conf"),
        "[Timer]\nOnActiveSec=1s\nRandomizedDelaySec=0\n",
    )?;

    // nspawn's console output, quoted when the boot fails.
    let logs = tempfile::tempdir_in("/var/tmp")?;
    let started = Instant::now();
    let container = Container::boot(
        tree.path(),
        logs.path().join("nspawn.log"),
        Network::Private,
    )?;
    let result = exercise(&container, &chain_address);
    eprintln!("booted and exercised in {:?}", started.elapsed());
    // Powered off before the tree is deleted.
    drop(container);
    result
}

fn exercise(c: &Container, chain_address: &str) -> Result<()> {
    // The data plane.
    c.exec(&["systemctl", "start", "flowshield@flowshield0.service"])
        .with_context(|| c.journal("flowshield@flowshield0.service"))?;
    ensure!(c.property("flowshield@flowshield0.service", "ActiveState")? == "active");
    c.exec(&["ip", "link", "show", "dev", "flowshield0"])?;
    let sockets = c.exec(&[
        "stat",
        "-c",
        "%n %a %U:%G",
        "/run/wireguard/flowshield0.sock",
        "/run/wireguard/restricted/flowshield0.sock",
    ])?;
    ensure!(
        sockets.contains("/run/wireguard/flowshield0.sock 600 root:root")
            && sockets.contains("/run/wireguard/restricted/flowshield0.sock 660 root:flowshield"),
        "UAPI sockets: {sockets}"
    );

    // The provider, sandboxed, as user flowshield.
    let provider = "flowshield-provider.service";
    c.exec(&["systemctl", "start", provider])?;
    c.wait_until("the provider's dashboard line", || {
        ensure!(
            c.property(provider, "ActiveState")? != "failed",
            "{provider} failed:\n{}",
            c.journal(provider)
        );
        Ok(c.journal(provider)
            .contains("dashboard http://127.0.0.1:8090/"))
    })?;
    steadily_sandboxed(c, provider, &format!(":\n{}", c.journal(provider)))?;
    let (status, answer) = c.http_get(8090, "/api/status", "127.0.0.1:8090")?;
    ensure!(status == 200, "{answer}");
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
    let json: serde_json::Value = serde_json::from_str(body).context("dashboard JSON")?;
    ensure!(
        json["identity"]["chain_address"]
            .as_str()
            .is_some_and(|a| a.eq_ignore_ascii_case(chain_address)),
        "{json}"
    );
    // Counters read by user flowshield over the restricted socket, through
    // ProtectSystem=strict and friends.
    ensure!(
        json["traffic"]["state"] == "ok",
        "traffic: {}",
        json["traffic"]
    );
    ensure!(json["identity"]["wg_public_key"]
        .as_str()
        .is_some_and(|k| k.len() == 44));
    let (status, _) = c.http_get(8090, "/api/status", "evil.example:8090")?;
    ensure!(status == 421, "rebound Host got {status}");

    // The verifier timer fires and starts its service once.
    let verifier = "flowshield-verifier.service";
    c.exec(&["systemctl", "start", "flowshield-verifier.timer"])?;
    c.wait_until("the verifier service's start", || {
        Ok(
            c.property(verifier, "InactiveExitTimestampMonotonic")? != "0"
                && c.property(verifier, "ActiveState")? != "activating",
        )
    })?;
    ensure!(c.property("flowshield-verifier.timer", "LastTriggerUSecMonotonic")? != "0");
    let journal = c.journal(verifier);
    ensure!(
        journal.contains("chain.rpc_url") && c.property(verifier, "Result")? == "exit-code",
        "the verifier did not stop at its unfilled configuration:\n{journal}"
    );

    // Stopping takes the interface and its sockets away.
    c.exec(&[
        "systemctl",
        "stop",
        provider,
        "flowshield@flowshield0.service",
    ])?;
    ensure!(c.property(provider, "ActiveState")? == "inactive");
    ensure!(c.property("flowshield@flowshield0.service", "ActiveState")? == "inactive");
    let gone = c
        .command(&["ip", "link", "show", "dev", "flowshield0"])
        .output()?;
    ensure!(!gone.status.success(), "flowshield0 survived its stop");
    let left = c.exec(&[
        "sh",
        "-c",
        "ls /run/wireguard /run/wireguard/restricted 2>/dev/null || true",
    ])?;
    ensure!(!left.contains("flowshield0.sock"), "sockets left: {left}");
    Ok(())
}
