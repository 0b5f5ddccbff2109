#!/usr/bin/env bash
# FlowShield data-plane benchmark (not a test: it prints numbers).
#
# For each userspace WireGuard implementation — flowshield, wireguard-go,
# boringtun-cli — two network namespaces joined by a veth pair (MTU 1500,
# 198.18.0.0/24) run the same implementation on both ends (tunnel MTU 1420,
# 10.77.0.0/24), configured with the real `wg`. Measured through the tunnel:
# ping RTT on the idle tunnel (50 pings, 10 ms apart; average and maximum),
# then iperf3 TCP with one stream and with 4 streams. The raw veth without a tunnel is the baseline. Prints a
# table and the ratios flowshield/wireguard-go and flowshield/boringtun-cli.
#
# Traffic stays inside the two namespaces this script creates; they, the
# daemons and their sockets are removed on exit (also on Ctrl-C).
#
# Environment:
#   BENCH_SECONDS    seconds per iperf3 run (default 10)
#   BENCH_IMPLS      implementations to run (default "flowshield wireguard-go boringtun-cli")
#   BENCH_TOOLS_DIR  where boringtun-cli is installed by `cargo install` (default /work/.bench-tools)
#   BORINGTUN_BIN    boringtun-cli binary (default $BENCH_TOOLS_DIR/bin/boringtun-cli)
#   FLOWSHIELD_BIN   flowshield binary (default: built here with cargo build --release)
#   CARGO_TARGET_DIR as for cargo (where the release build lands)
#
# Needs root. Usage: bash scripts/bench.sh
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SECS=${BENCH_SECONDS:-10}
IMPLS=${BENCH_IMPLS:-"flowshield wireguard-go boringtun-cli"}
TOOLS_DIR=${BENCH_TOOLS_DIR:-/work/.bench-tools}
BORINGTUN_BIN=${BORINGTUN_BIN:-$TOOLS_DIR/bin/boringtun-cli}

# Names carry our pid so a concurrent run or the e2e tests never collide.
ID=$$
NS_A="fsbench-$ID-a"
NS_B="fsbench-$ID-b"
VETH_A="fbv${ID}a"
VETH_B="fbv${ID}b"
UNDER_A=198.18.0.1
UNDER_B=198.18.0.2
TUN_A=10.77.0.1
TUN_B=10.77.0.2
PORT_A=51820
PORT_B=51821
WORK=$(mktemp -d /tmp/fsbench.XXXXXX)
DAEMON_PIDS=()
IFACES=()

log() { echo "bench: $*" >&2; }
die() { log "error: $*"; exit 1; }

cleanup() {
    local pid iface
    for pid in "${DAEMON_PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${DAEMON_PIDS[@]}"; do
        # Bounded wait, then force.
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
    done
    DAEMON_PIDS=()
    for ns in "$NS_A" "$NS_B"; do
        if [ -f "$WORK/iperf-$ns.pid" ]; then
            kill "$(cat "$WORK/iperf-$ns.pid")" 2>/dev/null || true
            rm -f "$WORK/iperf-$ns.pid"
        fi
        ip netns del "$ns" 2>/dev/null || true
    done
    for iface in "${IFACES[@]}"; do
        rm -f "/var/run/wireguard/$iface.sock"
    done
    IFACES=()
}
trap 'cleanup; rm -rf "$WORK"' EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- tools --
[ "$(id -u)" -eq 0 ] || die "needs root (network namespaces, TUN devices)"

install_apt() {
    local missing=()
    command -v iperf3 >/dev/null || missing+=(iperf3)
    command -v wg >/dev/null || missing+=(wireguard-tools)
    command -v wireguard-go >/dev/null || missing+=(wireguard-go)
    command -v ping >/dev/null || missing+=(iputils-ping)
    if [ ${#missing[@]} -gt 0 ]; then
        log "installing ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
}

install_boringtun() {
    [ -x "$BORINGTUN_BIN" ] && return 0
    log "installing boringtun-cli into $TOOLS_DIR (cargo install, a few minutes)"
    if ! cargo install boringtun-cli --locked --root "$TOOLS_DIR" >"$WORK/boringtun-install.log" 2>&1; then
        tail -20 "$WORK/boringtun-install.log" >&2
        log "warning: boringtun-cli did not install; it is left out"
        return 1
    fi
}

build_flowshield() {
    if [ -n "${FLOWSHIELD_BIN:-}" ]; then
        [ -x "$FLOWSHIELD_BIN" ] || die "FLOWSHIELD_BIN=$FLOWSHIELD_BIN is not executable"
        return
    fi
    log "building flowshield (release)"
    (cd "$ROOT" && cargo build --release -q -p flowshield-tunnel) || die "cargo build failed"
    FLOWSHIELD_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/flowshield"
    [ -x "$FLOWSHIELD_BIN" ] || die "no binary at $FLOWSHIELD_BIN"
}

install_apt
build_flowshield
WANTED=()
for impl in $IMPLS; do
    case $impl in
        flowshield|wireguard-go) WANTED+=("$impl") ;;
        boringtun-cli) install_boringtun && WANTED+=("$impl") ;;
        *) die "unknown implementation '$impl'" ;;
    esac
done

# ------------------------------------------------------------- topology --
underlay_up() {
    ip netns add "$NS_A"
    ip netns add "$NS_B"
    for ns in "$NS_A" "$NS_B"; do
        ip -n "$ns" link set lo up
        ip netns exec "$ns" sysctl -q -w net.ipv6.conf.all.disable_ipv6=1
    done
    ip link add "$VETH_A" netns "$NS_A" type veth peer name "$VETH_B" netns "$NS_B"
    ip -n "$NS_A" addr add "$UNDER_A/24" dev "$VETH_A"
    ip -n "$NS_B" addr add "$UNDER_B/24" dev "$VETH_B"
    ip -n "$NS_A" link set "$VETH_A" mtu 1500 up
    ip -n "$NS_B" link set "$VETH_B" mtu 1500 up
}

# start_daemon IMPL NS IFACE: starts it in the background, waits (bounded)
# until `wg show` answers through its UAPI socket.
start_daemon() {
    local impl=$1 ns=$2 iface=$3 logf="$WORK/$3.log"
    case $impl in
        flowshield) RUST_LOG=warn ip netns exec "$ns" "$FLOWSHIELD_BIN" daemon "$iface" >"$logf" 2>&1 & ;;
        wireguard-go) LOG_LEVEL=error ip netns exec "$ns" wireguard-go -f "$iface" >"$logf" 2>&1 & ;;
        boringtun-cli) WG_LOG_LEVEL=error ip netns exec "$ns" "$BORINGTUN_BIN" -f \
                --disable-drop-privileges "$iface" >"$logf" 2>&1 & ;;
    esac
    DAEMON_PIDS+=($!)
    IFACES+=("$iface")
    local pid=$!
    for _ in $(seq 150); do
        if wg show "$iface" >/dev/null 2>&1 && ip -n "$ns" link show "$iface" >/dev/null 2>&1; then
            return 0
        fi
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    cat "$logf" >&2
    die "$impl did not come up for $iface"
}

# tunnel_up IMPL: both daemons, keys, `wg set`, addresses, MTU 1420.
tunnel_up() {
    local impl=$1 if_a="fb${ID}a" if_b="fb${ID}b"
    start_daemon "$impl" "$NS_A" "$if_a"
    start_daemon "$impl" "$NS_B" "$if_b"
    (umask 077; wg genkey >"$WORK/a.key"; wg genkey >"$WORK/b.key")
    local pub_a pub_b
    pub_a=$(wg pubkey <"$WORK/a.key")
    pub_b=$(wg pubkey <"$WORK/b.key")
    wg set "$if_a" private-key "$WORK/a.key" listen-port $PORT_A \
        peer "$pub_b" allowed-ips "$TUN_B/32" endpoint "$UNDER_B:$PORT_B"
    wg set "$if_b" private-key "$WORK/b.key" listen-port $PORT_B \
        peer "$pub_a" allowed-ips "$TUN_A/32" endpoint "$UNDER_A:$PORT_A"
    ip -n "$NS_A" addr add "$TUN_A/24" dev "$if_a"
    ip -n "$NS_B" addr add "$TUN_B/24" dev "$if_b"
    ip -n "$NS_A" link set "$if_a" mtu 1420 up
    ip -n "$NS_B" link set "$if_b" mtu 1420 up
    # First packets wait for the handshake.
    local ok=
    for _ in 1 2 3; do
        if ip netns exec "$NS_A" ping -c 3 -W 2 -i 0.2 -q "$TUN_B" >/dev/null; then ok=1; break; fi
    done
    [ -n "$ok" ] || die "$impl: no ping through the tunnel"
}

# --------------------------------------------------------- measurements --
# measure DST: prints "tcp1 tcp4 rtt_avg rtt_max" (Mbit/s, Mbit/s, ms, ms)
# from NS_A to DST in NS_B. Latency first, on the idle path.
measure() {
    local dst=$1 out tcp1 tcp4 rtt
    out=$(ip netns exec "$NS_A" ping -c 50 -i 0.01 -W 2 -q "$dst") || die "ping $dst failed"
    rtt=$(awk -F'/' '/^rtt|^round-trip/ {print $5 " " $6}' <<<"$out")
    ip netns exec "$NS_B" iperf3 -s -D -B "$dst" --pidfile "$WORK/iperf-$NS_B.pid" >/dev/null
    for _ in $(seq 50); do
        ip netns exec "$NS_B" ss -ltn "sport = :5201" | grep -q 5201 && break
        sleep 0.1
    done
    out=$(ip netns exec "$NS_A" timeout $((SECS + 30)) iperf3 -c "$dst" -t "$SECS" -f m) ||
        die "iperf3 single stream to $dst failed"
    tcp1=$(awk '/receiver/ {for (i = 1; i < NF; i++) if ($(i+1) == "Mbits/sec") v = $i} END {print v}' <<<"$out")
    out=$(ip netns exec "$NS_A" timeout $((SECS + 30)) iperf3 -c "$dst" -t "$SECS" -P 4 -f m) ||
        die "iperf3 -P 4 to $dst failed"
    tcp4=$(awk '/SUM.*receiver/ {for (i = 1; i < NF; i++) if ($(i+1) == "Mbits/sec") v = $i} END {print v}' <<<"$out")
    kill "$(cat "$WORK/iperf-$NS_B.pid")" 2>/dev/null || true
    rm -f "$WORK/iperf-$NS_B.pid"
    echo "${tcp1:-0} ${tcp4:-0} ${rtt:-0 0}"
}

declare -A TCP1 TCP4 RTT RTTMAX
record() {
    local name=$1 res
    res=$(measure "$2")
    read -r "TCP1[$name]" "TCP4[$name]" "RTT[$name]" "RTTMAX[$name]" <<<"$res"
    log "$name: tcp-1 ${TCP1[$name]} Mbit/s, tcp-4 ${TCP4[$name]} Mbit/s, rtt avg ${RTT[$name]} ms, max ${RTTMAX[$name]} ms"
}

log "$SECS s per iperf3 run; implementations: ${WANTED[*]}"
underlay_up
record "veth (no tunnel)" "$UNDER_B"
cleanup
for impl in "${WANTED[@]}"; do
    underlay_up
    tunnel_up "$impl"
    record "$impl" "$TUN_B"
    cleanup
done

# --------------------------------------------------------------- report --
echo
printf '%-18s %16s %16s %14s %14s\n' "implementation" "TCP 1 (Mbit/s)" "TCP 4 (Mbit/s)" "RTT avg (ms)" "RTT max (ms)"
for name in "veth (no tunnel)" "${WANTED[@]}"; do
    printf '%-18s %16s %16s %14s %14s\n' "$name" "${TCP1[$name]}" "${TCP4[$name]}" "${RTT[$name]}" "${RTTMAX[$name]}"
done
echo
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
for other in wireguard-go boringtun-cli; do
    [ -n "${TCP1[flowshield]:-}" ] && [ -n "${TCP1[$other]:-}" ] || continue
    printf 'flowshield/%-14s TCP 1: %sx  TCP 4: %sx  RTT: %sx (throughput: higher is better; RTT: lower)\n' \
        "$other" "$(ratio "${TCP1[flowshield]}" "${TCP1[$other]}")" \
        "$(ratio "${TCP4[flowshield]}" "${TCP4[$other]}")" \
        "$(ratio "${RTT[flowshield]}" "${RTT[$other]}")"
done
