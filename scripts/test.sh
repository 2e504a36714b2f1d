#!/usr/bin/env bash
# The README's test command: installs what the tests need (Envoy, Prometheus, Chromium) where
# missing, then runs every test: unit, golden files, real Prometheus/Envoy e2e, browser.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
export RUST_BACKTRACE=1
if command -v cargo-nextest >/dev/null; then
  cargo nextest run --workspace --all-targets --no-fail-fast "$@"
  cargo test --workspace --doc
else
  cargo test --workspace --all-targets --no-fail-fast "$@"
fi
