#!/usr/bin/env bash
# Build-loop figures for docs/architecture.md: a clean build of every test target, a full test
# run, then an incremental rebuild + test run after touching one line in the engine and one in
# the API; with CORE_PKG set (e.g. sluice-core), also the engine-only loop
# (`cargo test -p $CORE_PKG` after touching the engine).
# Usage: scripts/measure-build.sh ENGINE_FILE API_FILE [TARGET_DIR]
# Prints "<what> <seconds> <ok|failed>" per measurement. Run it on an otherwise idle machine.
set -euo pipefail
cd "$(dirname "$0")/.."
engine=$1 api=$2
export CARGO_TARGET_DIR=${3:-$(mktemp -d /tmp/sluice-measure.XXXX)}
export CARGO_TERM_COLOR=never
secs() {
  local s e st=ok
  s=$(date +%s.%N)
  "$@" >/dev/null 2>&1 || st=failed
  e=$(date +%s.%N)
  echo "$(echo "$e - $s" | bc) $st"
}
# A comment line at the end of the file: the crate recompiles as for any one-line edit.
touch_line() { echo "// measure-build: $(date +%s%N)" >>"$1"; }
restore() { git checkout -- "$engine" "$api"; }
trap restore EXIT
cargo fetch --quiet
echo "clean-build $(secs cargo nextest run --workspace --all-targets --no-run)"
echo "full-test-run $(secs cargo nextest run --workspace --all-targets --no-fail-fast)"
for f in "$engine" "$api"; do
  touch_line "$f"
  echo "rebuild-after:$f $(secs cargo nextest run --workspace --all-targets --no-run)"
  echo "test-run-after:$f $(secs cargo nextest run --workspace --all-targets --no-fail-fast)"
  restore
done
if [ -n "${CORE_PKG:-}" ]; then
  cargo test -p "$CORE_PKG" --no-run --quiet >/dev/null 2>&1 # warm: the core's own feature set
  touch_line "$engine"
  echo "core-loop-after:$engine $(secs cargo test -p "$CORE_PKG")"
  restore
fi
