#!/usr/bin/env bash
# API conformance: schemathesis (pinned, in a venv under /var/tmp) against the
# OpenAPI documents of a real fullnode (with a local chain and the market
# deployed, so reports are checked for real) and a real DeCA operator, both
# started here. Checks: no 5xx, status codes, content types and bodies as
# documented. Usage: scripts/api-conformance.sh [MAX_EXAMPLES] (default 100 per
# operation; the test command runs a smaller smoke). Binaries from
# CARGO_TARGET_DIR (default target/), profile API_PROFILE (default debug).
set -euo pipefail
cd "$(dirname "$0")/.."

MAX_EXAMPLES=${1:-100}
SCHEMATHESIS_VERSION=4.32.5
VENV=/var/tmp/flowshield-tools/schemathesis-$SCHEMATHESIS_VERSION
if [ ! -x "$VENV/bin/schemathesis" ]; then
    echo "api-conformance: installing schemathesis $SCHEMATHESIS_VERSION into $VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet "schemathesis==$SCHEMATHESIS_VERSION"
fi

PROFILE=${API_PROFILE:-debug}
BIN=${CARGO_TARGET_DIR:-target}/$PROFILE
if [ "${API_SKIP_BUILD:-0}" != 1 ]; then
    flag=(); [ "$PROFILE" = release ] && flag=(--release)
    cargo build "${flag[@]}" --locked -p flowshield-market -p flowshield-ca --bins
fi

work=$(mktemp -d /tmp/flowshield-api.XXXXXX)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if [ "${API_KEEP:-0}" = 1 ]; then echo "api-conformance: kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_line() { # file prefix timeout → prints the rest of the first matching line
    local deadline=$((SECONDS + $3))
    while [ $SECONDS -lt $deadline ]; do
        if line=$(grep -m1 "^$2" "$1" 2>/dev/null); then echo "${line#"$2"}"; return 0; fi
        # The process just started (last in pids) exited: no point waiting out the timeout.
        kill -0 "${pids[-1]}" 2>/dev/null || break
        sleep 0.2
    done
    echo "api-conformance: no '$2' in $1 (timed out or the process exited)" >&2; cat "${1%.out}.log" >&2 || true; return 1
}
wait_http() { # url timeout
    local deadline=$((SECONDS + $2))
    until curl -fs -o /dev/null "$1"; do
        [ $SECONDS -lt $deadline ] || { echo "api-conformance: $1 never answered" >&2; return 1; }
        sleep 0.2
    done
}
json() { python3 -c "import json,sys; v=json.load(sys.stdin); print(eval(sys.argv[1], {'v': v}))" "$1"; }

echo "api-conformance: local chain with the market deployed"
"$BIN/flowshield-market" dev-chain --listen "127.0.0.1:$(free_port)" --dir "$work" --keys p0 --verifiers verifier \
    >"$work/chain.out" 2>"$work/chain.log" & pids+=($!)
chain=$(wait_line "$work/chain.out" "ready " 120)
RPC=$(echo "$chain" | json "v['rpc_url']"); MARKET=$(echo "$chain" | json "v['market_address']")

echo "api-conformance: fullnode"
FN_HTTP=127.0.0.1:$(free_port)
"$BIN/flowshield-market" fullnode --listen /ip4/127.0.0.1/tcp/0 --http "$FN_HTTP" \
    --db "sqlite://$work/fn.db" --identity "$work/fn.p2p" --chain-rpc "$RPC" --market "$MARKET" \
    >"$work/fn.out" 2>"$work/fn.log" & pids+=($!)
wait_line "$work/fn.out" "http " 60 >/dev/null

echo "api-conformance: DeCA operator"
"$BIN/flowshield-ca" init --dir "$work/ca" >/dev/null
CA_HTTP=127.0.0.1:$(free_port)
sed -i "s|^listen = .*|listen = \"$CA_HTTP\"|" "$work/ca/config.toml"
"$BIN/flowshield-ca" serve --config "$work/ca/config.toml" >"$work/ca.out" 2>"$work/ca.log" & pids+=($!)
wait_http "http://$CA_HTTP/openapi.json" 30

status=0
run_schemathesis() { # name base-url
    echo "api-conformance: schemathesis against the $1 (max $MAX_EXAMPLES examples per operation)"
    # --mode all: valid requests and invalid ones (each must get a documented 4xx).
    # Positive-acceptance and auth checks are left out: a fuzzed body is rarely a
    # valid signed report or proof, which the API rightly refuses.
    # From the scratch directory: schemathesis keeps a cache in its working directory.
    # One worker: with two, hypothesis parses lambda sources with `ast` from two
    # threads at once, which CPython 3.11 (Debian's) does not survive ("AST
    # constructor recursion depth mismatch", python/cpython#106905); it failed CI.
    if ! (cd "$work" && "$VENV/bin/schemathesis" run "$2/openapi.json" \
        --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance \
        --max-examples "$MAX_EXAMPLES" --seed "${API_SEED:-1}" --workers 1 \
        --suppress-health-check all --request-timeout 10 --output-truncate false \
        --rate-limit 2000/s >"$work/$1.schemathesis" 2>&1); then
        status=1
        echo "api-conformance: the $1 API does not conform:" >&2
        cat "$work/$1.schemathesis" >&2
    else
        tail -n 3 "$work/$1.schemathesis"
    fi
}
run_schemathesis fullnode "http://$FN_HTTP"
run_schemathesis ca "http://$CA_HTTP"

if grep -q "panicked" "$work/fn.log" "$work/ca.log"; then
    echo "api-conformance: a service panicked:" >&2
    grep -h -A3 "panicked" "$work/fn.log" "$work/ca.log" >&2
    status=1
fi
[ $status = 0 ] && echo "api-conformance: ok"
exit $status
