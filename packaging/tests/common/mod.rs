//! What the package tests share: running commands, building the .deb
//! (`packaging/build-deb.sh`), and Debian chroots unpacked from a cached
//! debootstrap tarball (one per package list) under [`CACHE_DIR`];
//! [`container`]: such a tree booted under systemd-nspawn; [`market`]: a
//! local market (chain, fullnode, client) in network namespaces around it.

// Each test file uses its own part of this module.
#![allow(dead_code)]

pub mod container;
pub mod market;

use anyhow::{bail, ensure, Context, Result};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Where the pristine chroot tarball is kept between runs (outside the clone).
pub const CACHE_DIR: &str = "/var/tmp/flowshield-debootstrap";
pub const SUITE: &str = "bookworm";
/// The package's Depends that minbase lacks (dpkg -i does not fetch them).
pub const EXTRA_PACKAGES: &[&str] = &["iproute2", "iputils-ping", "nftables"];

/// Fails naming the lines of a shipped config that still hold a
/// `<placeholder>` outside comments.
pub fn ensure_filled_in(text: &str) -> Result<()> {
    let left: Vec<&str> = text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#') && l.contains('<'))
        .collect();
    ensure!(left.is_empty(), "placeholders left: {left:?}");
    Ok(())
}

/// Fails naming the first of `tools` that is not on PATH.
pub fn require_tools(tools: &[&str]) -> Result<()> {
    for tool in tools {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        ensure!(found, "{tool} is not installed: run scripts/setup.sh");
    }
    Ok(())
}

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("packaging/ is inside the workspace")
        .to_path_buf()
}

pub fn describe(cmd: &Command) -> String {
    let mut parts = vec![cmd.get_program().to_string_lossy().into_owned()];
    parts.extend(cmd.get_args().map(|a| a.to_string_lossy().into_owned()));
    parts.join(" ")
}

/// Runs `cmd`; fails with its output unless it exits 0.
pub fn run(cmd: &mut Command) -> Result<Output> {
    let what = describe(cmd);
    let out = cmd
        .output()
        .with_context(|| format!("cannot run `{what}`"))?;
    if !out.status.success() {
        bail!(
            "`{what}` failed ({}):\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(out)
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `packaging/build-deb.sh`: release binaries, man pages, cargo-deb.
pub fn build_deb() -> Result<PathBuf> {
    let mut cmd = Command::new("bash");
    cmd.arg(workspace_root().join("packaging/build-deb.sh"))
        .stderr(std::process::Stdio::inherit());
    // Build as `scripts/test.sh` or an operator would, not with the
    // variables cargo sets for this test (CARGO_PKG_*, LD_LIBRARY_PATH, …):
    // they change build-script fingerprints, and each later plain build
    // would then rebuild the release binaries from scratch.
    for (name, _) in std::env::vars_os() {
        let keep = ["CARGO_TARGET_DIR", "CARGO_HOME", "CARGO_TERM_COLOR"];
        let name_text = name.to_string_lossy();
        if (name_text.starts_with("CARGO") && !keep.contains(&name_text.as_ref()))
            || name_text == "LD_LIBRARY_PATH"
            || name_text.starts_with("RUST_TEST")
        {
            cmd.env_remove(&name);
        }
    }
    let out = run(&mut cmd)?;
    let text = stdout(&out);
    let path = PathBuf::from(text.lines().last().unwrap_or_default().trim());
    ensure!(path.is_file(), "build-deb.sh printed no .deb path: {text}");
    Ok(path)
}

/// The host's Debian mirror for [`SUITE`], from apt's own sources.
pub fn mirror() -> Result<String> {
    let mut texts = Vec::new();
    for dir in ["/etc/apt/sources.list.d"] {
        if let Ok(entries) = std::fs::read_dir(dir) {
            let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
            paths.sort();
            for path in paths {
                texts.push((
                    path.clone(),
                    std::fs::read_to_string(&path).unwrap_or_default(),
                ));
            }
        }
    }
    texts.push((
        "/etc/apt/sources.list".into(),
        std::fs::read_to_string("/etc/apt/sources.list").unwrap_or_default(),
    ));
    for (path, text) in &texts {
        let deb822 = path.extension().is_some_and(|e| e == "sources");
        if deb822 {
            for stanza in text.split("\n\n") {
                let get = |key: &str| {
                    stanza
                        .lines()
                        .find_map(|l| l.strip_prefix(key).map(|v| v.trim().to_string()))
                        .unwrap_or_default()
                };
                let suites = get("Suites:");
                if get("Types:").split_whitespace().any(|t| t == "deb")
                    && suites.split_whitespace().any(|s| s == SUITE)
                {
                    if let Some(uri) = get("URIs:").split_whitespace().next() {
                        return Ok(uri.to_string());
                    }
                }
            }
        } else {
            for line in text.lines() {
                let words: Vec<&str> = line
                    .split_whitespace()
                    .filter(|w| !w.starts_with('['))
                    .collect();
                if words.len() >= 3 && words[0] == "deb" && words[2] == SUITE {
                    return Ok(words[1].to_string());
                }
            }
        }
    }
    bail!("no apt source for {SUITE} in /etc/apt/sources.list(.d): cannot debootstrap")
}

/// A chroot in a temporary directory, deleted on drop.
pub struct Chroot {
    pub dir: tempfile::TempDir,
}

impl Chroot {
    /// Unpacks the cached minbase tarball with [`EXTRA_PACKAGES`], making
    /// it first if absent.
    pub fn create() -> Result<Self> {
        Self::create_with(EXTRA_PACKAGES)
    }

    /// Unpacks the cached minbase tarball with `packages` besides
    /// minbase, making it first if absent (one tarball per list).
    pub fn create_with(packages: &[&str]) -> Result<Self> {
        let tarball =
            Path::new(CACHE_DIR).join(format!("{SUITE}-minbase-{}.tar.gz", packages.join("+")));
        if !tarball.is_file() {
            make_tarball(&tarball, packages)?;
        }
        let dir = tempfile::Builder::new()
            .prefix("flowshield-deb-test-")
            .tempdir_in("/var/tmp")?;
        run(Command::new("tar")
            .args(["--numeric-owner", "-xpzf"])
            .arg(&tarball)
            .arg("-C")
            .arg(dir.path()))?;
        Ok(Self { dir })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `argv` inside the chroot, with a clean environment.
    pub fn command(&self, argv: &[&str]) -> Command {
        let mut cmd = Command::new("chroot");
        cmd.arg(self.path())
            .args(argv)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("LC_ALL", "C")
            .env("DEBIAN_FRONTEND", "noninteractive");
        cmd
    }

    pub fn run(&self, argv: &[&str]) -> Result<String> {
        Ok(stdout(&run(&mut self.command(argv))?))
    }

    /// `dpkg -i` of `deb`, copied into the chroot's /tmp for the call.
    pub fn dpkg_install(&self, deb: &Path) -> Result<String> {
        let inside = Path::new("/tmp").join(deb.file_name().context("deb has no file name")?);
        let copy = self.path().join(inside.strip_prefix("/")?);
        std::fs::copy(deb, &copy)?;
        let out = run(&mut self.command(&["dpkg", "-i", inside.to_str().context("path")?]));
        std::fs::remove_file(&copy)?;
        let out = out?;
        Ok(format!(
            "{}{}",
            stdout(&out),
            String::from_utf8_lossy(&out.stderr)
        ))
    }

    pub fn host_path(&self, inside: &str) -> PathBuf {
        self.path().join(inside.trim_start_matches('/'))
    }
}

pub fn make_tarball(tarball: &Path, packages: &[&str]) -> Result<()> {
    let mirror = mirror()?;
    std::fs::create_dir_all(CACHE_DIR)?;
    let build = tempfile::Builder::new()
        .prefix("debootstrap-")
        .tempdir_in(CACHE_DIR)?;
    let root = build.path().join("root");
    eprintln!(
        "debootstrap {SUITE} from {mirror} (cached afterwards as {})",
        tarball.display()
    );
    run(Command::new("debootstrap")
        .arg("--variant=minbase")
        .arg(format!("--include={}", packages.join(",")))
        .arg(SUITE)
        .arg(&root)
        .arg(&mirror))?;
    // apt's downloaded .debs are not part of a fresh system.
    run(Command::new("chroot").arg(&root).args(["apt-get", "clean"]))?;
    let partial = build.path().join("root.tar.gz");
    run(Command::new("tar")
        .args(["--numeric-owner", "-czf"])
        .arg(&partial)
        .arg("-C")
        .arg(&root)
        .arg("."))?;
    std::fs::rename(&partial, tarball)?;
    Ok(())
}
