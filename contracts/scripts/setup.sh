#!/usr/bin/env bash
# Idempotent setup for contracts/: install the pinned npm toolchain (solc-js, hardhat,
# Foundry's anvil) when node_modules is missing or older than package-lock.json, then compile
# (or, in CI / with --check, verify the committed build/ is not stale).
# Only the npm registry is contacted, and only when an install is needed.
set -euo pipefail
cd "$(dirname "$0")/.."
export HARDHAT_DISABLE_TELEMETRY_PROMPT=true

stamp=node_modules/.flowshield-lock-stamp
if [[ ! -d node_modules || ! -f "$stamp" ]] || ! cmp -s package-lock.json "$stamp"; then
  echo "setup: npm ci (node_modules missing or stale)"
  npm ci --no-audit --no-fund
  cp package-lock.json "$stamp"
else
  echo "setup: node_modules up to date"
fi

# Foundry's anvil (@foundry-rs/anvil, pinned in package.json): the second EVM node the
# deploy test runs against; npm installs its native binary as a per-platform optional
# dependency. Fail here, not in the test, if it is missing or does not run.
if ! node_modules/.bin/anvil --version >/dev/null; then
  echo "setup: node_modules/.bin/anvil (@foundry-rs/anvil) does not run" >&2
  exit 1
fi

# In CI (CI=true) or with --check, never rewrite build/: fail if the committed
# artifacts differ from a fresh compile. Locally, regenerate them.
if [[ "${CI:-}" == "true" || "${1:-}" == "--check" ]]; then
  node scripts/compile.js --check
else
  node scripts/compile.js
fi
