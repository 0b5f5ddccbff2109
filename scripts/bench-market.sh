#!/usr/bin/env bash
# FlowShield fullnode benchmark (not a test: it prints numbers and a verdict).
#
# Starts a local chain with the market deployed (`flowshield-market
# dev-chain`, Hardhat EDR from contracts/node_modules) and a release
# fullnode on 127.0.0.1 with a fresh SQLite index gating on it
# (--chain-rpc/--market: it admits only providers staked on chain), then a
# simulator playing BENCH_PROVIDERS providers (each its own Ed25519 key,
# signing its own heartbeats, each registered and staked on the chain with
# its own chain key before the first heartbeat) that heartbeat every
# BENCH_INTERVAL seconds through gossipsub (aggregate
# BENCH_PROVIDERS/BENCH_INTERVAL per second). BENCH_CHAIN=0 runs without a
# chain (the fullnode then admits unverified providers).
# It waits until the fullnode has indexed every provider (the gate's one
# chain lookup per provider; time and CPU printed, BENCH_ADMIT_TIMEOUT
# seconds at most), then after a warm-up it measures the steady state:
#   1. the fullnode's CPU over BENCH_CPU_SECONDS of heartbeats alone, from
#      /proc/<pid>/stat (utime+stime over wall time = share of one core),
#      and the heartbeats it accepted per second (from /metrics);
#   2. BENCH_MATCHES `POST /v1/match` requests at BENCH_MATCH_RATE per
#      second (one keep-alive connection, varied regions/prices/capacity):
#      client-side p50/p99, the server-side p99 bucket of
#      flowshield_match_latency_seconds, and the CPU share meanwhile.
# Targets (issue 4): heartbeat CPU < 25% of a core, match p99 < 10 ms.
#
# Environment:
#   BENCH_PROVIDERS (10000) BENCH_INTERVAL (5) BENCH_WARMUP (15)
#   BENCH_CPU_SECONDS (30) BENCH_MATCHES (5000) BENCH_MATCH_RATE (250)
#   BENCH_CHAIN (1) BENCH_ADMIT_TIMEOUT (300)
#   MARKET_BIN, BENCH_BIN: prebuilt binaries (default: cargo build --release)
#   CARGO_TARGET_DIR as for cargo
#
# Usage: bash scripts/bench-market.sh   (no root needed; 127.0.0.1 only)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PROVIDERS=${BENCH_PROVIDERS:-10000}
INTERVAL=${BENCH_INTERVAL:-5}
WARMUP=${BENCH_WARMUP:-15}
CPU_SECONDS=${BENCH_CPU_SECONDS:-30}
MATCHES=${BENCH_MATCHES:-5000}
MATCH_RATE=${BENCH_MATCH_RATE:-250}
CHAIN=${BENCH_CHAIN:-1}
ADMIT_TIMEOUT=${BENCH_ADMIT_TIMEOUT:-300}
CPU_TARGET=25
P99_TARGET_MS=10

if [ -z "${MARKET_BIN:-}" ] || [ -z "${BENCH_BIN:-}" ]; then
    echo "== building release binaries" >&2
    (cd "$ROOT" && cargo build --release --locked -q -p flowshield-market --bins)
    target=${CARGO_TARGET_DIR:-$ROOT/target}
    MARKET_BIN=${MARKET_BIN:-$target/release/flowshield-market}
    BENCH_BIN=${BENCH_BIN:-$target/release/flowshield-market-bench}
fi

WORK=$(mktemp -d /tmp/flowshield-bench-market.XXXXXX)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

wait_line() { # file prefix seconds -> the rest of the first line starting with prefix
    local deadline=$((SECONDS + $3))
    while [ $SECONDS -lt $deadline ]; do
        if line=$(grep -m1 "^$2" "$1" 2>/dev/null); then echo "${line#"$2"}"; return 0; fi
        sleep 0.1
    done
    return 1
}

CHAIN_ARGS=()
SIM_CHAIN_ARGS=()
if [ "$CHAIN" = 1 ]; then
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    "$MARKET_BIN" --log warn dev-chain --listen "127.0.0.1:$port" --dir "$WORK/chain" \
        >"$WORK/chain.out" 2>"$WORK/chain.err" &
    PIDS+=("$!")
    ready=$(wait_line "$WORK/chain.out" "ready " 120) ||
        { cat "$WORK/chain.err" >&2; echo "local chain did not start" >&2; exit 1; }
    RPC=$(echo "$ready" | python3 -c 'import json,sys; print(json.load(sys.stdin)["rpc_url"])')
    MARKET=$(echo "$ready" | python3 -c 'import json,sys; print(json.load(sys.stdin)["market_address"])')
    echo "local chain $RPC market $MARKET"
    CHAIN_ARGS=(--chain-rpc "$RPC" --market "$MARKET")
    SIM_CHAIN_ARGS=(--chain-rpc "$RPC" --market "$MARKET")
fi

# The match load comes from one address, above the per-client API default:
# allow four times the load.
"$MARKET_BIN" --log warn fullnode \
    --listen /ip4/127.0.0.1/tcp/0 --http 127.0.0.1:0 \
    --db "sqlite://$WORK/index.db" --identity "$WORK/fullnode.key" \
    --expire-secs 30 --api-rate $((MATCH_RATE * 4)) --api-burst $((MATCH_RATE * 4)) \
    "${CHAIN_ARGS[@]}" \
    >"$WORK/fullnode.out" 2>"$WORK/fullnode.err" &
FULLNODE=$!
PIDS+=("$FULLNODE")
for _ in $(seq 1 100); do
    grep -q '^http ' "$WORK/fullnode.out" 2>/dev/null && break
    sleep 0.1
done
HTTP=$(awk '/^http /{print $2}' "$WORK/fullnode.out")
P2P=$(awk '/^listening .*\/tcp\//{print $2; exit}' "$WORK/fullnode.out")
[ -n "$HTTP" ] && [ -n "$P2P" ] || { cat "$WORK/fullnode.err" >&2; echo "fullnode did not start" >&2; exit 1; }
echo "fullnode pid $FULLNODE http $HTTP p2p $P2P"

TOTAL=$((ADMIT_TIMEOUT + WARMUP + CPU_SECONDS + MATCHES / MATCH_RATE + 30))
"$BENCH_BIN" --log info simulate --providers "$PROVIDERS" --interval-secs "$INTERVAL" \
    --bootstrap "$P2P" --duration-secs "$TOTAL" "${SIM_CHAIN_ARGS[@]}" \
    >"$WORK/sim.out" 2>"$WORK/sim.err" &
SIM=$!
PIDS+=("$SIM")
if [ "$CHAIN" = 1 ]; then
    # Registration comes before the first heartbeat and is not measured.
    echo "== registering $PROVIDERS providers on chain"
    t_reg=$SECONDS
    until grep -q 'registered on chain' "$WORK/sim.err" 2>/dev/null; do
        kill -0 "$SIM" 2>/dev/null || { tail -n 20 "$WORK/sim.err" >&2; echo "simulator failed" >&2; exit 1; }
        sleep 0.5
    done
    echo "registered in $((SECONDS - t_reg))s"
fi

metric() { # metric NAME_AND_LABELS -> value (0 if absent)
    curl -fsS "http://$HTTP/metrics" | awk -v s="$1" '$1 == s {print $2; found=1} END {if (!found) print 0}'
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$FULLNODE/stat"; }
HZ=$(getconf CLK_TCK)
now() { date +%s.%N; }

# Admission (one chain lookup per provider with the gate on) is a one-off
# cost: measured on its own, then the steady state is.
echo "== admitting $PROVIDERS providers"
t_admit=$(now); c_admit=$(cpu_ticks)
until [ "$(metric flowshield_providers_indexed)" -ge "$PROVIDERS" ]; do
    if awk -v a="$t_admit" -v n="$(now)" -v t="$ADMIT_TIMEOUT" 'BEGIN {exit !(n - a > t)}'; then
        echo "FAIL: only $(metric flowshield_providers_indexed) of $PROVIDERS providers indexed after ${ADMIT_TIMEOUT}s" >&2
        exit 1
    fi
    sleep 1
done
ADMIT_S=$(awk -v a="$t_admit" -v n="$(now)" 'BEGIN {printf "%.1f", n - a}')
CPU_ADMIT=$(awk -v c="$(($(cpu_ticks) - c_admit))" -v hz="$HZ" -v s="$ADMIT_S" 'BEGIN {printf "%.1f", 100 * c / hz / s}')
echo "all indexed in ${ADMIT_S}s (fullnode CPU ${CPU_ADMIT}% of one core meanwhile)"

echo "== warm-up ${WARMUP}s ($PROVIDERS providers every ${INTERVAL}s)"
sleep "$WARMUP"
echo "providers indexed after warm-up: $(metric flowshield_providers_indexed)"

echo "== heartbeats only, ${CPU_SECONDS}s"
t0=$(now); c0=$(cpu_ticks); h0=$(metric 'flowshield_heartbeats_total{result="accepted"}')
sleep "$CPU_SECONDS"
t1=$(now); c1=$(cpu_ticks); h1=$(metric 'flowshield_heartbeats_total{result="accepted"}')
CPU_HB=$(awk -v c="$((c1 - c0))" -v hz="$HZ" -v t0="$t0" -v t1="$t1" 'BEGIN {printf "%.1f", 100 * c / hz / (t1 - t0)}')
HB_RATE=$(awk -v h0="$h0" -v h1="$h1" -v t0="$t0" -v t1="$t1" 'BEGIN {printf "%.0f", (h1 - h0) / (t1 - t0)}')
INDEXED=$(metric flowshield_providers_indexed)
REFUSED=$(curl -fsS "http://$HTTP/metrics" | awk '/^flowshield_heartbeats_total/ && !/accepted/ {s += $2} END {print s + 0}')

echo "== $MATCHES matches at ${MATCH_RATE}/s"
t0=$(now); c0=$(cpu_ticks)
"$BENCH_BIN" --log warn match --url "http://$HTTP" --requests "$MATCHES" --rate "$MATCH_RATE" >"$WORK/match.out"
t1=$(now); c1=$(cpu_ticks)
CPU_MATCH=$(awk -v c="$((c1 - c0))" -v hz="$HZ" -v t0="$t0" -v t1="$t1" 'BEGIN {printf "%.1f", 100 * c / hz / (t1 - t0)}')
get() { awk -F= -v k="$1" '$1 == k {print $2}' "$WORK/match.out"; }
P50=$(get p50_ms); P99=$(get p99_ms); MAXMS=$(get max_ms)
OK=$(get ok); NF=$(get not_found); ERRS=$(get errors)
# Server side: the smallest histogram bucket holding 99% of observations.
SERVER_P99=$(curl -fsS "http://$HTTP/metrics" | awk '
    /^flowshield_match_latency_seconds_bucket/ {
        match($0, /le="[^"]*"/); le = substr($0, RSTART + 4, RLENGTH - 5)
        n++; les[n] = le; counts[n] = $2 }
    /^flowshield_match_latency_seconds_count/ { total = $2 }
    END { for (i = 1; i <= n; i++) if (counts[i] >= 0.99 * total) { print (les[i] == "+Inf" ? "inf" : les[i] * 1000); exit } }')
FLUSH_P=$(curl -fsS "http://$HTTP/metrics" | awk '
    /^flowshield_index_flush_seconds_sum/ {s = $2} /^flowshield_index_flush_seconds_count/ {c = $2}
    END {if (c > 0) printf "%.2f ms mean over %d batches", 1000 * s / c, c}')

kill "$SIM" 2>/dev/null || true
wait "$SIM" 2>/dev/null || true
SIM_RATE=$(sed 's/\x1b\[[0-9;]*m//g' "$WORK/sim.err" | grep -o 'rate="*[0-9]*/s' | tail -1 | tr -dc '0-9' || true)

cat <<EOF

FlowShield fullnode benchmark ($(nproc) cores, $(uname -r))
  providers simulated         $PROVIDERS, heartbeat every ${INTERVAL}s (target rate $((PROVIDERS / INTERVAL))/s), stake gate $([ "$CHAIN" = 1 ] && echo on || echo off)
  simulator published         ${SIM_RATE:-?}/s
  fullnode accepted           ${HB_RATE}/s heartbeats, refused total $REFUSED, providers indexed $INDEXED
  admission of all providers  ${ADMIT_S}s, fullnode CPU ${CPU_ADMIT}% of one core meanwhile
  fullnode CPU, heartbeats    ${CPU_HB}% of one core   (target < ${CPU_TARGET}%)
  fullnode CPU, + matches     ${CPU_MATCH}% of one core
  index writes                ${FLUSH_P:-none}
  match requests              $MATCHES at ${MATCH_RATE}/s: ok $OK, no match $NF, errors $ERRS
  match latency (client)      p50 ${P50} ms, p99 ${P99} ms, max ${MAXMS} ms   (target p99 < ${P99_TARGET_MS} ms)
  match latency (server)      p99 <= ${SERVER_P99} ms (histogram bucket)
EOF

verdict=PASS
awk -v c="$CPU_HB" -v t="$CPU_TARGET" 'BEGIN {exit !(c < t)}' || { echo "FAIL: CPU ${CPU_HB}% >= ${CPU_TARGET}%"; verdict=FAIL; }
awk -v p="$P99" -v t="$P99_TARGET_MS" 'BEGIN {exit !(p < t)}' || { echo "FAIL: p99 ${P99} ms >= ${P99_TARGET_MS} ms"; verdict=FAIL; }
awk -v r="$HB_RATE" -v want="$((PROVIDERS / INTERVAL))" 'BEGIN {exit !(r >= 0.95 * want)}' ||
    { echo "FAIL: accepted ${HB_RATE}/s, below 95% of $((PROVIDERS / INTERVAL))/s"; verdict=FAIL; }
[ "${ERRS:-1}" = 0 ] || { echo "FAIL: $ERRS match requests failed"; verdict=FAIL; }
echo "$verdict"
[ "$verdict" = PASS ]
