//! The committed `build/*.json` must be exactly what the pinned solc-js produces from
//! `solidity/*.sol` (stale artifacts fail the build).

use std::path::Path;
use std::process::Command;

#[test]
fn committed_artifacts_match_fresh_compile() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    assert!(
        dir.join("node_modules/solc").exists(),
        "solc-js not installed: run contracts/scripts/setup.sh"
    );
    let out = Command::new("node")
        .args(["scripts/compile.js", "--check"])
        .current_dir(dir)
        .output()
        .expect("run node scripts/compile.js --check");
    assert!(
        out.status.success(),
        "build/ is stale or compile failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
