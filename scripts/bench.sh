#!/usr/bin/env bash
# Benchmarks mpegcoder against ffmpeg as publishers (see BENCHMARKS.md): builds the release
# binaries, runs the bench binary (side-by-side runs, the round-2 measurements — reconnect
# recovery, fan-out, relay latency, RTMPS against RTMP — then the concurrency sweep), then the
# criterion micro-benchmarks, and writes report.md and report.json.
#
#   bash scripts/bench.sh                  # everything (about 60 minutes: the scale
#                                          # comparison alone took 10 minutes)
#   bash scripts/bench.sh --quick          # a short pass of every kind of figure (under 5
#                                          # minutes once built): 10 s clips, one run each,
#                                          # copy mode, 3 restarts per protocol, no sweep,
#                                          # no scale comparison,
#                                          # no criterion
#   bash scripts/bench.sh --repeat 3       # extra arguments go to `mpegcoder-bench run`
#   bash scripts/bench.sh --repeat 3 --modes copy,libx264,copy-av
#                                          # also the audio+video copy push (about 6 more
#                                          # minutes with --repeat 3; not in the defaults)
#   bash scripts/bench.sh --python --repeat 3
#                                          # only mpegCoder's two example scripts, run with
#                                          # the Python package, against `mpegcoder push`
#                                          # (about 10 minutes): makes a virtual environment in
#                                          # target/bench-python-venv (BENCH_PYTHON_VENV), the
#                                          # package built in release mode; further arguments
#                                          # go to `mpegcoder-bench python`; report in
#                                          # $BENCH_OUT/python/
#   BENCH_OUT=/tmp/b bash scripts/bench.sh # output directory (default target/bench)
#   BENCH_CRITERION=0 bash scripts/bench.sh  # skip the criterion benches
#   BENCH_ROUND2=0 bash scripts/bench.sh     # skip reconnect, fan-out, relay and RTMPS
#
# With --quick, further arguments are added after the quick ones (a list option such as
# --modes given again adds to the list).
#
# Timing figures need a quiet machine: run it with nothing else busy (the report records the
# load average before and after every run).
set -euo pipefail
cd "$(dirname "$0")/.."

QUICK=0
PYTHON_ONLY=0
ARGS=()
for a in "$@"; do
  case "$a" in
    --quick) QUICK=1 ;;
    --python) PYTHON_ONLY=1 ;;
    *) ARGS+=("$a") ;;
  esac
done

if ! command -v cargo >/dev/null 2>&1; then
  echo "error: cargo not found; install Rust (https://rustup.rs) first" >&2
  exit 1
fi
bash .ci/install-deps

TARGET="${CARGO_TARGET_DIR:-target}"
OUT="${BENCH_OUT:-target/bench}"
CRITERION="${BENCH_CRITERION:-1}"
RUN=()
if [ "$QUICK" = 1 ]; then
  CRITERION=0
  RUN=(--seconds 10 --repeat 1 --skip-concurrency --protos rtsp-tcp,rtmp
       --modes copy,reconnect,fanout,relay
       --reconnect-protos rtsp-tcp,rtsp-udp,rtmp --reconnect-codecs copy --reconnect-cycles 3
       --fanout-protos rtmp --relay-protos rtmp --skip-scale)
elif [ "${BENCH_ROUND2:-1}" != 0 ]; then
  RUN=(--round2)
fi
start=$(date +%s)
echo "== building release binaries" >&2
cargo build --release --locked -p mpegcoder-cli -p mpegcoder-bench

if [ "$PYTHON_ONLY" = 1 ]; then
  VENV="${BENCH_PYTHON_VENV:-$TARGET/bench-python-venv}"
  if [ ! -x "$VENV/bin/python" ]; then
    "${PYTHON:-python3}" -m venv "$VENV"
  fi
  VENV="$(cd "$VENV" && pwd)"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check maturin==1.9.6 numpy==2.3.5
  echo "== pip install ./python into $VENV (release build)" >&2
  # pip's build of the package is a release build unless MATURIN_PEP517_ARGS says otherwise.
  env -u MATURIN_PEP517_ARGS PATH="$VENV/bin:$PATH" "$VENV/bin/pip" install -q \
    --disable-pip-version-check --force-reinstall --no-deps --no-build-isolation ./python
  echo "== mpegcoder-bench python (output in $OUT/python)" >&2
  "$TARGET/release/mpegcoder-bench" python --out "$OUT" --python "$VENV/bin/python" \
    --mpegcoder "$TARGET/release/mpegcoder" ${ARGS[@]+"${ARGS[@]}"}
  echo "report: $OUT/python/report.md, $OUT/python/report.json ($(( $(date +%s) - start )) s)" >&2
  exit 0
fi

echo "== mpegcoder-bench run (output in $OUT)" >&2
"$TARGET/release/mpegcoder-bench" run --out "$OUT" --mpegcoder "$TARGET/release/mpegcoder" \
  ${RUN[@]+"${RUN[@]}"} ${ARGS[@]+"${ARGS[@]}"}

if [ "$CRITERION" != 0 ]; then
  echo "== criterion: RTP packetization vs retina, Annex B splitting, FLV tags" >&2
  cargo bench --locked -p mpegcoder-transport --bench packetize --bench flv -- \
    --warm-up-time 1 --measurement-time 3
  "$TARGET/release/mpegcoder-bench" criterion --dir "$TARGET/criterion" --append "$OUT/report.md"
fi
echo "report: $OUT/report.md, $OUT/report.json ($(( $(date +%s) - start )) s)" >&2
