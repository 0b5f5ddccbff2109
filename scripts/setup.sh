#!/usr/bin/env bash
# Installs everything FlowShield's demo, tests and benchmarks need on a fresh
# Debian machine. Idempotent: installs only what is missing. Run as root.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
# chromium + chromium-driver (+ a font) render the provider dashboard in the
# browser test and the demo's screenshot; lintian, debootstrap, help2man,
# dpkg-dev: building and testing the provider .deb (packaging/).
for pkg in wireguard-tools wireguard-go iperf3 iproute2 iputils-ping python3 ca-certificates curl \
    chromium chromium-driver fonts-dejavu-core lintian debootstrap help2man dpkg-dev binutils; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need_apt+=("$pkg")
done
# nftables: the provider's egress filter (market/src/provider/egress) and its tests;
# wg-quick's default-route rules and the NAT end-to-end test (tests/tests/conformance.rs).
dpkg-query -W -f='${Status}' nftables 2>/dev/null | grep -q "install ok installed" || need_apt+=(nftables)
# systemd-container: systemd-nspawn boots the .deb's units under a real systemd
# (packaging/tests/systemd.rs).
dpkg-query -W -f='${Status}' systemd-container 2>/dev/null | grep -q "install ok installed" || need_apt+=(systemd-container)
if [ ${#need_apt[@]} -gt 0 ]; then
    echo "setup: installing ${need_apt[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

command -v cargo >/dev/null || { echo "setup: cargo (Rust toolchain) is required" >&2; exit 1; }
for component in rustfmt clippy; do
    cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1 || rustup component add "$component"
done

# cargo-deb, pinned, outside the clone (packaging/build-deb.sh looks here).
CARGO_DEB_VERSION=3.8.0
CARGO_DEB_ROOT=/var/tmp/flowshield-tools/cargo-deb-$CARGO_DEB_VERSION
if [ ! -x "$CARGO_DEB_ROOT/bin/cargo-deb" ]; then
    echo "setup: installing cargo-deb $CARGO_DEB_VERSION"
    # Its own temporary target directory, not the project's.
    env -u CARGO_TARGET_DIR cargo install cargo-deb --locked --quiet \
        --version "$CARGO_DEB_VERSION" --root "$CARGO_DEB_ROOT"
fi

# cargo-fuzz, pinned, outside the clone (scripts/fuzz.sh looks here).
CARGO_FUZZ_VERSION=0.13.2
CARGO_FUZZ_ROOT=/var/tmp/flowshield-tools/cargo-fuzz-$CARGO_FUZZ_VERSION
if [ ! -x "$CARGO_FUZZ_ROOT/bin/cargo-fuzz" ]; then
    echo "setup: installing cargo-fuzz $CARGO_FUZZ_VERSION"
    env -u CARGO_TARGET_DIR cargo install cargo-fuzz --locked --quiet \
        --version "$CARGO_FUZZ_VERSION" --root "$CARGO_FUZZ_ROOT"
fi

# Node.js runs the pinned solc-js compiler and the local EVM node (hardhat).
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    echo "setup: installing nodejs npm"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi

# Contract toolchain (pinned solc-js + local EVM node from npm).
if [ -f contracts/scripts/setup.sh ]; then
    bash contracts/scripts/setup.sh
fi
echo "setup: ok"
