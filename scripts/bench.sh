#!/usr/bin/env bash
# Benchmarks mpegcoder against ffmpeg as publishers (see BENCHMARKS.md): builds the release
# binaries, runs the bench binary (side-by-side runs, then the concurrency sweep), then the
# criterion micro-benchmarks, and writes report.md and report.json.
#
#   bash scripts/bench.sh                  # everything (about 20 minutes)
#   bash scripts/bench.sh --repeat 3       # extra arguments go to `mpegcoder-bench run`
#   bash scripts/bench.sh --repeat 3 --modes copy,libx264,copy-av
#                                          # also the audio+video copy push (about 6 more
#                                          # minutes with --repeat 3; not in the defaults)
#   BENCH_OUT=/tmp/b bash scripts/bench.sh # output directory (default target/bench)
#   BENCH_CRITERION=0 bash scripts/bench.sh  # skip the criterion benches
#
# Timing figures need a quiet machine: run it with nothing else busy (the report records the
# load average before and after every run).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1; then
  echo "error: cargo not found; install Rust (https://rustup.rs) first" >&2
  exit 1
fi
bash .ci/install-deps

TARGET="${CARGO_TARGET_DIR:-target}"
OUT="${BENCH_OUT:-target/bench}"
echo "== building release binaries" >&2
cargo build --release --locked -p mpegcoder-cli -p mpegcoder-bench

echo "== mpegcoder-bench run (output in $OUT)" >&2
"$TARGET/release/mpegcoder-bench" run --out "$OUT" --mpegcoder "$TARGET/release/mpegcoder" "$@"

if [ "${BENCH_CRITERION:-1}" != 0 ]; then
  echo "== criterion: RTP packetization vs retina, Annex B splitting, FLV tags" >&2
  cargo bench --locked -p mpegcoder-transport --bench packetize --bench flv -- \
    --warm-up-time 1 --measurement-time 3
  "$TARGET/release/mpegcoder-bench" criterion --dir "$TARGET/criterion" --append "$OUT/report.md"
fi
echo "report: $OUT/report.md, $OUT/report.json" >&2
