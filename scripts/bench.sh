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
# Hub scenario (a provider serving many clients): one server namespace with a
# bridge, K client namespaces each with its own tunnel to the server and one
# iperf3 stream, all at once; the sum is reported. Beside every throughput
# the server daemon's CPU use is printed in cores ((utime+stime) / wall time
# over the iperf3 run): throughput per core can be compared too.
#
# Traffic stays inside the two namespaces this script creates; they, the
# daemons and their sockets are removed on exit (also on Ctrl-C).
#
# Environment:
#   BENCH_SECONDS    seconds per iperf3 run (default 10)
#   BENCH_IMPLS      implementations to run (default "flowshield wireguard-go boringtun-cli")
#   BENCH_HUB_PEERS  K, peers in the hub scenario (default 8; 0 skips it)
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
HUB_PEERS=${BENCH_HUB_PEERS:-8}
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
HUB_NS=()
SERVER_PID=

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
    for ns in "${HUB_NS[@]}"; do
        # iperf3 servers of the hub run inside; the namespace goes with them.
        ip netns pids "$ns" 2>/dev/null | xargs -r kill 2>/dev/null || true
        ip netns del "$ns" 2>/dev/null || true
    done
    HUB_NS=()
    SERVER_PID=
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
    LAST_PID=$pid
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
    SERVER_PID=$LAST_PID
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
# cpu_ticks PID: utime+stime of PID in clock ticks (0 if it is gone).
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
HZ=$(getconf CLK_TCK)
# cores T0 T1 START END: CPU ticks T0..T1 over the wall time START..END (s).
cores() { awk -v a="$1" -v b="$2" -v s="$3" -v e="$4" -v hz="$HZ" \
    'BEGIN { if (e > s) printf "%.2f", (b - a) / hz / (e - s); else print "n/a" }'; }
# with_cpu OUT CMD...: runs CMD with stdout to OUT and prints the server
# daemon's CPU use in cores meanwhile ("-" without a daemon).
with_cpu() {
    local out=$1 t0 t1 s e rc=0
    shift
    [ -n "$SERVER_PID" ] && t0=$(cpu_ticks "$SERVER_PID")
    s=$(date +%s.%N)
    "$@" >"$out" || rc=$?
    e=$(date +%s.%N)
    if [ -n "$SERVER_PID" ]; then
        t1=$(cpu_ticks "$SERVER_PID")
        cores "$t0" "$t1" "$s" "$e"
    else
        echo "-"
    fi
    return $rc
}
mbits() { awk -v pat="$1" '$0 ~ pat {for (i = 1; i < NF; i++) if ($(i+1) == "Mbits/sec") v = $i} END {print v + 0}' "$2"; }

# measure DST: prints "tcp1 cpu1 tcp4 cpu4 rtt_avg rtt_max" (Mbit/s, cores,
# Mbit/s, cores, ms, ms) from NS_A to DST in NS_B. Latency first, on the
# idle path.
measure() {
    local dst=$1 out tcp1 tcp4 cpu1 cpu4 rtt
    out=$(ip netns exec "$NS_A" ping -c 50 -i 0.01 -W 2 -q "$dst") || die "ping $dst failed"
    rtt=$(awk -F'/' '/^rtt|^round-trip/ {print $5 " " $6}' <<<"$out")
    ip netns exec "$NS_B" iperf3 -s -D -B "$dst" --pidfile "$WORK/iperf-$NS_B.pid" >/dev/null
    for _ in $(seq 50); do
        ip netns exec "$NS_B" ss -ltn "sport = :5201" | grep -q 5201 && break
        sleep 0.1
    done
    cpu1=$(with_cpu "$WORK/tcp1.txt" ip netns exec "$NS_A" timeout $((SECS + 30)) \
        iperf3 -c "$dst" -t "$SECS" -f m) || die "iperf3 single stream to $dst failed"
    tcp1=$(mbits receiver "$WORK/tcp1.txt")
    cpu4=$(with_cpu "$WORK/tcp4.txt" ip netns exec "$NS_A" timeout $((SECS + 30)) \
        iperf3 -c "$dst" -t "$SECS" -P 4 -f m) || die "iperf3 -P 4 to $dst failed"
    tcp4=$(mbits 'SUM.*receiver' "$WORK/tcp4.txt")
    kill "$(cat "$WORK/iperf-$NS_B.pid")" 2>/dev/null || true
    rm -f "$WORK/iperf-$NS_B.pid"
    echo "${tcp1:-0} $cpu1 ${tcp4:-0} $cpu4 ${rtt:-0 0}"
}

# hub_up IMPL K: server namespace (bridge 198.18.1.1/24, tunnel 10.78.0.1)
# and K clients (198.18.1.(10+i), tunnel 10.78.0.(10+i)), each its own
# daemon and peer of the server.
hub_up() {
    local impl=$1 k=$2 hub="fsbench-$ID-h" if_s="fb${ID}s" i
    HUB_NS+=("$hub")
    ip netns add "$hub"
    ip -n "$hub" link set lo up
    ip -n "$hub" link add br0 type bridge
    ip -n "$hub" addr add 198.18.1.1/24 dev br0
    ip -n "$hub" link set br0 up
    start_daemon "$impl" "$hub" "$if_s"
    SERVER_PID=$LAST_PID
    (umask 077; wg genkey >"$WORK/hub.key")
    local hub_pub
    hub_pub=$(wg pubkey <"$WORK/hub.key")
    wg set "$if_s" private-key "$WORK/hub.key" listen-port $PORT_A
    for i in $(seq 1 "$k"); do
        local ns="fsbench-$ID-c$i" if_c="fb${ID}c$i" pub
        HUB_NS+=("$ns")
        ip netns add "$ns"
        ip -n "$ns" link set lo up
        ip netns exec "$ns" sysctl -q -w net.ipv6.conf.all.disable_ipv6=1
        ip link add "fbh${ID}v$i" netns "$hub" type veth peer name "fbh${ID}u$i" netns "$ns"
        ip -n "$hub" link set "fbh${ID}v$i" master br0 mtu 1500 up
        ip -n "$ns" addr add "198.18.1.$((10 + i))/24" dev "fbh${ID}u$i"
        ip -n "$ns" link set "fbh${ID}u$i" mtu 1500 up
        start_daemon "$impl" "$ns" "$if_c"
        (umask 077; wg genkey >"$WORK/c$i.key")
        pub=$(wg pubkey <"$WORK/c$i.key")
        wg set "$if_c" private-key "$WORK/c$i.key" listen-port $PORT_B \
            peer "$hub_pub" allowed-ips 10.78.0.1/32 endpoint "198.18.1.1:$PORT_A"
        wg set "$if_s" peer "$pub" allowed-ips "10.78.0.$((10 + i))/32"
        ip -n "$ns" addr add "10.78.0.$((10 + i))/24" dev "$if_c"
        ip -n "$ns" link set "$if_c" mtu 1420 up
    done
    ip -n "$hub" addr add 10.78.0.1/24 dev "$if_s"
    ip -n "$hub" link set "$if_s" mtu 1420 up
    for i in $(seq 1 "$k"); do
        local ok=
        for _ in 1 2 3; do
            if ip netns exec "fsbench-$ID-c$i" ping -c 2 -W 2 -i 0.2 -q 10.78.0.1 >/dev/null; then ok=1; break; fi
        done
        [ -n "$ok" ] || die "$impl: no ping from hub client $i"
    done
}

# measure_hub K: prints "sum_mbits cores": K clients, one stream each, at once.
measure_hub() {
    local k=$1 hub="fsbench-$ID-h" i pids=() cpu sum=0
    for i in $(seq 1 "$k"); do
        ip netns exec "$hub" iperf3 -s -D -p $((5400 + i)) >/dev/null
    done
    for _ in $(seq 50); do
        [ "$(ip netns exec "$hub" ss -ltn | grep -c ':54[0-9][0-9] ')" -ge "$k" ] && break
        sleep 0.1
    done
    hub_streams() {
        for i in $(seq 1 "$k"); do
            ip netns exec "fsbench-$ID-c$i" timeout $((SECS + 30)) \
                iperf3 -c 10.78.0.1 -p $((5400 + i)) -t "$SECS" -f m >"$WORK/hub$i.txt" 2>&1 &
            pids+=($!)
        done
        local rc=0 pid
        for pid in "${pids[@]}"; do wait "$pid" || rc=1; done
        return $rc
    }
    cpu=$(with_cpu /dev/null hub_streams) || die "hub iperf3 streams failed"
    for i in $(seq 1 "$k"); do
        sum=$(awk -v a="$sum" -v b="$(mbits receiver "$WORK/hub$i.txt")" 'BEGIN {print a + b}')
    done
    echo "$sum $cpu"
}

declare -A TCP1 TCP4 RTT RTTMAX CPU1 CPU4 HUB CPUH
record() {
    local name=$1 res
    res=$(measure "$2")
    read -r "TCP1[$name]" "CPU1[$name]" "TCP4[$name]" "CPU4[$name]" "RTT[$name]" "RTTMAX[$name]" <<<"$res"
    log "$name: tcp-1 ${TCP1[$name]} Mbit/s (${CPU1[$name]} cores), tcp-4 ${TCP4[$name]} Mbit/s (${CPU4[$name]} cores), rtt avg ${RTT[$name]} ms, max ${RTTMAX[$name]} ms"
}
record_hub() {
    local name=$1 res
    res=$(measure_hub "$HUB_PEERS")
    read -r "HUB[$name]" "CPUH[$name]" <<<"$res"
    log "$name: hub of $HUB_PEERS ${HUB[$name]} Mbit/s (${CPUH[$name]} cores)"
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
    if [ "$HUB_PEERS" -gt 0 ]; then
        hub_up "$impl" "$HUB_PEERS"
        record_hub "$impl"
        cleanup
    fi
done

# --------------------------------------------------------------- report --
echo
echo "Mbit/s (server daemon CPU in cores); hub: $HUB_PEERS peers, one stream each, at once"
printf '%-18s %20s %20s %20s %13s %13s\n' "implementation" "TCP 1" "TCP 4" "hub $HUB_PEERS" "RTT avg (ms)" "RTT max (ms)"
for name in "veth (no tunnel)" "${WANTED[@]}"; do
    printf '%-18s %20s %20s %20s %13s %13s\n' "$name" "${TCP1[$name]} (${CPU1[$name]})" \
        "${TCP4[$name]} (${CPU4[$name]})" "${HUB[$name]:--} (${CPUH[$name]:--})" "${RTT[$name]}" "${RTTMAX[$name]}"
done
echo
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }
for other in wireguard-go boringtun-cli; do
    [ -n "${TCP1[flowshield]:-}" ] && [ -n "${TCP1[$other]:-}" ] || continue
    printf 'flowshield/%-14s TCP 1: %sx  TCP 4: %sx  hub: %sx  RTT: %sx (throughput: higher is better; RTT: lower)\n' \
        "$other" "$(ratio "${TCP1[flowshield]}" "${TCP1[$other]}")" \
        "$(ratio "${TCP4[flowshield]}" "${TCP4[$other]}")" \
        "$(ratio "${HUB[flowshield]:-0}" "${HUB[$other]:-0}")" \
        "$(ratio "${RTT[flowshield]}" "${RTT[$other]}")"
done
