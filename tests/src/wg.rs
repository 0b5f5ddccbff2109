//! Keys, the real `wg`, raw UAPI requests and `flowshield show --json`.

use crate::process::run_ok;
use anyhow::{bail, Context};
use base64::Engine;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Where every userspace WireGuard daemon puts its UAPI socket (shared by
/// all namespaces, hence the unique interface names).
pub const SOCKET_DIR: &str = "/var/run/wireguard";

pub fn socket_path(iface: &str) -> PathBuf {
    Path::new(SOCKET_DIR).join(format!("{iface}.sock"))
}

/// A WireGuard key pair in base64, as `wg` prints keys.
#[derive(Debug, Clone)]
pub struct KeyPair {
    pub private: String,
    pub public: String,
}

fn base64_to_hex(key: &str) -> anyhow::Result<String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(key.trim())
        .with_context(|| format!("'{key}' is not base64"))?;
    if bytes.len() != 32 {
        bail!("'{key}' is {} bytes, not 32", bytes.len());
    }
    Ok(hex::encode(bytes))
}

fn run_with_stdin(cmd: &mut Command, input: &str) -> anyhow::Result<String> {
    let what = crate::process::describe(cmd);
    let mut child = cmd
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start `{what}`"))?;
    child
        .stdin
        .take()
        .context("stdin")?
        .write_all(input.as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "`{what}` failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8(out.stdout)?.trim().to_string())
}

impl KeyPair {
    /// A new pair from `flowshield genkey` and `flowshield pubkey`.
    pub fn generate() -> anyhow::Result<Self> {
        let bin = crate::flowshield_bin()?;
        let private = run_ok(Command::new(&bin).arg("genkey"))?.trim().to_string();
        let public = run_with_stdin(Command::new(&bin).arg("pubkey"), &private)?;
        Ok(KeyPair { private, public })
    }

    /// A new pair from `wg genkey` and `wg pubkey`.
    pub fn generate_with_wg() -> anyhow::Result<Self> {
        let private = run_ok(Command::new("wg").arg("genkey"))?.trim().to_string();
        let public = wg_pubkey(&private)?;
        Ok(KeyPair { private, public })
    }

    pub fn private_hex(&self) -> String {
        base64_to_hex(&self.private).expect("generated key is valid")
    }

    pub fn public_hex(&self) -> String {
        base64_to_hex(&self.public).expect("generated key is valid")
    }

    /// Writes the private key to `dir/NAME.key` (mode 600) for
    /// `wg set ... private-key FILE`.
    pub fn write_private(&self, dir: &Path, name: &str) -> anyhow::Result<PathBuf> {
        use std::os::unix::fs::OpenOptionsExt;
        let path = dir.join(format!("{name}.key"));
        std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .mode(0o600)
            .open(&path)?
            .write_all(self.private.as_bytes())?;
        Ok(path)
    }
}

/// `wg pubkey` of a base64 private key.
pub fn wg_pubkey(private: &str) -> anyhow::Result<String> {
    run_with_stdin(Command::new("wg").arg("pubkey"), private)
}

/// `flowshield pubkey` of a base64 private key.
pub fn flowshield_pubkey(private: &str) -> anyhow::Result<String> {
    run_with_stdin(
        Command::new(crate::flowshield_bin()?).arg("pubkey"),
        private,
    )
}

/// Runs the real `wg` with `args`; fails unless it exits 0.
pub fn wg(args: &[&str]) -> anyhow::Result<String> {
    run_ok(Command::new("wg").args(args))
}

/// One peer line of `wg show IFACE dump`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DumpPeer {
    pub public_key: String,
    pub endpoint: Option<String>,
    pub allowed_ips: String,
    pub latest_handshake: u64,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub persistent_keepalive: String,
}

/// `wg show IFACE dump`, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dump {
    pub public_key: String,
    pub listen_port: u16,
    pub fwmark: String,
    pub peers: Vec<DumpPeer>,
}

impl Dump {
    pub fn peer(&self, public_key: &str) -> anyhow::Result<&DumpPeer> {
        self.peers
            .iter()
            .find(|p| p.public_key == public_key)
            .with_context(|| format!("no peer {public_key} in {self:#?}"))
    }
}

pub fn dump(iface: &str) -> anyhow::Result<Dump> {
    let text = wg(&["show", iface, "dump"])?;
    parse_dump(&text).with_context(|| format!("`wg show {iface} dump` printed:\n{text}"))
}

fn parse_dump(text: &str) -> anyhow::Result<Dump> {
    let mut lines = text.lines();
    let head: Vec<&str> = lines.next().context("empty dump")?.split('\t').collect();
    if head.len() != 4 {
        bail!("interface line has {} fields", head.len());
    }
    let mut dump = Dump {
        public_key: head[1].to_string(),
        listen_port: head[2].parse()?,
        fwmark: head[3].to_string(),
        peers: Vec::new(),
    };
    for line in lines {
        let f: Vec<&str> = line.split('\t').collect();
        if f.len() != 8 {
            bail!("peer line has {} fields: {line}", f.len());
        }
        dump.peers.push(DumpPeer {
            public_key: f[0].to_string(),
            endpoint: (f[2] != "(none)").then(|| f[2].to_string()),
            allowed_ips: f[3].to_string(),
            latest_handshake: f[4].parse()?,
            rx_bytes: f[5].parse()?,
            tx_bytes: f[6].parse()?,
            persistent_keepalive: f[7].to_string(),
        });
    }
    Ok(dump)
}

/// Sends one raw UAPI request (`text` must end with the empty line) and
/// returns the whole reply. Reads until the reply's final empty line or
/// until the daemon closes the connection; 5 s deadline per read.
pub fn uapi_request(iface: &str, text: &str) -> anyhow::Result<String> {
    let path = socket_path(iface);
    let mut stream = UnixStream::connect(&path)
        .with_context(|| format!("cannot connect to {}", path.display()))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    // A daemon may reject and close before reading everything: a failed
    // write is then not an error, the reply (or its absence) tells.
    let _ = stream.write_all(text.as_bytes());
    let mut reply = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                reply.extend_from_slice(&buf[..n]);
                let so_far = String::from_utf8_lossy(&reply);
                if so_far.ends_with("\n\n") && so_far.contains("errno=") {
                    break;
                }
            }
            Err(e) if reply.is_empty() => {
                return Err(e).with_context(|| format!("no reply from {}", path.display()))
            }
            Err(_) => break,
        }
    }
    Ok(String::from_utf8_lossy(&reply).into_owned())
}

/// The `errno=N` value of a UAPI reply, if it has one.
pub fn reply_errno(reply: &str) -> Option<i64> {
    reply
        .lines()
        .find_map(|l| l.strip_prefix("errno="))
        .and_then(|v| v.trim().parse().ok())
}

/// Parses the `key=value` lines of a `stats=1` reply.
pub fn stats(iface: &str) -> anyhow::Result<std::collections::BTreeMap<String, u64>> {
    let reply = uapi_request(iface, "stats=1\n\n")?;
    if reply_errno(&reply) != Some(0) {
        bail!("stats=1 on {iface} failed: {reply:?}");
    }
    let mut map = std::collections::BTreeMap::new();
    for line in reply.lines() {
        if let Some((k, v)) = line.split_once('=') {
            if k != "errno" {
                map.insert(k.to_string(), v.parse()?);
            }
        }
    }
    Ok(map)
}

/// `flowshield show IFACE --json`, parsed.
pub fn show_json(iface: &str) -> anyhow::Result<serde_json::Value> {
    let out = run_ok(Command::new(crate::flowshield_bin()?).args(["show", iface, "--json"]))?;
    serde_json::from_str(&out).with_context(|| format!("show --json printed:\n{out}"))
}

/// The peer object with `public_key` in a `show --json` value.
pub fn json_peer<'a>(
    show: &'a serde_json::Value,
    public_key: &str,
) -> anyhow::Result<&'a serde_json::Value> {
    show["peers"]
        .as_array()
        .context("show --json has no peers array")?
        .iter()
        .find(|p| p["public_key"] == public_key)
        .with_context(|| format!("no peer {public_key} in {show:#}"))
}

/// A numeric field of a `show --json` object.
pub fn json_u64(value: &serde_json::Value, field: &str) -> anyhow::Result<u64> {
    value[field]
        .as_u64()
        .with_context(|| format!("field {field} is not a number in {value:#}"))
}
