#!/usr/bin/env bash
# The README's first command: installs Envoy and Prometheus where missing, builds sluice and
# runs the standalone demo (real Envoy + real Prometheus + demo backends + sluice + web UI).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh --no-browser
# `cargo run` finds the binary wherever the target directory is (CARGO_TARGET_DIR, config).
exec cargo run --release --quiet -- demo "$@"
