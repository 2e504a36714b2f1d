#!/usr/bin/env bash
# The crate boundaries of docs/architecture.md, checked: which crate may depend on which.
# Fails (exit 1) with the offending path when a crate pulls in something it must not.
set -euo pipefail
cd "$(dirname "$0")/.."
fail=0

# forbid CRATE FEATURES PATTERN WHY: `cargo tree -p CRATE` (normal dependencies only) must not
# contain a package matching PATTERN.
forbid() {
  local crate=$1 features=$2 pattern=$3 why=$4 tree
  tree=$(cargo tree -q -p "$crate" $features -e normal --prefix none --format '{p}' | sed 's/ (\*)$//' | sort -u)
  if grep -Eq "$pattern" <<<"$tree"; then
    echo "error: $crate depends on $(grep -E "$pattern" <<<"$tree" | tr '\n' ' ')— $why" >&2
    cargo tree -q -p "$crate" $features -e normal -i "$(grep -Eo "$pattern" <<<"$tree" | head -1 | awk '{print $1}')" >&2 || true
    fail=1
  fi
}

# The core decides; it talks to nothing. Without the `crd` feature it needs no Kubernetes types.
forbid sluice-core "--no-default-features" '^(kube|kube-client|kube-core|kube-runtime|k8s-openapi|axum|reqwest|hyper|redb|tower) ' \
  "sluice-core must build without a Kubernetes client, an HTTP stack or a store"
forbid sluice-core "--features crd" '^(kube-client|kube-runtime|axum|reqwest|hyper|redb) ' \
  "sluice-core with crd may use kube's derive only"
# Telemetry is a leaf over the core: no notifications, no adapters.
forbid sluice-telemetry "" '^(sluice-notify|sluice-analysis|sluice-envoy|sluice-k8s|sluice-api|sluice-standalone|reqwest|axum) ' \
  "sluice-telemetry is the metrics leaf; notify and webhooks build on it, never the reverse"
# Adapters do not reach into each other (the standalone mode is the one assembly of several).
forbid sluice-analysis "" '^(sluice-envoy|sluice-k8s|sluice-api|sluice-standalone|sluice-notify|kube|axum|redb) ' \
  "sluice-analysis is one adapter: it depends on the core only"
forbid sluice-envoy "" '^(sluice-analysis|sluice-k8s|sluice-api|sluice-standalone|sluice-notify|kube|axum|redb) ' \
  "sluice-envoy is one adapter: it depends on the core only"
forbid sluice-k8s "" '^(sluice-analysis|sluice-envoy|sluice-api|sluice-standalone|sluice-lab|axum|clap|redb) ' \
  "sluice-k8s is the controller: the binary joins it with the web API and owns the flags"
forbid sluice-api "" '^(sluice-analysis|sluice-envoy|sluice-k8s|sluice-standalone|sluice-notify|kube|redb|clap) ' \
  "sluice-api serves a Backend, whatever the mode"
# No product crate depends on the demo/bench code or the test doubles.
for c in sluice-core sluice-telemetry sluice-notify sluice-analysis sluice-envoy sluice-k8s sluice-api sluice-standalone; do
  forbid "$c" "" '^(sluice-lab|sluice-testkit|clap) ' "product crates do not depend on the lab, the testkit or clap"
done
# The testkit is a dev-dependency only.
forbid sluice "" '^sluice-testkit ' "the binary must not depend on the testkit (dev-dependency only)"

[ "$fail" = 0 ] && echo "crate boundaries ok"
exit "$fail"
