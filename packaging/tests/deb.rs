//! The provider package end to end, as an operator's machine sees it:
//! build it (`packaging/build-deb.sh`), lintian it, install it with dpkg
//! into a fresh Debian chroot (debootstrap minbase of the host's suite,
//! cached as a tarball under [`CACHE_DIR`]), check files, owners, modes, the
//! user and the keys, run `flowshield --version`, configure again (keys and
//! files unchanged), remove and purge, and compare the chroot with its
//! state before installation: only dpkg's own bookkeeping may differ.
//!
//! Needs root (chroot, file owners), debootstrap, lintian, help2man and
//! cargo-deb: `scripts/setup.sh` installs them. A missing one fails the test
//! with what to do; nothing is skipped. The chroot is deleted afterwards,
//! also when the test fails. Nothing is mounted into it: dpkg and the
//! maintainer scripts need neither /proc nor /dev beyond debootstrap's nodes.

use anyhow::{bail, ensure, Context, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Where the pristine chroot tarball is kept between runs (outside the clone).
const CACHE_DIR: &str = "/var/tmp/flowshield-debootstrap";
const SUITE: &str = "bookworm";
/// The package's Depends that minbase lacks (dpkg -i does not fetch them).
const EXTRA_PACKAGES: &[&str] = &["iproute2", "iputils-ping", "nftables"];
const PACKAGE: &str = "flowshield";
const BINARIES: &[&str] = &[
    "flowshield",
    "flowshield-market",
    "flowshield-verifier",
    "flowshield-ca",
    "flowshieldd",
];
const UNITS: &[&str] = &[
    "flowshield@.service",
    "flowshield-provider.service",
    "flowshield-verifier.service",
    "flowshield-verifier.timer",
];

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("packaging/ is inside the workspace")
        .to_path_buf()
}

fn describe(cmd: &Command) -> String {
    let mut parts = vec![cmd.get_program().to_string_lossy().into_owned()];
    parts.extend(cmd.get_args().map(|a| a.to_string_lossy().into_owned()));
    parts.join(" ")
}

/// Runs `cmd`; fails with its output unless it exits 0.
fn run(cmd: &mut Command) -> Result<Output> {
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

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn require_prerequisites() -> Result<()> {
    // SAFETY: geteuid(2) cannot fail.
    ensure!(
        unsafe { libc::geteuid() } == 0,
        "the package test needs root (chroot, file owners): run scripts/test.sh as root"
    );
    for tool in [
        "debootstrap",
        "lintian",
        "help2man",
        "dpkg-deb",
        "chroot",
        "tar",
        "sha256sum",
    ] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        ensure!(found, "{tool} is not installed: run scripts/setup.sh");
    }
    Ok(())
}

/// `packaging/build-deb.sh`: release binaries, man pages, cargo-deb.
fn build_deb() -> Result<PathBuf> {
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

fn lintian_is_clean(deb: &Path) -> Result<()> {
    let out = Command::new("lintian")
        .args(["--fail-on", "error,warning", "--tag-display-limit", "0"])
        .arg(deb)
        .output()
        .context("cannot run lintian")?;
    let report = format!("{}{}", stdout(&out), String::from_utf8_lossy(&out.stderr));
    eprintln!("lintian:\n{report}");
    ensure!(out.status.success(), "lintian is not clean:\n{report}");
    Ok(())
}

fn check_control(deb: &Path) -> Result<()> {
    let field = |name: &str| -> Result<String> {
        Ok(stdout(&run(Command::new("dpkg-deb")
            .args(["-f"])
            .arg(deb)
            .arg(name))?)
        .trim()
        .to_string())
    };
    assert_eq!(field("Package")?, PACKAGE);
    assert_eq!(
        field("Version")?,
        format!("{}-1", env!("CARGO_PKG_VERSION")),
        "package version is not the workspace version"
    );
    let depends = field("Depends")?;
    for dep in ["libc6", "iproute2", "iputils-ping", "passwd", "nftables"] {
        assert!(depends.contains(dep), "Depends lacks {dep}: {depends}");
    }
    Ok(())
}

/// The host's Debian mirror for [`SUITE`], from apt's own sources.
fn mirror() -> Result<String> {
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
struct Chroot {
    dir: tempfile::TempDir,
}

impl Chroot {
    /// Unpacks the cached minbase tarball, making it first if absent.
    fn create() -> Result<Self> {
        let tarball = Path::new(CACHE_DIR).join(format!(
            "{SUITE}-minbase-{}.tar.gz",
            EXTRA_PACKAGES.join("+")
        ));
        if !tarball.is_file() {
            make_tarball(&tarball)?;
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

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `argv` inside the chroot, with a clean environment.
    fn command(&self, argv: &[&str]) -> Command {
        let mut cmd = Command::new("chroot");
        cmd.arg(self.path())
            .args(argv)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("LC_ALL", "C")
            .env("DEBIAN_FRONTEND", "noninteractive");
        cmd
    }

    fn run(&self, argv: &[&str]) -> Result<String> {
        Ok(stdout(&run(&mut self.command(argv))?))
    }

    /// `dpkg -i` of `deb`, copied into the chroot's /tmp for the call.
    fn dpkg_install(&self, deb: &Path) -> Result<String> {
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

    fn host_path(&self, inside: &str) -> PathBuf {
        self.path().join(inside.trim_start_matches('/'))
    }
}

fn make_tarball(tarball: &Path) -> Result<()> {
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
        .arg(format!("--include={}", EXTRA_PACKAGES.join(",")))
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

/// One file's identity: type, mode, owner, size, link target, content hash.
type Tree = BTreeMap<String, String>;

/// Every path under `root` (but /proc, /sys, /dev contents), with metadata
/// and, for regular files, a SHA-256 of the content.
fn snapshot(root: &Path) -> Result<Tree> {
    let listing = stdout(&run(Command::new("find")
        .arg(root)
        .args(["-xdev", "-mindepth", "1"])
        .args(["(", "-path"])
        .arg(root.join("proc"))
        .args(["-o", "-path"])
        .arg(root.join("sys"))
        .args([")", "-prune", "-o", "-printf", r"%P\t%y %m %U:%G %s %l\n"]))?);
    let mut tree = Tree::new();
    for line in listing.lines() {
        let (path, meta) = line.split_once('\t').context("find output")?;
        // Directory sizes change with their history, not their content.
        let meta = if meta.starts_with("d ") {
            let mut parts: Vec<&str> = meta.split(' ').collect();
            parts[3] = "-";
            parts.join(" ")
        } else {
            meta.to_string()
        };
        tree.insert(path.to_string(), meta);
    }
    let sums = stdout(&run(Command::new("sh")
        .arg("-c")
        .arg("cd \"$1\" && find . -xdev \\( -path ./proc -o -path ./sys \\) -prune -o -type f -print0 | xargs -0r sha256sum")
        .arg("sh")
        .arg(root))?);
    for line in sums.lines() {
        let (sum, path) = line.split_once("  ").context("sha256sum output")?;
        let path = path.trim_start_matches("./");
        if let Some(meta) = tree.get_mut(path) {
            meta.push(' ');
            meta.push_str(sum);
        }
    }
    Ok(tree)
}

/// What dpkg, apt, debconf and the shadow tools keep about what happened,
/// which a purge rightly leaves: package database and logs, debconf's
/// cache, and the shadow tools' one-generation backups (/etc/passwd- …).
fn is_bookkeeping(path: &str) -> bool {
    const PREFIXES: &[&str] = &[
        "var/lib/dpkg/",
        "var/log/dpkg.log",
        "var/log/apt/",
        "var/cache/debconf/",
        "var/cache/apt/",
        "var/lib/apt/",
        "etc/passwd-",
        "etc/group-",
        "etc/shadow-",
        "etc/gshadow-",
        "tmp/",
    ];
    PREFIXES.iter().any(|p| path.starts_with(p))
}

/// Paths added, removed or changed between two snapshots, bookkeeping aside.
fn differences(before: &Tree, after: &Tree) -> Vec<String> {
    let mut diffs = Vec::new();
    for (path, meta) in after {
        if is_bookkeeping(path) {
            continue;
        }
        match before.get(path) {
            None => diffs.push(format!("+ {path} ({meta})")),
            Some(old) if old != meta => diffs.push(format!("~ {path} ({old} -> {meta})")),
            Some(_) => {}
        }
    }
    for (path, meta) in before {
        if !is_bookkeeping(path) && !after.contains_key(path) {
            diffs.push(format!("- {path} ({meta})"));
        }
    }
    diffs
}

/// Type, mode and owner of a path in `tree`, as `find -printf "%y %m %U:%G"`.
fn kind_mode_owner<'a>(tree: &'a Tree, path: &str) -> Option<&'a str> {
    let meta = tree.get(path.trim_start_matches('/'))?;
    let end = meta.match_indices(' ').nth(2).map(|(i, _)| i)?;
    Some(&meta[..end])
}

/// The user's uid and gid inside the chroot.
fn ids(root: &Chroot, user: &str) -> Result<(String, String)> {
    let entry = root.run(&["getent", "passwd", user])?;
    let fields: Vec<&str> = entry.trim().split(':').collect();
    ensure!(fields.len() == 7, "getent passwd {user}: {entry}");
    assert_eq!(fields[5], "/var/lib/flowshield", "home of {user}");
    assert_eq!(fields[6], "/usr/sbin/nologin", "shell of {user}");
    let uid: u32 = fields[2].parse()?;
    assert!(uid < 1000, "{user} is not a system user (uid {uid})");
    Ok((fields[2].to_string(), fields[3].to_string()))
}

fn check_installed(root: &Chroot, tree: &Tree) -> Result<()> {
    let (uid, gid) = ids(root, "flowshield")?;
    let fs = format!("{uid}:{gid}");
    let expect = |path: &str, wanted: &str| {
        assert_eq!(
            kind_mode_owner(tree, path),
            Some(wanted),
            "type, mode and owner of {path}"
        );
    };
    for bin in BINARIES {
        expect(&format!("/usr/bin/{bin}"), "f 755 0:0");
        expect(&format!("/usr/share/man/man1/{bin}.1.gz"), "f 644 0:0");
    }
    for unit in UNITS {
        // Installed in /lib; bookworm's merged /usr makes that usr/lib.
        expect(&format!("/usr/lib/systemd/system/{unit}"), "f 644 0:0");
    }
    expect("/etc/flowshield/provider.toml", "f 644 0:0");
    expect("/etc/flowshield/verifier.toml", "f 644 0:0");
    expect("/etc/logrotate.d/flowshield", "f 644 0:0");
    expect("/usr/share/doc/flowshield/copyright", "f 644 0:0");
    expect("/var/lib/flowshield", &format!("d 750 {fs}"));
    // Keys: the data plane's and the verifier's are root's, the provider's
    // its user's; all 0600.
    expect("/etc/flowshield/flowshield0.conf", "f 600 0:0");
    expect("/etc/flowshield/verifier-wg.key", "f 600 0:0");
    expect("/etc/flowshield/verifier-chain.key", "f 600 0:0");
    expect("/etc/flowshield/provider.key", &format!("f 600 {fs}"));
    expect("/etc/flowshield/chain.key", &format!("f 600 {fs}"));

    // The generated wg-quick file is valid and its key is a real key.
    let conf = std::fs::read_to_string(root.host_path("/etc/flowshield/flowshield0.conf"))?;
    let key = conf
        .lines()
        .find_map(|l| l.strip_prefix("PrivateKey = "))
        .context("flowshield0.conf has no PrivateKey")?;
    assert_eq!(key.len(), 44, "PrivateKey is not a base64 key");
    assert!(conf.contains("\nListenPort = 51820\n"), "{conf}");
    // The provider's user can read its keys (what its service does first).
    let keys = root.run(&[
        "setpriv",
        "--reuid=flowshield",
        "--regid=flowshield",
        "--init-groups",
        "flowshield-market",
        "keys",
        "--identity",
        "/etc/flowshield/provider.key",
        "--chain-key",
        "/etc/flowshield/chain.key",
    ])?;
    assert!(keys.starts_with("peer_id 12D3KooW"), "{keys}");
    assert!(keys.contains("\nchain_address 0x"), "{keys}");

    // Installed, not enabled: no unit is wanted by any target.
    let enabled: Vec<&String> = tree
        .keys()
        .filter(|p| p.starts_with("etc/systemd/system/") && p.contains("flowshield"))
        .collect();
    assert!(enabled.is_empty(), "units enabled on install: {enabled:?}");

    let version = root.run(&["flowshield", "--version"])?;
    assert_eq!(
        version.trim(),
        format!("flowshield {}", env!("CARGO_PKG_VERSION"))
    );
    for bin in &BINARIES[1..] {
        root.run(&[bin, "--help"])?;
    }
    Ok(())
}

/// dpkg's own lines; anything else in its output came from our scripts.
fn is_dpkg_chatter(line: &str) -> bool {
    const DPKG: &[&str] = &[
        "Selecting previously unselected package",
        "(Reading database",
        "Preparing to unpack",
        "Unpacking ",
        "Setting up ",
        "Removing ",
        "Purging configuration files",
    ];
    line.trim().is_empty() || DPKG.iter().any(|p| line.starts_with(p))
}

#[test]
fn package_installs_reconfigures_and_purges_cleanly() -> Result<()> {
    require_prerequisites()?;
    let deb = build_deb()?;
    lintian_is_clean(&deb)?;
    check_control(&deb)?;

    let root = Chroot::create()?;
    let pristine = snapshot(root.path())?;
    let output = root.dpkg_install(&deb)?;
    let noise: Vec<&str> = output.lines().filter(|l| !is_dpkg_chatter(l)).collect();
    assert!(noise.is_empty(), "installation printed: {noise:#?}");
    let installed = snapshot(root.path())?;
    check_installed(&root, &installed)?;

    // Configure again, twice over: the scripts change nothing, keys included.
    root.run(&["dpkg-reconfigure", PACKAGE])?;
    root.dpkg_install(&deb)?;
    let diffs = differences(&installed, &snapshot(root.path())?);
    assert!(
        diffs.is_empty(),
        "configuring again changed files:\n{}",
        diffs.join("\n")
    );

    // Remove (configuration stays), then purge: nothing of ours is left.
    root.run(&["dpkg", "--remove", PACKAGE])?;
    assert!(
        root.host_path("/etc/flowshield/chain.key").exists(),
        "remove deleted the keys"
    );
    root.run(&["dpkg", "--purge", PACKAGE])?;
    let diffs = differences(&pristine, &snapshot(root.path())?);
    assert!(
        diffs.is_empty(),
        "purge left the system changed:\n{}",
        diffs.join("\n")
    );
    let user = root.command(&["getent", "passwd", "flowshield"]).output()?;
    assert!(!user.status.success(), "the flowshield user survived purge");
    Ok(())
}
