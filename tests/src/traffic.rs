//! Traffic through the tunnels: ping, a TCP echo and raw UDP datagrams, run
//! inside namespaces (the TCP and UDP tools are this package's `e2e-helper`).

use crate::netns::Netns;
use crate::process::{run_ok_timeout, run_with_timeout};
use anyhow::{bail, Context};
use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;
use std::time::Duration;

/// `ping -c COUNT -W 2 -i 0.2 DST` from `ns`; fails unless every echo came back.
pub fn ping(ns: &Netns, dst: &str, count: u32) -> anyhow::Result<()> {
    let count = count.to_string();
    let mut cmd = ns.command("ping");
    cmd.args(["-n", "-c", &count, "-W", "2", "-i", "0.2", dst]);
    let out = run_with_timeout(&mut cmd, Duration::from_secs(30))?;
    let all = format!("{count} received");
    if !out.status.success() || !out.stdout.contains(&all) {
        bail!(
            "ping {dst} from {} lost packets ({}):\n{}{}",
            ns.name(),
            out.status,
            out.stdout,
            out.stderr
        );
    }
    Ok(())
}

/// The first ping through a new tunnel: up to `attempts` rounds of
/// `ping -c 3 -W 2`, done once one round gets any reply (the first packets
/// wait for the handshake).
pub fn ping_first(ns: &Netns, dst: &str, attempts: u32) -> anyhow::Result<()> {
    let mut last = String::new();
    for _ in 0..attempts {
        let mut cmd = ns.command("ping");
        cmd.args(["-n", "-c", "3", "-W", "2", "-i", "0.2", dst]);
        let out = run_with_timeout(&mut cmd, Duration::from_secs(30))?;
        if out.status.success() {
            return Ok(());
        }
        last = format!("{}{}", out.stdout, out.stderr);
    }
    bail!(
        "no ping reply from {dst} in {} after {attempts} attempts:\n{last}",
        ns.name()
    )
}

/// Sends `len` bytes from `client_ns` to a TCP echo server on
/// `server_addr:port` in `server_ns` and checks every byte comes back
/// unchanged. Returns the number of bytes echoed.
pub fn tcp_echo(
    server_ns: &Netns,
    client_ns: &Netns,
    server_addr: &str,
    port: u16,
    len: usize,
) -> anyhow::Result<usize> {
    let listen = format!("{server_addr}:{port}");
    let mut server = server_ns
        .command(crate::helper_bin())
        .args(["tcp-echo-server", &listen, "30"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot start the TCP echo server")?;
    let mut lines = BufReader::new(server.stdout.take().context("server stdout")?);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = lines.read_line(&mut line);
        let _ = tx.send(line);
        let mut rest = String::new();
        let _ = std::io::Read::read_to_string(&mut lines, &mut rest);
    });
    // Readiness: the server prints "listening" once bound.
    match rx.recv_timeout(Duration::from_secs(10)) {
        Ok(line) if line.trim() == "listening" => {}
        other => {
            crate::process::kill_child(&mut server);
            bail!("TCP echo server on {listen} did not start: {other:?}");
        }
    }
    let result = run_ok_timeout(
        client_ns.command(crate::helper_bin()).args([
            "tcp-echo-client",
            &listen,
            &len.to_string(),
            "30",
        ]),
        Duration::from_secs(40),
    );
    let client_out = match result {
        Ok(out) => out,
        Err(err) => {
            crate::process::kill_child(&mut server);
            return Err(err);
        }
    };
    let status =
        crate::process::wait_for("TCP echo server to exit", Duration::from_secs(10), || {
            Ok(server.try_wait()?)
        });
    if status.is_err() {
        crate::process::kill_child(&mut server);
    }
    let echoed: usize = client_out
        .trim()
        .strip_prefix("echoed ")
        .and_then(|n| n.parse().ok())
        .with_context(|| format!("unexpected client output {client_out:?}"))?;
    Ok(echoed)
}

/// Sends each of `datagrams` as one UDP datagram from `ns` to `dst`
/// ("IP:PORT"), from `src` ("IP:PORT", port 0 for any) if given.
pub fn udp_send(
    ns: &Netns,
    dst: &str,
    src: Option<&str>,
    datagrams: &[Vec<u8>],
) -> anyhow::Result<()> {
    let mut file = tempfile::NamedTempFile::new()?;
    for d in datagrams {
        file.write_all(&(d.len() as u32).to_be_bytes())?;
        file.write_all(d)?;
    }
    file.flush()?;
    let path = file.path().to_string_lossy().into_owned();
    let mut cmd = ns.command(crate::helper_bin());
    cmd.args(["udp-send", &path, dst, src.unwrap_or("0.0.0.0:0")]);
    run_ok_timeout(&mut cmd, Duration::from_secs(10))?;
    Ok(())
}

/// Deterministic pseudo-random bytes (xorshift64*), so failures reproduce.
pub fn pseudo_random(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            (state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8
        })
        .collect()
}
