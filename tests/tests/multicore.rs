//! The data plane on several workers (`FLOWSHIELD_THREADS` / `--threads`):
//! a hub with four workers serving eight peers that move data at once,
//! byte-exact; the workers really are separate threads, TUN queues and UDP
//! sockets; a bad `--threads` is refused naming the option.

use flowshield_e2e::daemon::{daemon_pids, Daemon, Implementation};
use flowshield_e2e::netns::{Netns, VethPair};
use flowshield_e2e::process::run_with_timeout;
use flowshield_e2e::site::{PeerSpec, Site};
use flowshield_e2e::traffic::{ping_first, tcp_echo};
use std::time::Duration;

const PEERS: usize = 8;
const HUB_THREADS: usize = 4;
/// Bytes each peer sends through the hub (and gets echoed back).
const STREAM_BYTES: usize = 2 << 20;
const HUB_PORT: u16 = 51820;
/// How long refusing a bad option may take.
const REFUSE_TIMEOUT: Duration = Duration::from_secs(10);

/// Starts a flowshield daemon for `site` with `threads` workers.
fn start(site: &mut Site, threads: usize) -> anyhow::Result<()> {
    let threads = threads.to_string();
    let env = [("FLOWSHIELD_THREADS", threads.as_str())];
    site.daemon = Some(Daemon::spawn_with_env(
        &site.ns,
        Implementation::Flowshield,
        &site.iface,
        &env,
    )?);
    Ok(())
}

/// The pid of the one flowshield daemon serving `iface`.
fn daemon_pid(iface: &str) -> anyhow::Result<i32> {
    match daemon_pids(iface)[..] {
        [pid] => Ok(pid),
        ref other => anyhow::bail!("expected one daemon for {iface}, found {other:?}"),
    }
}

/// TUN queues the process holds for `iface` (`iff:` in a TUN fd's fdinfo).
fn tun_queues(pid: i32, iface: &str) -> anyhow::Result<usize> {
    let mut queues = 0;
    for entry in std::fs::read_dir(format!("/proc/{pid}/fdinfo"))? {
        let info = std::fs::read_to_string(entry?.path()).unwrap_or_default();
        if info
            .lines()
            .any(|l| l.strip_prefix("iff:").map(str::trim) == Some(iface))
        {
            queues += 1;
        }
    }
    Ok(queues)
}

/// Threads of process `pid` named as data-plane workers (`flowshield-w<i>`).
fn worker_threads(pid: i32) -> anyhow::Result<usize> {
    let mut workers = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let comm = std::fs::read_to_string(task?.path().join("comm")).unwrap_or_default();
        let index = comm.trim().strip_prefix("flowshield-w");
        if index.is_some_and(|i| !i.is_empty() && i.bytes().all(|b| b.is_ascii_digit())) {
            workers += 1;
        }
    }
    Ok(workers)
}

/// IPv4 UDP sockets of process `pid` bound to `0.0.0.0:port` in `site`'s
/// namespace (`ss -u -a -n -p`).
fn udp_sockets(site: &Site, pid: i32, port: u16) -> anyhow::Result<usize> {
    let out = site.ns.run(&["ss", "-u", "-a", "-n", "-p", "-4"])?;
    let local = format!("0.0.0.0:{port}");
    let owner = format!("pid={pid},");
    Ok(out
        .lines()
        .filter(|l| l.split_whitespace().any(|f| f == local) && l.contains(&owner))
        .count())
}

#[test]
fn hub_with_four_workers_carries_eight_peers_at_once() -> anyhow::Result<()> {
    let mut hub = Site::new("198.18.1.1", "10.77.0.1", HUB_PORT)?;
    let mut clients = Vec::new();
    for i in 0..PEERS {
        let client = Site::new(
            &format!("198.18.{}.2", i + 1),
            &format!("10.77.0.{}", i + 10),
            51821 + i as u16,
        )?;
        VethPair::new(
            &hub.ns,
            &format!("198.18.{}.1/24", i + 1),
            &client.ns,
            &format!("198.18.{}.2/24", i + 1),
        )?;
        clients.push(client);
    }
    start(&mut hub, HUB_THREADS)?;
    let specs: Vec<PeerSpec> = clients
        .iter()
        .map(|c| PeerSpec::new(c).without_endpoint())
        .collect();
    hub.wg_set(&specs)?;
    hub.link_up()?;
    for (i, client) in clients.iter_mut().enumerate() {
        start(client, 1)?;
        let endpoint = format!("198.18.{}.1:{HUB_PORT}", i + 1);
        client.wg_set(&[PeerSpec::new(&hub).endpoint(&endpoint)])?;
        client.link_up()?;
    }

    // The workers are real: four threads, four TUN queues and four sockets
    // on the port (a one-worker client keeps one of each).
    let hub_pid = daemon_pid(&hub.iface)?;
    assert_eq!(worker_threads(hub_pid)?, HUB_THREADS);
    assert_eq!(tun_queues(hub_pid, &hub.iface)?, HUB_THREADS);
    assert_eq!(udp_sockets(&hub, hub_pid, HUB_PORT)?, HUB_THREADS);
    let client_pid = daemon_pid(&clients[0].iface)?;
    assert_eq!(worker_threads(client_pid)?, 1);
    assert_eq!(tun_queues(client_pid, &clients[0].iface)?, 1);
    assert_eq!(udp_sockets(&clients[0], client_pid, clients[0].port)?, 1);

    for client in &clients {
        ping_first(&client.ns, &hub.tunnel, 3)?;
    }
    // Every peer streams through the hub at the same time; each echo
    // client checks every byte that comes back.
    let results: Vec<anyhow::Result<usize>> = std::thread::scope(|scope| {
        let streams: Vec<_> = clients
            .iter()
            .enumerate()
            .map(|(i, client)| {
                let hub = &hub;
                scope.spawn(move || {
                    tcp_echo(
                        &hub.ns,
                        &client.ns,
                        &hub.tunnel,
                        7100 + i as u16,
                        STREAM_BYTES,
                    )
                })
            })
            .collect();
        streams
            .into_iter()
            .map(|s| s.join().expect("stream thread"))
            .collect()
    });
    for (i, result) in results.into_iter().enumerate() {
        let echoed = result.map_err(|e| e.context(format!("peer {i}")))?;
        assert_eq!(echoed, STREAM_BYTES, "peer {i}: stream incomplete");
    }
    // The hub counted each peer's stream, both ways.
    let dump = hub.dump()?;
    for client in &clients {
        let peer = dump.peer(&client.keys.public)?;
        assert!(
            peer.rx_bytes > STREAM_BYTES as u64 && peer.tx_bytes > STREAM_BYTES as u64,
            "{peer:?}"
        );
    }
    assert_eq!(daemon_pid(&hub.iface)?, hub_pid, "the hub still runs");
    Ok(())
}

#[test]
fn bad_thread_counts_are_refused_naming_the_option() -> anyhow::Result<()> {
    // In a namespace of its own, with a deadline: a daemon that wrongly
    // accepted the count would start (and fail the test by timing out).
    let ns = Netns::new()?;
    let bin = flowshield_e2e::flowshield_bin()?;
    let iface = flowshield_e2e::unique_iface();
    for bad in ["0", "65", "many"] {
        let mut cmd = ns.command(&bin);
        cmd.args(["daemon", "--threads", bad, &iface]);
        let out = run_with_timeout(&mut cmd, REFUSE_TIMEOUT)?;
        assert!(!out.status.success(), "--threads {bad} accepted");
        assert!(
            out.stderr.contains("--threads"),
            "--threads {bad}: {}",
            out.stderr
        );
        let mut cmd = ns.command(&bin);
        cmd.args(["daemon", &iface]).env("FLOWSHIELD_THREADS", bad);
        let out = run_with_timeout(&mut cmd, REFUSE_TIMEOUT)?;
        assert!(!out.status.success(), "FLOWSHIELD_THREADS={bad} accepted");
        assert!(
            out.stderr.contains("--threads"),
            "FLOWSHIELD_THREADS={bad}: {}",
            out.stderr
        );
    }
    Ok(())
}
