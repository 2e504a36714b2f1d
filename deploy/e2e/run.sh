#!/usr/bin/env bash
# End-to-end flow of the sluice controller on a real cluster: kind (or k3d) + Istio + Bookinfo.
#
# THIS CANNOT RUN ON THE PROJECT'S BUILD MACHINES: they have no container engine and no
# Kubernetes API server. Run it on a workstation with docker, kind (or k3d), istioctl, kubectl
# and helm. The controller tests in crates/sluice-k8s/tests/it/k8s_controller.rs cover the same
# flow against an in-memory API server.
#
# What it checks:
#   1. install Istio (demo profile + Prometheus addon) and Bookinfo with reviews v1 only;
#   2. install sluice (CRD, RBAC, controller) from deploy/ with a locally built image;
#   3. apply the Rollout: reviews-primary, the Services and the VirtualService appear,
#      100% on primary;
#   4. roll out reviews v2 (image change): the VirtualService walks 20% → 50% → promoted,
#      `kubectl get rollout reviews` ends Succeeded;
#   5. roll out a broken version (an echo server answering 500): rolled back,
#      phase Failed, all traffic on primary;
#   6. delete the Rollout: the finalizer puts traffic back and removes sluice's objects; the
#      user's Deployment serves again.
#
# Usage: deploy/e2e/run.sh [kind|k3d]   (env: ISTIO_VERSION, KEEP_CLUSTER=1)
set -euo pipefail

PROVIDER=${1:-kind}
CLUSTER=sluice-e2e
ISTIO_VERSION=${ISTIO_VERSION:-1.24.2}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
IMAGE=sluice:e2e
NS=bookinfo

need() { command -v "$1" >/dev/null || { echo "missing: $1" >&2; exit 2; }; }
for b in docker kubectl istioctl "$PROVIDER"; do need "$b"; done

cleanup() {
  if [[ "${KEEP_CLUSTER:-0}" != 1 ]]; then
    case $PROVIDER in
      kind) kind delete cluster --name "$CLUSTER" ;;
      k3d) k3d cluster delete "$CLUSTER" ;;
    esac
  fi
}
trap cleanup EXIT

# wait_for DESCRIPTION TIMEOUT_SECONDS COMMAND...: polls COMMAND until it succeeds.
wait_for() {
  local what=$1 timeout=$2; shift 2
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS > deadline)); then echo "timed out waiting for: $what" >&2; exit 1; fi
    sleep 3
  done
  echo "ok: $what"
}

phase() { kubectl -n $NS get rollout reviews -o jsonpath='{.status.phase}'; }
canary_weight() {
  kubectl -n $NS get virtualservice reviews \
    -o jsonpath='{.spec.http[-1:].route[?(@.destination.host=="reviews-canary")].weight}'
}

echo "== cluster"
case $PROVIDER in
  kind) kind create cluster --name "$CLUSTER" --wait 120s ;;
  k3d) k3d cluster create "$CLUSTER" --k3s-arg "--disable=traefik@server:0" --wait ;;
  *) echo "provider must be kind or k3d" >&2; exit 2 ;;
esac

echo "== sluice image"
# The users' Containerfile (docs/kubernetes.md "Build the image").
docker build -t "$IMAGE" -f "$ROOT/Containerfile" "$ROOT"
case $PROVIDER in
  kind) kind load docker-image "$IMAGE" --name "$CLUSTER" ;;
  k3d) k3d image import "$IMAGE" -c "$CLUSTER" ;;
esac

echo "== istio $ISTIO_VERSION + prometheus"
istioctl install -y --set profile=demo
kubectl apply -f "https://raw.githubusercontent.com/istio/istio/release-${ISTIO_VERSION%.*}/samples/addons/prometheus.yaml"
wait_for "prometheus" 300 kubectl -n istio-system rollout status deploy/prometheus --timeout=10s

echo "== bookinfo (reviews v1 only)"
kubectl create namespace $NS
kubectl label namespace $NS istio-injection=enabled
BOOKINFO="https://raw.githubusercontent.com/istio/istio/release-${ISTIO_VERSION%.*}/samples/bookinfo/platform/kube/bookinfo.yaml"
need curl
# Everything but reviews v2/v3; reviews-v1 renamed to `reviews`: the Deployment users own.
curl -fsSL "$BOOKINFO" | sed 's/^  name: reviews-v1$/  name: reviews/' > /tmp/bookinfo.yaml
kubectl -n $NS apply -f /tmp/bookinfo.yaml -l 'app!=reviews'
kubectl -n $NS apply -f /tmp/bookinfo.yaml -l 'service=reviews'
kubectl -n $NS apply -f /tmp/bookinfo.yaml -l 'app=reviews,version=v1'
wait_for "reviews ready" 300 kubectl -n $NS rollout status deploy/reviews --timeout=10s

echo "== sluice"
kubectl apply -k "$ROOT/deploy"
kubectl -n sluice-system set image deploy/sluice-controller controller="$IMAGE"
wait_for "controller ready" 180 kubectl -n sluice-system rollout status deploy/sluice-controller --timeout=10s

echo "== load (so the success rate has data)"
kubectl -n $NS run load --image=curlimages/curl --restart=Never -- \
  sh -c 'while true; do curl -s -o /dev/null http://productpage:9080/productpage; sleep 0.1; done'

echo "== rollout: initialization"
kubectl apply -f "$ROOT/deploy/e2e/rollout-reviews.yaml"
wait_for "reviews-primary ready" 180 kubectl -n $NS rollout status deploy/reviews-primary --timeout=10s
wait_for "VirtualService 100% primary" 60 test "$(canary_weight)" = 0
wait_for "phase Idle" 60 test "$(phase)" = Idle

echo "== rollout: v2 promoted"
kubectl -n $NS set image deploy/reviews reviews=docker.io/istio/examples-bookinfo-reviews-v2:1.20.2
wait_for "canary at 20%" 300 test "$(canary_weight)" = 20
wait_for "canary at 50%" 300 test "$(canary_weight)" = 50
wait_for "Succeeded" 600 test "$(phase)" = Succeeded
test "$(canary_weight)" = 0
test "$(kubectl -n $NS get deploy reviews -o jsonpath='{.spec.replicas}')" = 0

echo "== rollout: broken version rolled back"
# A canary that is Ready but answers every request with 500.
kubectl -n $NS patch deploy reviews --type=json -p '[
  {"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": "hashicorp/http-echo:1.0"},
  {"op": "add", "path": "/spec/template/spec/containers/0/args",
   "value": ["-listen=:9080", "-status-code=500", "-text=broken"]}]'
wait_for "Failed" 600 test "$(phase)" = Failed
test "$(canary_weight)" = 0
kubectl -n $NS get events --field-selector involvedObject.name=reviews | grep -q RolledBack

echo "== command via annotation"
kubectl -n $NS annotate rollout reviews sluice.dev/command="retry@$(date +%s)" --overwrite
wait_for "command acknowledged" 60 test -z "$(kubectl -n $NS get rollout reviews -o jsonpath='{.metadata.annotations.sluice\.dev/command}')"

echo "== deletion runs the finalizer"
kubectl -n $NS delete rollout reviews --wait=true --timeout=180s
! kubectl -n $NS get virtualservice reviews 2>/dev/null
! kubectl -n $NS get deploy reviews-primary 2>/dev/null
wait_for "user's Deployment serving" 180 kubectl -n $NS rollout status deploy/reviews --timeout=10s

echo "e2e: all checks passed"
