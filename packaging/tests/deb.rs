//! The provider package end to end, as an operator's machine sees it:
//! build it (`packaging/build-deb.sh`), lintian it, install it with dpkg
//! into a fresh Debian chroot (debootstrap minbase of the host's suite,
//! cached as a tarball under [`common::CACHE_DIR`]), check files, owners,
//! modes, the user and the keys, run `flowshield --version`, configure
//! again (keys and files unchanged), remove and purge, and compare the
//! chroot with its state before installation: only dpkg's own bookkeeping
//! may differ.
//!
//! Needs root (chroot, file owners), debootstrap, lintian, help2man and
//! cargo-deb: `scripts/setup.sh` installs them. A missing one fails the test
//! with what to do; nothing is skipped. The chroot is deleted afterwards,
//! also when the test fails. Nothing is mounted into it: dpkg and the
//! maintainer scripts need neither /proc nor /dev beyond debootstrap's nodes.

mod common;

use anyhow::{ensure, Context, Result};
use common::{build_deb, require_tools, run, stdout, Chroot};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

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

fn require_prerequisites() -> Result<()> {
    // SAFETY: geteuid(2) cannot fail.
    ensure!(
        unsafe { libc::geteuid() } == 0,
        "the package test needs root (chroot, file owners): run scripts/test.sh as root"
    );
    require_tools(&[
        "debootstrap",
        "lintian",
        "help2man",
        "dpkg-deb",
        "chroot",
        "tar",
        "sha256sum",
    ])
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
