//! `flowshield up` / `down`: wg-quick for the FlowShield daemon.

use anyhow::{bail, Context};
use flowshield_keyfile::KeyFileError;
use flowshield_logging::LogArgs;
use flowshield_tunnel::config::WgQuickConfig;
use flowshield_tunnel::device::driver::DEFAULT_MTU;
use flowshield_tunnel::netcfg::{self, run, Cmd};
use flowshield_tunnel::uapi::{client, socket_path, DeviceSnapshot};
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CONFIG_DIR: &str = "/etc/wireguard";
const LOG_DIR: &str = "/var/log/flowshield";
const START_TIMEOUT: Duration = Duration::from_secs(15);
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// A path (contains '/' or ends in .conf) or an interface name.
fn resolve(target: &str) -> anyhow::Result<(String, PathBuf)> {
    if target.contains('/') || target.ends_with(".conf") {
        let path = PathBuf::from(target);
        let iface = path
            .file_stem()
            .and_then(|s| s.to_str())
            .context("config file name has no stem to name the interface")?
            .to_string();
        super::check_iface_name(&iface)?;
        Ok((iface, path))
    } else {
        super::check_iface_name(target)?;
        Ok((
            target.to_string(),
            Path::new(CONFIG_DIR).join(format!("{target}.conf")),
        ))
    }
}

fn run_hooks(hooks: &[String], iface: &str, stage: &str) -> anyhow::Result<()> {
    for hook in hooks {
        tracing::info!(iface, stage, "running hook");
        run(&Cmd::shell(hook, iface)).with_context(|| format!("{stage} hook"))?;
    }
    Ok(())
}

fn log_path(iface: &str) -> PathBuf {
    Path::new(LOG_DIR).join(format!("{iface}.log"))
}

/// Starts `flowshield daemon IFACE` detached and waits for its readiness
/// line. The daemon logs with the same flags as this command.
fn spawn_daemon(iface: &str, log_args: &LogArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(LOG_DIR).with_context(|| format!("creating {LOG_DIR}"))?;
    let log = log_path(iface);
    let log_file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .with_context(|| format!("opening {}", log.display()))?;
    let _ = std::fs::set_permissions(&log, std::fs::Permissions::from_mode(0o640));
    let exe = std::env::current_exe().context("cannot find the flowshield executable")?;
    let mut child = Command::new(exe)
        .args(log_args.to_args())
        .args(["daemon", iface])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log_file)
        .process_group(0)
        .spawn()
        .context("cannot start the daemon")?;
    let stdout = child.stdout.take().context("daemon has no stdout pipe")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    match rx.recv_timeout(START_TIMEOUT) {
        Ok(line) if line.trim() == "ready" => Ok(()),
        _ => {
            let _ = child.kill();
            let _ = child.wait();
            let tail = std::fs::read_to_string(&log).unwrap_or_default();
            let tail: Vec<&str> = tail.lines().rev().take(5).collect();
            bail!(
                "daemon for {iface} did not start; last log lines ({}):\n{}",
                log.display(),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            )
        }
    }
}

pub fn up(target: &str, log_args: &LogArgs) -> anyhow::Result<()> {
    let (iface, path) = resolve(target)?;
    let cfg = WgQuickConfig::load(&path)?;
    if cfg.interface.private_key.is_some() {
        // wg-quick warns rather than refuses: the file is the admin's.
        if let Err(KeyFileError::Readable { .. }) = flowshield_keyfile::check_private(&path) {
            tracing::warn!(file = %path.display(), "config file holds a private key but is accessible to others (chmod 600)");
        }
    }
    if netcfg::link_exists(&iface) || socket_path(&iface).exists() && client::get(&iface).is_ok() {
        bail!("interface {iface} already exists");
    }
    // Resolve endpoints before anything is created.
    let mut request = cfg.to_set_request()?;
    run_hooks(&cfg.interface.pre_up, &iface, "PreUp")?;
    spawn_daemon(&iface, log_args)?;
    let configured = (|| -> anyhow::Result<()> {
        let port_fixed = request.listen_port.is_some();
        if netcfg::has_default_route(&cfg) && request.fwmark.is_none() {
            // The tunnel's own packets must bypass the tunnel's table.
            let port = match request.listen_port {
                Some(p) => p,
                None => client::get(&iface)?.listen_port,
            };
            request.fwmark = Some(netcfg::default_route_table(&cfg, port));
            if !port_fixed {
                request.listen_port = Some(port);
            }
        }
        client::call(&iface, &request.to_uapi())?;
        let port = client::get(&iface)?.listen_port;
        let mtu = cfg.interface.mtu.unwrap_or(DEFAULT_MTU);
        for cmd in netcfg::link_commands(&cfg, &iface, mtu) {
            run(&cmd)?;
        }
        if let Some(cmd) = netcfg::dns_command(&cfg, &iface) {
            run(&cmd).context("setting DNS (is resolvconf installed?)")?;
        }
        for cmd in netcfg::route_commands(&cfg, &iface, port) {
            run(&cmd)?;
        }
        run_hooks(&cfg.interface.post_up, &iface, "PostUp")
    })();
    if let Err(err) = configured {
        let _ = run(&netcfg::delete_link_command(&iface));
        let _ = wait_for_exit(&iface);
        return Err(err.context(format!("bringing up {iface} (rolled back)")));
    }
    eprintln!("flowshield: interface {iface} is up");
    Ok(())
}

fn wait_for_exit(iface: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + STOP_TIMEOUT;
    let socket = socket_path(iface);
    while socket.exists() {
        if Instant::now() > deadline {
            bail!(
                "daemon for {iface} did not exit (socket {} remains)",
                socket.display()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// Writes the live configuration back (SaveConfig), atomically and 0600.
fn save_config(path: &Path, cfg: &WgQuickConfig, live: &DeviceSnapshot) -> anyhow::Result<()> {
    let text = flowshield_tunnel::config::save_config_text(cfg, live);
    flowshield_keyfile::write_private(path, text.as_bytes())?;
    tracing::info!(file = %path.display(), "saved configuration (SaveConfig = true)");
    Ok(())
}

pub fn down(target: &str) -> anyhow::Result<()> {
    let (iface, path) = resolve(target)?;
    // The file is optional for `down IFACE`: hooks and DNS come from it if present.
    let cfg = if path.exists() {
        Some(WgQuickConfig::load(&path)?)
    } else if target.contains('/') || target.ends_with(".conf") {
        bail!("{}: no such file", path.display());
    } else {
        None
    };
    if !netcfg::link_exists(&iface) {
        bail!("interface {iface} does not exist");
    }
    let live = client::get(&iface).ok();
    let port = live.as_ref().map(|s| s.listen_port).unwrap_or(0);
    if let (Some(cfg), Some(live)) = (&cfg, &live) {
        if cfg.interface.save_config {
            save_config(&path, cfg, live)?;
        }
    }
    if let Some(cfg) = &cfg {
        run_hooks(&cfg.interface.pre_down, &iface, "PreDown")?;
        for cmd in netcfg::teardown_commands(cfg, port) {
            let _ = run(&cmd);
        }
        if !cfg.interface.dns.is_empty() {
            let _ = run(&netcfg::dns_teardown_command(&iface));
        }
    }
    run(&netcfg::delete_link_command(&iface))?;
    wait_for_exit(&iface)?;
    if let Some(cfg) = &cfg {
        run_hooks(&cfg.interface.post_down, &iface, "PostDown")?;
    }
    eprintln!("flowshield: interface {iface} is down");
    Ok(())
}
