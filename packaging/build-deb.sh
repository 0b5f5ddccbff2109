#!/usr/bin/env bash
# Builds the provider package: the release binaries, their man pages
# (help2man, from each binary's --help, so they cannot drift from the code),
# then `cargo deb --no-build`. Prints the .deb's path on the last line.
# Needs cargo-deb and help2man: scripts/setup.sh installs both.
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO=${CARGO:-cargo}
CARGO_DEB=${CARGO_DEB:-/var/tmp/flowshield-tools/cargo-deb-3.8.0/bin/cargo-deb}
die() { echo "build-deb: $*" >&2; exit 1; }
[ -x "$CARGO_DEB" ] || die "cargo-deb not found at $CARGO_DEB (run scripts/setup.sh, or set CARGO_DEB)"
for tool in help2man gzip dpkg-parsechangelog python3; do
    command -v "$tool" >/dev/null || die "$tool not found (run scripts/setup.sh)"
done

"$CARGO" build --release --locked --bins \
    -p flowshield-tunnel -p flowshield-market -p flowshield-verifier -p flowshield-ca >&2

target_dir=$("$CARGO" metadata --format-version 1 --no-deps --locked |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
release="$target_dir/release"
version=$("$CARGO" metadata --format-version 1 --no-deps --locked |
    python3 -c 'import json, sys; print(next(p["version"] for p in json.load(sys.stdin)["packages"] if p["name"] == "flowshield-packaging"))')
# Man pages dated by the changelog, not the build: the same tree gives the
# same package.
SOURCE_DATE_EPOCH=$(dpkg-parsechangelog -l packaging/debian/changelog -S Timestamp)
export SOURCE_DATE_EPOCH

# Roff text of one subcommand's --help (no-fill, escaped), and of its own
# subcommands, for help2man's [COMMANDS] section.
subcommand_pages() {
    local help name
    help=$("$@" --help)
    for name in $(printf '%s\n' "$help" | awk '/^Commands:/ {on = 1; next} on && /^$/ {exit} on {print $1}'); do
        [ "$name" = help ] && continue
        local sub=("$@" "$name")
        printf '.SS "%s"\n.nf\n' "${sub[*]#"$release"/}"
        "${sub[@]}" --help | sed -e 's/\\/\\e/g' -e "s/^\\([.']\\)/\\\\\\&\\1/"
        printf '.fi\n'
        subcommand_pages "${sub[@]}"
    done
}

mkdir -p "$release/man"
rm -f "$release"/man/*.1.gz
while IFS='|' read -r bin summary; do
    include=$(mktemp)
    {
        echo "[COMMANDS]"
        subcommand_pages "$release/$bin"
        echo "[SEE ALSO]"
        echo "flowshield(1), flowshieldd(1), flowshield-market(1), flowshield-verifier(1), flowshield-ca(1),"
        echo "/usr/share/doc/flowshield/README.Debian"
    } >"$include"
    help2man --no-info --no-discard-stderr --section 1 --version-string "$version" \
        --name "$summary" --include "$include" "$release/$bin" |
        gzip -9n >"$release/man/$bin.1.gz"
    rm -f "$include"
done <<'PAGES'
flowshield|FlowShield userspace WireGuard data plane and wg-like command line
flowshieldd|FlowShield userspace WireGuard daemon, a drop-in for wireguard-go (wg-quick)
flowshield-market|FlowShield bandwidth market sidecar (fullnode, provider, client)
flowshield-verifier|probe FlowShield providers and report on their quality
flowshield-ca|FlowShield decentralized certificate authority (DeCA)
PAGES

"$CARGO_DEB" -p flowshield-packaging --no-build --strip --output "$target_dir/debian/" >&2
deb="$target_dir/debian/flowshield_${version}-1_$(dpkg --print-architecture).deb"
[ -f "$deb" ] || die "cargo-deb did not write $deb"
echo "$deb"
