#!/usr/bin/env bash
# Builds the Python package (python/, PyO3 + maturin) the way a user installs it,
# `pip install ./python`, into a virtual environment under target/, then runs its pytest suite
# (unit tests of every method, mpegCoder's two example scripts against GStreamer's RTSP server,
# a pull from nginx-rtmp). Needs the system packages of .ci/install-deps.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=target/python-venv
PY=${PYTHON:-python3}
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
export PATH="$PWD/$VENV/bin:$PATH"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -r python/requirements-test.txt
# A dev build: it shares the artifacts of `cargo test` (a user's `pip install ./python` builds
# with optimisations).
export MATURIN_PEP517_ARGS="${MATURIN_PEP517_ARGS:---profile dev}"
echo "== pip install ./python"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check --force-reinstall --no-deps --no-build-isolation ./python
echo "== pytest python/tests"
"$VENV/bin/python" -m pytest -q python/tests "$@"
