#!/usr/bin/env bash
# Runs every check and test of the project: formatting, clippy, unit/property tests, the
# protocol tests against real servers on loopback, and the fuzz target's build.
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
if [ -f fuzz/Cargo.toml ]; then
  echo "== fuzz targets build"
  cargo build --manifest-path fuzz/Cargo.toml --locked
fi
echo "all checks passed"
