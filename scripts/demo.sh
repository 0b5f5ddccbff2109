#!/usr/bin/env bash
# FlowShield local demo. Builds and runs everything in network namespaces on
# this machine: a "client" host and a "provider" host joined by a veth link,
# and an "origin" web server reachable only behind the provider. The client
# brings up a FlowShield tunnel to the provider (`flowshield up`), fetches a
# file from the origin through it, and the summary shows what crossed the
# tunnel. Everything is removed on exit, even on failure.
#
# The market parts (chain, fullnodes, payment, verifier) join this demo as
# their issues land; this is the data-plane core they build on.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "demo: run as root (network namespaces and TUN devices)" >&2; exit 1; }
bash scripts/setup.sh >/dev/null

echo "demo: building flowshield (release)"
cargo build --release --locked -p flowshield-tunnel -q
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
FS="$target_dir/release/flowshield"

tag="fsd$$"
CL="$tag-cl"; PR="$tag-pr"; OR="$tag-or"
work=$(mktemp -d)
cleanup() {
    set +e
    for ns in "$CL" "$PR" "$OR"; do
        ip netns pids "$ns" 2>/dev/null | xargs -r kill 2>/dev/null
        ip netns del "$ns" 2>/dev/null
    done
    rm -f "/var/run/wireguard/${tag}c.sock" "/var/run/wireguard/${tag}p.sock"
    rm -rf "$work"
}
trap cleanup EXIT

for ns in "$CL" "$PR" "$OR"; do ip netns add "$ns"; ip -n "$ns" link set lo up; done
# client <-> provider underlay, provider <-> origin LAN
ip link add "${tag}a" type veth peer name "${tag}b"
ip link set "${tag}a" netns "$CL"; ip link set "${tag}b" netns "$PR"
ip -n "$CL" addr add 198.18.10.2/24 dev "${tag}a"; ip -n "$CL" link set "${tag}a" up
ip -n "$PR" addr add 198.18.10.1/24 dev "${tag}b"; ip -n "$PR" link set "${tag}b" up
ip link add "${tag}c" type veth peer name "${tag}d"
ip link set "${tag}c" netns "$PR"; ip link set "${tag}d" netns "$OR"
ip -n "$PR" addr add 198.18.20.1/24 dev "${tag}c"; ip -n "$PR" link set "${tag}c" up
ip -n "$OR" addr add 198.18.20.2/24 dev "${tag}d"; ip -n "$OR" link set "${tag}d" up
ip -n "$OR" route add 10.99.0.0/24 via 198.18.20.1
ip netns exec "$PR" sysctl -qw net.ipv4.ip_forward=1

ck=$("$FS" genkey); pk=$("$FS" genkey)
cpub=$(echo "$ck" | "$FS" pubkey); ppub=$(echo "$pk" | "$FS" pubkey)
umask 077
cat > "$work/${tag}p.conf" <<CONF
[Interface]
PrivateKey = $pk
ListenPort = 51820
Address = 10.99.0.1/24
[Peer]
PublicKey = $cpub
AllowedIPs = 10.99.0.2/32
CONF
cat > "$work/${tag}c.conf" <<CONF
[Interface]
PrivateKey = $ck
Address = 10.99.0.2/24
[Peer]
PublicKey = $ppub
AllowedIPs = 10.99.0.0/24, 198.18.20.0/24
Endpoint = 198.18.10.1:51820
PersistentKeepalive = 25
CONF
ip netns exec "$PR" "$FS" up "$work/${tag}p.conf"
ip netns exec "$CL" "$FS" up "$work/${tag}c.conf"

# The origin serves 8 MiB of random data.
head -c $((8 << 20)) /dev/urandom > "$work/blob"
want=$(sha256sum "$work/blob" | cut -d' ' -f1)
ip netns exec "$OR" python3 -m http.server 8080 --bind 198.18.20.2 --directory "$work" >/dev/null 2>&1 &
ip netns exec "$OR" python3 - <<'PY'
import socket, time
deadline = time.time() + 10
while time.time() < deadline:
    try:
        socket.create_connection(("198.18.20.2", 8080), timeout=0.5).close(); break
    except OSError:
        time.sleep(0.05)
PY

echo "demo: client fetches http://198.18.20.2:8080/blob through the tunnel"
read -r got secs < <(ip netns exec "$CL" python3 -c '
import hashlib, time, urllib.request
t = time.monotonic()
data = urllib.request.urlopen("http://198.18.20.2:8080/blob", timeout=30).read()
print(hashlib.sha256(data).hexdigest(), "%.2f" % (time.monotonic() - t))')
[ "$got" = "$want" ] || { echo "demo: FAILED: checksum mismatch" >&2; exit 1; }

echo
echo "== client view (flowshield show)"
ip netns exec "$CL" "$FS" show "${tag}c"
echo
echo "== provider view (the real wg show, over FlowShield's UAPI socket)"
ip netns exec "$PR" wg show "${tag}p"
echo
echo "demo: OK — 8 MiB fetched through the tunnel in ${secs}s, checksum verified"
ip netns exec "$CL" "$FS" down "$work/${tag}c.conf" 2>/dev/null
ip netns exec "$PR" "$FS" down "$work/${tag}p.conf" 2>/dev/null
