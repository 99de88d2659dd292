#!/usr/bin/env bash
# Runs every check and test of the project: formatting, clippy, unit/property tests, the
# protocol tests against real servers on loopback, and a short run of every fuzz target.
# Installs the system packages it needs first (Debian/Ubuntu; uses sudo when not root).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1; then
  echo "error: cargo not found; install Rust (https://rustup.rs) first" >&2
  exit 1
fi
bash .ci/install-deps

echo "== cargo fmt --check"
cargo fmt --all --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo test"
cargo test --workspace --locked
# The Python package: `pip install ./python` into a venv under target/, then
# `pytest python/tests` (scripts/python-test.sh does both).
echo "== python package: pip install ./python, pytest python/tests"
bash scripts/python-test.sh
if [ -f fuzz/Cargo.toml ]; then
  # A smoke run of every fuzz target from its seed corpus (FUZZ_SECONDS each, default 15);
  # scripts/fuzz.sh with a longer time is the real campaign. The lock file must be current.
  echo "== fuzz smoke run"
  cargo metadata --manifest-path fuzz/Cargo.toml --locked --format-version 1 >/dev/null
  bash scripts/fuzz.sh "${FUZZ_SECONDS:-15}"
fi
echo "all checks passed"
