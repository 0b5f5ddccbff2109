#!/usr/bin/env bash
# The one test command: installs what is missing, checks formatting and
# lints, builds, and runs every test (unit, integration and end-to-end in
# network namespaces, and the provider .deb installed and purged in a
# debootstrap chroot: packaging/tests/deb.rs), then the demo itself on the
# test build. Needs root (namespaces, TUN devices, chroot).
set -euo pipefail
cd "$(dirname "$0")/.."

[ "$(id -u)" = 0 ] || { echo "test: run as root (network namespaces and TUN devices)" >&2; exit 1; }
bash scripts/setup.sh

export CARGO_TERM_COLOR=never
echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo build (binaries used by end-to-end tests)"
cargo build --workspace --bins --locked
echo "== cargo test"
cargo test --workspace --locked -- --test-threads="${TEST_THREADS:-4}"
echo "== demo (debug build): chain, fullnodes, providers, client, verifier end to end"
DEMO_PROFILE=debug bash scripts/demo.sh
echo "== fuzz smoke: every fuzz target for a few seconds (long runs: scripts/fuzz.sh)"
bash scripts/fuzz.sh "${FUZZ_SMOKE_SECONDS:-10}"
echo "== API conformance smoke: schemathesis against a fullnode and a CA (scripts/api-conformance.sh)"
API_SKIP_BUILD=1 bash scripts/api-conformance.sh "${API_SMOKE_EXAMPLES:-20}"
