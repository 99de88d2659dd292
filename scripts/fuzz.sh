#!/usr/bin/env bash
# Builds and runs every cargo-fuzz target of fuzz/ for SECONDS each (default 60).
#
#   scripts/fuzz.sh [SECONDS]
#
# Seeds come from fuzz/corpus/<target>/ (committed, never written to); new inputs libFuzzer
# finds go to fuzz/target/fuzz-corpus/<target>/ and crashes to fuzz/artifacts/<target>/.
# Needs a nightly toolchain (cargo-fuzz's default AddressSanitizer build); it and cargo-fuzz
# are installed when missing (.ci/install-fuzz). Extra cargo-fuzz options can be given in
# FUZZ_FLAGS (e.g. FUZZ_FLAGS="-s none"). Prints the number of executions per target and fails
# if any target crashed.
set -euo pipefail

seconds="${1:-60}"
case "$seconds" in
    '' | *[!0-9]*) echo "usage: $0 [SECONDS]" >&2; exit 2 ;;
esac

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root/fuzz"

bash "$root/.ci/install-fuzz"

read -r -a flags <<<"${FUZZ_FLAGS:-}"
mapfile -t targets < <(cargo +nightly fuzz list)
if [ "${#targets[@]}" -eq 0 ]; then
    echo "no fuzz targets found" >&2
    exit 1
fi

echo "building ${#targets[@]} targets" >&2
cargo +nightly fuzz build "${flags[@]}"

logs="$root/fuzz/target/fuzz-logs"
mkdir -p "$logs"
failed=()
summary=()
for t in "${targets[@]}"; do
    scratch="$root/fuzz/target/fuzz-corpus/$t"
    seeds="$root/fuzz/corpus/$t"
    mkdir -p "$scratch" "$seeds"
    log="$logs/$t.log"
    echo "== $t (${seconds}s)" >&2
    status=0
    # The first corpus directory receives new inputs; the seed directory is only read.
    cargo +nightly fuzz run "${flags[@]}" "$t" "$scratch" "$seeds" -- \
        -max_total_time="$seconds" -print_final_stats=1 >"$log" 2>&1 || status=$?
    execs="$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\).*/\1/p' "$log" | tail -n 1)"
    if [ -z "$execs" ]; then
        # Fall back on libFuzzer's last status line ("#N DONE ..." or "#N ...").
        execs="$(sed -n 's/^#\([0-9]*\)[[:space:]].*/\1/p' "$log" | tail -n 1)"
    fi
    if [ "$status" -ne 0 ]; then
        failed+=("$t")
        summary+=("$(printf '%-14s FAILED (exit %d) after %s executions; log: %s' \
            "$t" "$status" "${execs:-?}" "$log")")
        grep -E "panicked at|^SUMMARY|Test unit written to|ERROR: libFuzzer" "$log" >&2 || true
    else
        summary+=("$(printf '%-14s %s executions' "$t" "${execs:-?}")")
    fi
done

echo
printf '%s\n' "${summary[@]}"
if [ "${#failed[@]}" -ne 0 ]; then
    echo "crashed: ${failed[*]}" >&2
    exit 1
fi
