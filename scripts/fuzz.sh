#!/usr/bin/env bash
# Fuzzes every parser of untrusted input (fuzz/fuzz_targets/) with cargo-fuzz
# (libFuzzer), one target after the other, SECONDS each (default 600), one
# process each. Usage:
#   scripts/fuzz.sh [SECONDS] [TARGET...]   run (all targets if none named)
#   scripts/fuzz.sh seeds                   rewrite the committed seed corpora
# The build lives in FUZZ_TARGET_DIR (default /var/tmp/flowshield-fuzz-target),
# the growing working corpus and crash artifacts under FUZZ_WORK_DIR (default
# /var/tmp/flowshield-fuzz); committed seeds (fuzz/corpus/TARGET) are read only.
# Prints, per target: runs, seconds, crashes; exits non-zero on any crash.
#
# Built without a sanitizer (-s none): the code under test is safe Rust, whose
# bugs are panics, overflows (debug assertions are on) and broken invariants —
# which the targets assert — and the build and runs are several times faster.
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_FUZZ_VERSION=0.13.2
CARGO_FUZZ=/var/tmp/flowshield-tools/cargo-fuzz-$CARGO_FUZZ_VERSION/bin/cargo-fuzz
[ -x "$CARGO_FUZZ" ] || { echo "fuzz: $CARGO_FUZZ missing; run scripts/setup.sh" >&2; exit 1; }
export CARGO_TARGET_DIR=${FUZZ_TARGET_DIR:-/var/tmp/flowshield-fuzz-target}
WORK=${FUZZ_WORK_DIR:-/var/tmp/flowshield-fuzz}
TRIPLE=$(rustc -vV | sed -n 's/^host: //p')
BIN=$CARGO_TARGET_DIR/$TRIPLE/release

echo "fuzz: building the targets (cargo-fuzz $CARGO_FUZZ_VERSION, into $CARGO_TARGET_DIR)"
(cd fuzz && "$CARGO_FUZZ" build -s none)

if [ "${1:-}" = seeds ]; then
    rm -rf fuzz/corpus
    FLOWSHIELD_SEED_DIR="$PWD/fuzz/corpus" "$BIN/gen_seeds" -runs=0 >/dev/null 2>&1
    find fuzz/corpus -type f | sort
    exit 0
fi

SECONDS_EACH=${1:-600}
shift || true
targets=("$@")
if [ ${#targets[@]} = 0 ]; then
    mapfile -t targets < <(cd fuzz && "$CARGO_FUZZ" list | grep -vx gen_seeds)
fi

mkdir -p "$WORK"
status=0
summary=()
for target in "${targets[@]}"; do
    corpus=$WORK/corpus/$target
    artifacts=$WORK/artifacts/$target
    log=$WORK/$target.log
    mkdir -p "$corpus" "$artifacts" "fuzz/corpus/$target"
    echo "fuzz: $target for ${SECONDS_EACH}s"
    # New inputs go to the working corpus (first directory); the committed
    # seeds (second) are only read.
    set +e
    "$BIN/$target" "$corpus" "fuzz/corpus/$target" \
        -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 -max_len=8192 \
        -print_final_stats=1 -artifact_prefix="$artifacts/" >"$log" 2>&1
    rc=$?
    set -e
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    took=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log" | tail -1)
    crashes=$(grep -c "^==[0-9]*== ERROR: libFuzzer" "$log" || true)
    line="$target: runs=${runs:-?} seconds=${took:-?} crashes=$crashes exit=$rc"
    summary+=("$line")
    echo "fuzz: $line"
    if [ "$rc" != 0 ]; then
        status=1
        echo "fuzz: $target failed; artifacts in $artifacts, log $log:" >&2
        grep -A25 "panicked\|ERROR: libFuzzer" "$log" | head -60 >&2
    fi
done
echo "fuzz: summary"
printf '  %s\n' "${summary[@]}"
exit $status
