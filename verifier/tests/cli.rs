//! The `flowshield-verifier` binary: `probe` one-shot output, config errors.

mod common;

use common::*;
use std::process::Command;

fn run(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_flowshield-verifier"))
        .args(args)
        .output()
        .expect("run flowshield-verifier");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A provider with the verifier's key admitted, and a configuration (no
/// chain) with it as the one target, `provider-a`.
fn admitted_verifier() -> (Provider, VerifierNs, String) {
    let provider = Provider::start(true).expect("provider");
    let v = VerifierNs::new(&provider, 1).expect("verifier ns");
    provider.admit(&v).expect("admit");
    let target = format!(
        "provider = \"0x00000000000000000000000000000000000000aa\"\nwg_public_key = \"{}\"",
        provider.site.keys.public
    );
    let text = v.config_text(&[], "", &target);
    (provider, v, text)
}

#[test]
fn probe_command_shows_progress_and_a_table() {
    let (_provider, v, text) = admitted_verifier();
    let path = v.dir.path().join("cli.toml");
    std::fs::write(&path, text).expect("write config");
    let config = path.to_string_lossy().into_owned();

    let (ok, stdout, stderr) = run(&["probe", "--config", &config, "provider-a"]);
    assert!(ok, "probe failed:\n{stdout}\n{stderr}");
    for stage in ["[1/5]", "[2/5]", "[3/5]", "[4/5]", "[5/5]"] {
        assert!(stderr.contains(stage), "no {stage} in:\n{stderr}");
    }
    for row in [
        "handshake",
        "RTT p50",
        "loss",
        "throughput",
        "verdict",
        "PASS",
    ] {
        assert!(stdout.contains(row), "no {row} in:\n{stdout}");
    }
    assert!(!v.has_iface(), "probe interface left behind");

    // The private key never shows up in the output.
    assert!(!stdout.contains(&v.keys.private) && !stderr.contains(&v.keys.private));

    // Unknown target: fails, saying which.
    let (ok, _, stderr) = run(&["probe", "--config", &config, "nobody"]);
    assert!(!ok);
    assert!(
        stderr.contains("no target named or addressed 'nobody'"),
        "{stderr}"
    );
}

#[test]
fn config_errors_name_the_file_and_field() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "[verifier]\nwg_private_key_file = \"k\"\n[probe]\nping_count = 0\n",
    )
    .expect("write");
    let config = path.to_string_lossy().into_owned();
    let (ok, _, stderr) = run(&["probe", "--config", &config, "x"]);
    assert!(!ok);
    assert!(stderr.contains(&config), "{stderr}");
    assert!(stderr.contains("probe.ping_count"), "{stderr}");
}

/// `run --once` (what the packaged timer runs): one round, a JSON summary
/// in the logs, exit 0; a target that cannot be probed makes it exit 1
/// naming the target.
#[test]
fn run_once_probes_every_target_and_fails_on_unprobed_ones() {
    let (_provider, v, text) = admitted_verifier();
    let path = v.dir.path().join("once.toml");
    std::fs::write(&path, &text).expect("write config");
    let config = path.to_string_lossy().into_owned();

    let (ok, _, stderr) = run(&["--log-format", "json", "run", "--once", "--config", &config]);
    assert!(ok, "run --once failed:\n{stderr}");
    let summary = stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|e| e["fields"]["message"] == "round finished")
        .unwrap_or_else(|| panic!("no JSON 'round finished' event in:\n{stderr}"));
    assert_eq!(summary["fields"]["probed"], 1, "{summary}");
    assert_eq!(summary["fields"]["failed"], 0, "{summary}");
    assert_eq!(summary["fields"]["not_run"], 0, "{summary}");
    assert!(!v.has_iface(), "probe interface left behind");

    // The data plane binary is missing: the probe cannot run at all.
    let broken = path.with_file_name("broken.toml");
    let missing = v.dir.path().join("no-such-flowshield");
    let bin = flowshield_e2e::flowshield_bin().expect("flowshield binary");
    let text = text.replace(
        &format!("flowshield_bin = \"{}\"", bin.display()),
        &format!("flowshield_bin = \"{}\"", missing.display()),
    );
    std::fs::write(&broken, text).expect("write config");
    let (ok, _, stderr) = run(&["run", "--once", "--config", &broken.to_string_lossy()]);
    assert!(!ok, "run --once succeeded without a data plane:\n{stderr}");
    assert!(stderr.contains("could not probe: provider-a"), "{stderr}");
}

/// `systemctl stop` during a timer's round: SIGTERM abandons the round
/// promptly (the 20 s ping phase is cut short), exits non-zero saying so,
/// and the probe interface is removed.
#[test]
fn sigterm_mid_probe_removes_the_probe_interface() {
    let (_provider, v, text) = admitted_verifier();
    let path = v.dir.path().join("term.toml");
    // A long ping phase keeps the probe running while the signal lands.
    std::fs::write(&path, text.replace("ping_count = 5", "ping_count = 100")).expect("config");
    let mut child = Command::new(env!("CARGO_BIN_EXE_flowshield-verifier"))
        .args(["run", "--once", "--config"])
        .arg(&path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn verifier");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !v.has_iface() {
        if std::time::Instant::now() > deadline || child.try_wait().ok().flatten().is_some() {
            let _ = child.kill();
            let out = child.wait_with_output().expect("wait");
            panic!(
                "probe interface never appeared:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let pid = i32::try_from(child.id()).expect("pid");
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let signalled = std::time::Instant::now();
    let out = child.wait_with_output().expect("wait");
    let took = signalled.elapsed();
    assert!(
        took < std::time::Duration::from_secs(5),
        "took {took:?} to stop"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "exited 0 after SIGTERM:\n{stderr}");
    assert!(stderr.contains("SIGTERM: round abandoned"), "{stderr}");
    assert!(!v.has_iface(), "probe interface left behind after SIGTERM");
}
