#!/usr/bin/env bash
# FlowShield local demo: the whole market in network namespaces on this machine.
#
#              hub: bridge 10.250.0.1/24 — local chain (JSON-RPC :8545), fullnode 0 and 1
#      ┌────────────────┬────────────────┬──────────────────┬──────────────────┐
#   p0 10.250.0.10   p1 10.250.0.11          cl 10.250.0.100      vf 10.250.0.200
#   provider + wg    provider + wg           client + its own     verifier (probes through
#   + probe responder + probe responder      flowshield interface  its own tunnels)
#      └── origin (serves http://198.18.99.1:8080/blob) ──┘
#
# A local chain with the BandwidthMarket deployed, two fullnodes kept in sync by
# gossip, two providers (each with a `flowshield` data plane forwarding to the
# origin) and one client. The client buys bandwidth (order + escrow on chain),
# brings its tunnel up, fetches a file from the origin through it (checksum
# verified), pays with vouchers, disconnects; the chain shows the provider paid
# and the client refunded the rest. Meanwhile a verifier (joined by staking on chain)
# probes both providers through its own tunnels — handshake, RTT, loss,
# throughput — and publishes signed reports to the fullnodes, which check them
# against the chain and update the providers' reputation. Provider p0 serves
# its dashboard; while the session is live the demo takes a headless-Chromium
# screenshot of it into $DEMO_ARTIFACTS (default ./demo-artifacts). Everything
# else is removed on exit, even on failure.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "demo: run as root (network namespaces and TUN devices)" >&2; exit 1; }
bash scripts/setup.sh >/dev/null

# DEMO_PROFILE=debug reuses the test build (faster to build, slower to run).
profile=${DEMO_PROFILE:-release}
artifacts=${DEMO_ARTIFACTS:-$PWD/demo-artifacts}
mkdir -p "$artifacts"
echo "demo: building flowshield, flowshield-market and flowshield-verifier ($profile)"
packages=(-p flowshield-tunnel -p flowshield-market -p flowshield-verifier)
if [ "$profile" = release ]; then
    cargo build --release --locked -q "${packages[@]}"
else
    cargo build --locked -q "${packages[@]}"
fi
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
FS="$target_dir/$profile/flowshield"
FM="$target_dir/$profile/flowshield-market"
FV="$target_dir/$profile/flowshield-verifier"
export FLOWSHIELD_CONTRACTS_DIR="$PWD/contracts"

tag="fsd$$"
HUB="$tag-hub"; CL="$tag-cl"; OR="$tag-or"; VF="$tag-vf"; P=("$tag-p0" "$tag-p1")
work=$(mktemp -d)
pids=()
cleanup() {
    set +e
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null; done
    for ns in "$CL" "$VF" "${P[@]}" "$OR" "$HUB"; do
        ip netns pids "$ns" 2>/dev/null | xargs -r kill 2>/dev/null
    done
    sleep 0.5
    for ns in "$CL" "$VF" "${P[@]}" "$OR" "$HUB"; do
        ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null
        ip netns del "$ns" 2>/dev/null
    done
    rm -f /var/run/wireguard/"${tag}"*.sock
    if [ "${demo_ok:-0}" != 1 ]; then
        echo "demo: FAILED — last log lines:" >&2
        for f in "$work"/*.log; do [ -f "$f" ] && { echo "--- $f" >&2; tail -n 15 "$f" >&2; }; done
    fi
    rm -rf "$work"
}
trap cleanup EXIT
umask 077

# ---- network
for ns in "$HUB" "$CL" "$VF" "$OR" "${P[@]}"; do
    ip netns add "$ns"; ip -n "$ns" link set lo up
done
ip -n "$HUB" link add br0 type bridge
ip -n "$HUB" addr add 10.250.0.1/24 dev br0
ip -n "$HUB" link set br0 up
join_hub() { # ns index cidr
    ip link add "${tag}h$2" netns "$HUB" type veth peer name "${tag}n$2" netns "$1"
    ip -n "$HUB" link set "${tag}h$2" master br0 up
    ip -n "$1" addr add "$3" dev "${tag}n$2"; ip -n "$1" link set "${tag}n$2" up
}
join_hub "$CL" c 10.250.0.100/24
join_hub "$VF" v 10.250.0.200/24
ip -n "$OR" addr add 198.18.99.1/32 dev lo
for i in 0 1; do
    join_hub "${P[$i]}" "$i" "10.250.0.1$i/24"
    ip link add "${tag}o$i" netns "${P[$i]}" type veth peer name "${tag}r$i" netns "$OR"
    ip -n "${P[$i]}" addr add "198.18.2$i.1/24" dev "${tag}o$i"; ip -n "${P[$i]}" link set "${tag}o$i" up
    ip -n "$OR" addr add "198.18.2$i.2/24" dev "${tag}r$i"; ip -n "$OR" link set "${tag}r$i" up
    ip -n "${P[$i]}" route add 198.18.99.1/32 via "198.18.2$i.2"
    ip -n "$OR" route add "10.77.$i.0/24" via "198.18.2$i.1"
    ip netns exec "${P[$i]}" sysctl -qw net.ipv4.ip_forward=1
done

wait_line() { # file prefix timeout → prints the rest of the first matching line
    local deadline=$((SECONDS + $3))
    while [ $SECONDS -lt $deadline ]; do
        if line=$(grep -m1 "^$2" "$1" 2>/dev/null); then echo "${line#"$2"}"; return 0; fi
        sleep 0.1
    done
    echo "demo: timed out waiting for '$2' in $1" >&2; return 1
}
json() { python3 -c "import json,sys; v=json.load(sys.stdin); print(eval(sys.argv[1], {'v': v}))" "$1"; }

# ---- chain
echo "demo: starting the local chain and deploying BandwidthMarket"
ip netns exec "$HUB" "$FM" dev-chain --listen 10.250.0.1:8545 --dir "$work" --keys p0,p1,client --verifiers verifier \
    >"$work/chain.out" 2>"$work/chain.log" & pids+=($!)
chain=$(wait_line "$work/chain.out" "ready " 120)
RPC=$(echo "$chain" | json "v['rpc_url']"); MARKET=$(echo "$chain" | json "v['market_address']")
acct() { echo "$chain" | json "v['accounts']['$1']"; }

# ---- fullnodes (the second bootstraps from the first; gossip keeps them in sync)
fn_addrs=()
for i in 0 1; do
    boot=(); [ $i = 1 ] && boot=(--bootstrap "${fn_addrs[0]}")
    ip netns exec "$HUB" "$FM" fullnode --listen "/ip4/10.250.0.1/tcp/410$i" --http "10.250.0.1:810$i" \
        --db "sqlite://$work/fn$i.db" --identity "$work/fn$i.p2p" "${boot[@]}" \
        --chain-rpc "$RPC" --market "$MARKET" \
        >"$work/fn$i.out" 2>"$work/fn$i.log" & pids+=($!)
    fn_addrs+=("$(wait_line "$work/fn$i.out" "listening /ip4/10.250.0.1/tcp" 30 | sed 's|^|/ip4/10.250.0.1/tcp|')")
    wait_line "$work/fn$i.out" "http " 30 >/dev/null
done
boot_list=$(printf '"%s", ' "${fn_addrs[@]}"); boot_list="[${boot_list%, }]"

# ---- providers (each admits the verifier's key and runs the probe responder)
"$FS" genkey > "$work/verifier.wg"; verifier_pub=$("$FS" pubkey < "$work/verifier.wg")
pubs=()
for i in 0 1; do
    key=$("$FS" genkey); pub=$(echo "$key" | "$FS" pubkey); pubs+=("$pub")
    printf '[Interface]\nPrivateKey = %s\nListenPort = 51820\nAddress = 10.77.%s.1/24\n' "$key" "$i" > "$work/${tag}w$i.conf"
    ip netns exec "${P[$i]}" "$FS" up "$work/${tag}w$i.conf"
    ip netns exec "${P[$i]}" "$FS" set "${tag}w$i" peer "$verifier_pub" allowed-ips "10.77.$i.254/32"
    ip netns exec "${P[$i]}" "$FV" responder --listen "10.77.$i.1:9909" >"$work/resp$i.out" 2>"$work/resp$i.log" & pids+=($!)
    wait_line "$work/resp$i.out" "listening on " 10 >/dev/null
    cat > "$work/p$i.toml" <<EOF
identity_file = "$work/p$i.p2p"
listen = ["/ip4/10.250.0.1$i/tcp/4001"]
bootstrap = $boot_list
heartbeat_secs = 1
interface = "${tag}w$i"
tunnel_subnet = "10.77.$i.0/24"
[offer]
region = "eu-west"
price_per_gib_wei = "$((1 + i))000000000000000000"
price_per_hour_wei = "36000000000000"
capacity_mbps = 100
max_clients = 10
wg_public_key = "$pub"
endpoint = "10.250.0.1$i:51820"
chain_address = "$(acct p$i)"
[chain]
rpc_url = "$RPC"
market_address = "$MARKET"
key_file = "$work/p$i.key"
[session]
client_allowed_ips = ["198.18.99.1/32"]
redeem_threshold_wei = "1000000000000000"
redeem_interval_secs = 5
# Clients' traffic leaves towards the origin (no default route here).
[egress]
uplink = "${tag}o$i"
EOF
    # p0 serves its dashboard inside its namespace; reputation from fullnode 0.
    if [ $i = 0 ]; then
        printf '[dashboard]\nlisten = "127.0.0.1:8090"\nfullnode_url = "http://10.250.0.1:8100"\n' >> "$work/p$i.toml"
    fi
    ip netns exec "${P[$i]}" "$FM" provider --config "$work/p$i.toml" >"$work/p$i.out" 2>"$work/p$i.log" & pids+=($!)
    provider_pid[$i]=$!
done
dashboard=$(wait_line "$work/p0.out" "dashboard " 30)
echo "demo: provider p0's dashboard: $dashboard (inside netns ${P[0]})"
echo "demo: waiting until both fullnodes index both providers"
for i in 0 1; do for a in p0 p1; do
    want=$(acct $a | tr A-F a-f); deadline=$((SECONDS + 60))
    until ip netns exec "$HUB" curl -s "http://10.250.0.1:810$i/v1/providers" | tr A-F a-f | grep -q "$want"; do
        [ $SECONDS -lt $deadline ] || { echo "demo: provider $a never indexed by fullnode $i" >&2; exit 1; }
        sleep 0.2
    done
done; done

# ---- origin
head -c $((16 << 20)) /dev/urandom > "$work/blob"
want=$(sha256sum "$work/blob" | cut -d' ' -f1)
ip netns exec "$OR" python3 -m http.server 8080 --bind 198.18.99.1 --directory "$work" >/dev/null 2>&1 & pids+=($!)

# ---- client
cat > "$work/client.toml" <<EOF
identity_file = "$work/client.p2p"
fullnodes = ["http://10.250.0.1:8100", "http://10.250.0.1:8101"]
bootstrap = $boot_list
interface = "${tag}c"
escrow_wei = "100000000000000000"
region = "eu-west"
voucher_secs = 1
# Waits out its provider's restart (below) instead of failing over.
max_failed_vouchers = 30
state_dir = "$work/client-state"
flowshield_bin = "$FS"
routes = ["198.18.99.1/32"]
[chain]
rpc_url = "$RPC"
market_address = "$MARKET"
key_file = "$work/client.key"
EOF
status() { ip netns exec "$HUB" "$FM" chain-status --rpc "$RPC" --market "$MARKET" --account "$(acct client)" "$@"; }
before=$(status --account "$(acct p0)" --account "$(acct p1)")
echo "demo: client connects (cheapest provider, max 5 ETH/GiB)"
ip netns exec "$CL" "$FM" client connect --config "$work/client.toml" --max-price 5000000000000000000 \
    >"$work/client.out" 2>"$work/client.log" & pids+=($!)
connected=$(wait_line "$work/client.out" '{' 60 | sed 's/^/{/')
echo "  $connected"
order=$(echo "$connected" | json "v['order_id']")
provider_addr=$(echo "$connected" | json "v['provider_chain_address']")
p2f=$(echo "$connected" | json "v['purchase_to_first_packet_ms']")

echo "demo: client fetches http://198.18.99.1:8080/blob (16 MiB) through the tunnel"
read -r got secs < <(ip netns exec "$CL" python3 -c '
import hashlib, time, urllib.request
t = time.monotonic()
data = urllib.request.urlopen("http://198.18.99.1:8080/blob", timeout=60).read()
print(hashlib.sha256(data).hexdigest(), "%.2f" % (time.monotonic() - t))')
[ "$got" = "$want" ] || { echo "demo: FAILED: checksum mismatch" >&2; exit 1; }

# ---- verifier: one round (what the packaged timer runs), while the session is live
cat > "$work/verifier.toml" <<EOF
database = "$work/verifier.db"
fullnodes = ["http://10.250.0.1:8100", "http://10.250.0.1:8101"]
[verifier]
wg_private_key_file = "$work/verifier.wg"
flowshield_bin = "$FS"
interface = "${tag}v"
[probe]
ping_count = 10
transfer_bytes = 4194304
[chain]
rpc_url = "$RPC"
market = "$MARKET"
private_key_file = "$work/verifier.key"
EOF
for i in 0 1; do cat >> "$work/verifier.toml" <<EOF
[[targets]]
name = "p$i"
provider = "$(acct p$i)"
wg_public_key = "${pubs[$i]}"
endpoint = "10.250.0.1$i:51820"
tunnel_address = "10.77.$i.254/32"
probe_address = "10.77.$i.1"
min_throughput_mbps = 20
max_loss_pct = 2
max_rtt_ms = 100
EOF
done
echo "demo: the verifier probes both providers and reports to the fullnodes"
ip netns exec "$VF" "$FV" --log-format json run --once --config "$work/verifier.toml" 2>"$work/verifier.log" \
    || { echo "demo: FAILED: verifier round" >&2; exit 1; }
reports=()   # what fullnode 1 holds on each provider (POSTed to both, also gossiped)
for a in p0 p1; do
    reports+=("$(ip netns exec "$HUB" curl -sf "http://10.250.0.1:8101/v1/reports?provider=$(acct $a)")")
done
sleep 2   # two more vouchers cover the transfer

echo "demo: screenshot of p0's dashboard while the session is live (headless Chromium)"
chromium_run() { # chromium in p0's namespace, fresh profile, offline
    rm -rf "$work/chromium"
    timeout 90 ip netns exec "${P[0]}" chromium --headless --no-sandbox --disable-gpu --disable-quic \
        --no-first-run --disable-background-networking --disable-component-update --disable-sync \
        --user-data-dir="$work/chromium" --hide-scrollbars --force-device-scale-factor=1 \
        --window-size=1280,1200 "$@" 2>>"$work/chromium.log"
}
chromium_run --dump-dom "${dashboard}?refresh=0" > "$work/dashboard.html"
chromium_run --screenshot="$artifacts/dashboard.png" "${dashboard}?refresh=0" >/dev/null
python3 - "$artifacts/dashboard.png" "$work/dashboard.html" "$order" "$(acct client)" <<'PY'
import collections, struct, sys, zlib
png, dom, order, client = open(sys.argv[1], "rb").read(), open(sys.argv[2]).read(), sys.argv[3], sys.argv[4]
assert png[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
width, height, depth, ctype = struct.unpack(">IIBB", png[16:26])
assert (width, height, depth) == (1280, 1200, 8) and ctype in (2, 6), (width, height, depth, ctype)
idat, at = b"", 8
while at < len(png):
    size, kind = struct.unpack(">I4s", png[at:at + 8])
    idat += png[at + 8:at + 8 + size] if kind == b"IDAT" else b""
    at += 12 + size
raw, bpp = zlib.decompress(idat), 3 if ctype == 2 else 4
stride, prev, colours = width * bpp, bytearray(width * bpp), collections.Counter()
for y in range(height):  # undo the PNG row filters
    f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
    for i in range(stride):
        a, b = line[i - bpp] if i >= bpp else 0, prev[i]
        c = prev[i - bpp] if i >= bpp else 0
        if f == 1: line[i] = (line[i] + a) & 255
        elif f == 2: line[i] = (line[i] + b) & 255
        elif f == 3: line[i] = (line[i] + (a + b) // 2) & 255
        elif f == 4:
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
    colours.update(bytes(line[x:x + 3]) for x in range(0, stride, bpp))
    if y == 4:
        header = tuple(line[4 * bpp:4 * bpp + 3])
    prev = line
assert all(abs(v - w) < 8 for v, w in zip(header, (0x14, 0x20, 0x2e))), f"no dark header: {header}"
assert len(colours) > 64 and colours.most_common(1)[0][1] < 0.9 * width * height, "blank screenshot"
assert f'<tr data-order="{order}">' in dom, "the session is not on the dashboard"
assert client.lower() in dom.lower(), "the client is not on the dashboard"
for panel in ("sessions", "traffic", "stake", "earnings", "reputation"):
    assert f'id="{panel}" data-state="ok"' in dom, f"{panel} panel not ok"
print(f"  dashboard screenshot {width}x{height}, {len(colours)} colours, checked: shows order {order} and its client")
PY

# ---- provider restart mid-session: kill -9 the chosen provider's sidecar (its
# data plane stays up) and start it again. It takes the session up from its
# store; the tunnel keeps passing traffic and it goes on taking vouchers.
for i in 0 1; do [ "$(acct p$i | tr A-F a-f)" = "$(echo "$provider_addr" | tr A-F a-f)" ] && pi=$i; done
best_voucher() { # what provider p$pi's store holds as the order's best voucher (wei)
    python3 -c 'import sqlite3, sys
rows = sqlite3.connect(sys.argv[1]).execute("select order_id, best_amount from provider_sessions").fetchall()
print(next((int(b or 0) for o, b in rows if int(o) == int(sys.argv[2])), 0))' "$work/p$pi.sessions.db" "$order"
}
credit_limit=$(wait_line "$work/p$pi.out" "credit limit " 5)
best_before=$(best_voucher)
echo "demo: kill -9 provider p$pi's sidecar mid-session (best voucher stored: $best_before wei), then restart it"
{ kill -9 "${provider_pid[$pi]}"; wait "${provider_pid[$pi]}"; } 2>/dev/null || true   # gone before it restarts
ip netns exec "${P[$pi]}" "$FM" provider --config "$work/p$pi.toml" >"$work/p$pi.2.out" 2>"$work/p$pi.2.log" & pids+=($!)
wait_line "$work/p$pi.2.out" "listening " 60 >/dev/null
grep -q "session resumed" "$work/p$pi.2.log" || { echo "demo: FAILED: p$pi did not resume the session" >&2; exit 1; }
ping_out=$(ip netns exec "$CL" ping -n -c 5 -i 0.2 -W 2 198.18.99.1 || true)
pings=$(echo "$ping_out" | grep -o '[0-9]* received' | cut -d' ' -f1 || true)
[ "${pings:-0}" -gt 0 ] || { echo "demo: FAILED: no ping through the tunnel after the restart" >&2; exit 1; }
deadline=$((SECONDS + 30))
until [ "$(best_voucher)" -gt "$best_before" ]; do
    [ $SECONDS -lt $deadline ] || { echo "demo: FAILED: no voucher taken after the restart" >&2; exit 1; }
    sleep 0.2
done
! grep -q '"failover"' "$work/client.out" || { echo "demo: FAILED: the client failed over" >&2; exit 1; }
best_after=$(best_voucher)
pauses=$(cat "$work/p$pi.log" "$work/p$pi.2.log" | grep -c "forwarding stopped" || true)
export DEMO_RESTART="provider p$pi killed (-9) and restarted mid-session: session resumed from its store, $pings/5 pings to the origin through the tunnel, vouchers went on ($best_before -> $best_after wei), no failover"
credit_eth=$(python3 -c 'import sys; print("%.6f ETH" % (int(sys.argv[1]) / 1e18))' "${credit_limit% wei}")
export DEMO_CREDIT="credit limit in force on p$pi: $credit_limit ($credit_eth) owed past the best voucher (checked every 250 ms against the data plane); forwarding stopped $pauses time(s) this session"

echo "demo: client disconnects (provider redeems the last voucher and settles)"
summary=$(ip netns exec "$CL" "$FM" client disconnect --config "$work/client.toml")
after=$(status --account "$(acct p0)" --account "$(acct p1)" --order "$order")

python3 - "$summary" "$before" "$after" "$(acct client)" "$provider_addr" "$p2f" "$secs" "${reports[@]}" <<'PY'
import json, os, sys
s, before, after = (json.loads(x) for x in sys.argv[1:4])
reports = [json.loads(r) for r in sys.argv[8:10]]
client, provider, p2f, secs = sys.argv[4], sys.argv[5], sys.argv[6], sys.argv[7]
eth = lambda w: "%.6f ETH" % (int(w) / 1e18)
acc = lambda d, a: next(v for k, v in d["accounts"].items() if k.lower() == a.lower())
o = after["order"]
print()
print("== FlowShield demo summary")
print(f"  order {o['id']}: {o['status']}, escrow {eth(o['escrow_wei'])}")
print(f"  fetched 16 MiB through the tunnel in {secs}s, checksum verified; {s['bytes']} bytes on the wire")
print(f"  purchase-to-first-packet: {p2f} ms (target < 2000 ms)")
print(f"  last voucher: {eth(s['voucher_wei'])}; provider paid {eth(s['provider_paid_wei'])}; client refunded {eth(s['client_refunded_wei'])}")
for name, a in (("client", client), ("provider", provider)):
    b, n = int(acc(before, a)["balance_wei"]), int(acc(after, a)["balance_wei"])
    print(f"  {name} {a}: balance {eth(b)} -> {eth(n)} ({'+' if n >= b else '-'}{eth(abs(n - b))}, gas included)")
for i, got in enumerate(reports):
    assert got, f"fullnode 1 holds no report on p{i}"
    m = got[0]["report"].get("metrics", {})
    verdict = "passed" if got[0]["passed"] else "FAILED"
    print(f"  verifier on p{i}: {verdict} — handshake {m['handshake_ms']:.1f} ms, RTT p50 {m['rtt_p50_ms']:.2f} ms, "
          f"loss {m['loss_pct']:.0f}%, {m['throughput_mbps']:.0f} Mbit/s; signed report accepted by the fullnodes")
print(f"  {os.environ['DEMO_CREDIT']}")
print(f"  {os.environ['DEMO_RESTART']}")
assert int(s["provider_paid_wei"]) == int(s["voucher_wei"]), "the provider was not paid exactly the last voucher"
print(f"  after the restart the provider was paid exactly the last voucher ({s['voucher_wei']} wei): nothing lost")
assert o["status"] == "Settled" and int(o["redeemed_wei"]) == int(s["provider_paid_wei"])
assert int(s["provider_paid_wei"]) + int(s["client_refunded_wei"]) == int(o["escrow_wei"])
PY
echo "  dashboard of provider p0: $dashboard (in netns ${P[0]} while the demo runs; JSON at /api/status)"
echo "  dashboard screenshot: $artifacts/dashboard.png"
demo_ok=1
echo
echo "demo: OK"
