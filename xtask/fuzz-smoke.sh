#!/usr/bin/env bash
# Short fuzz smoke run of every target of one cargo-fuzz crate, one at a time.
# Usage: fuzz-smoke.sh FUZZ_DIR [seconds-per-target]   (default 20)
# Needs the nightly toolchain; installs cargo-fuzz if it is missing.
# New inputs go to a throwaway corpus so the checked-in seeds stay as they are;
# a crash leaves its reproducer in fuzz/artifacts/<target>/ and fails the run.
set -euo pipefail

here="$(cd "${1:?usage: fuzz-smoke.sh FUZZ_DIR [SECS]}" && pwd)"
secs="${2:-20}"
cd "$here"

if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

mapfile -t targets < <(cargo +nightly fuzz list)
cargo +nightly fuzz build -O >/dev/null
for t in "${targets[@]}"; do
    mkdir -p "$work/$t"
    echo "== fuzz smoke: $t for ${secs}s"
    set +e
    cargo +nightly fuzz run -O "$t" "$work/$t" "corpus/$t" -- \
        -max_total_time="$secs" -print_final_stats=1 >"$work/$t.log" 2>&1
    rc=$?
    set -e
    grep -E '^(stat::number_of_executed_units|stat::average_exec_per_sec|Done )' "$work/$t.log" || true
    if [ "$rc" -ne 0 ]; then
        tail -n 60 "$work/$t.log" >&2
        echo "fuzz smoke: $t FAILED (reproducer in $here/artifacts/$t)" >&2
        exit 1
    fi
done
echo "fuzz smoke: all ${#targets[@]} targets of $here passed"
