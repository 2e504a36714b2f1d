#!/usr/bin/env bash
# The README's first command: installs Envoy and Prometheus where missing, builds sluice and
# runs the standalone demo (real Envoy + real Prometheus + demo backends + sluice + web UI).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh --no-browser
# `cargo run` finds the binary wherever the target directory is (CARGO_TARGET_DIR, config).
# A debug build (dependencies are optimised, see Cargo.toml) shares its compiled dependencies
# with scripts/test.sh, so a newcomer running both builds once.
# The demo prints its own progress lines; keep the log to warnings unless asked otherwise.
export RUST_LOG="${RUST_LOG:-warn}"
# The first build compiles every dependency (about ten minutes on a small machine): build in
# the open so cargo's progress shows; on later runs this is one "Finished" line.
echo "building sluice (cargo build; the first build takes a while)..." >&2
cargo build
exec cargo run --quiet -- demo "$@"
