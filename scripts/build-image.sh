#!/usr/bin/env bash
# Builds the sluice container image from a locally built `sluice` binary, pulling nothing:
# `FROM scratch` + the binary as /sluice + exactly the shared libraries `ldd` lists (and the
# dynamic loader) + /etc/ssl/certs/ca-certificates.crt + /etc/passwd and /etc/group with the
# non-root user 65532 (`nonroot`) + a minimal /etc/nsswitch.conf. Same layout, user and
# entrypoint as the multi-stage Containerfile at the repository root, which is what users
# build where base images can be pulled (this machine cannot pull any).
#
# Usage: scripts/build-image.sh [--release | --debug | --binary PATH] [--tag IMAGE]
#   --release      (default) cargo build --release --locked -p sluice, then use that binary
#   --debug        cargo build --locked -p sluice (the debug binary: faster to build, larger)
#   --binary PATH  use this binary as it is, build nothing
#   --tag IMAGE    default: ghcr.io/sluice-dev/sluice:<version the binary reports>, the name
#                  deploy/ and the Helm chart use
# Installs podman, buildah, crun and fuse-overlayfs with apt when podman is missing. Needs root
# (or sudo) for that and for rootful podman. Prints the image name on stdout when done.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
REPOSITORY=ghcr.io/sluice-dev/sluice
NONROOT_UID=65532

die() { echo "build-image: $*" >&2; exit 2; }

profile=release bin="" tag=""
while [ $# -gt 0 ]; do
  case $1 in
    --release) profile=release ;;
    --debug) profile=debug ;;
    --binary) [ $# -ge 2 ] || die "--binary needs a path"; bin=$2; profile=given; shift ;;
    --tag) [ $# -ge 2 ] || die "--tag needs an image name"; tag=$2; shift ;;
    -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
  shift
done

SUDO=""
if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null; then SUDO=sudo; fi

# --- podman, only when missing (Debian packages; see ../shared/MACHINE_NOTES.md "Containers")
if ! command -v podman >/dev/null; then
  command -v apt-get >/dev/null || die "podman is missing and this is not a Debian-like system: install podman"
  echo "installing podman buildah crun fuse-overlayfs (apt)..." >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    podman buildah crun fuse-overlayfs >/dev/null
  command -v podman >/dev/null || die "apt did not install podman"
fi

# --- the binary
if [ "$profile" != given ]; then
  cd "$ROOT"
  if [ "$profile" = release ]; then
    cargo build --release --locked -p sluice >&2
  else
    cargo build --locked -p sluice >&2
  fi
  target_dir=$(cargo metadata --no-deps --format-version 1 |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
  bin=$target_dir/$profile/sluice
fi
[ -f "$bin" ] || die "no binary at $bin"
[ -x "$bin" ] || die "$bin is not executable"
version=$("$bin" --version) || die "$bin --version failed: is it a sluice binary for this machine?"
[[ $version =~ ^sluice\ ([0-9][0-9A-Za-z.+-]*)$ ]] || die "$bin --version printed '$version', expected 'sluice X.Y.Z'"
tag=${tag:-$REPOSITORY:${BASH_REMATCH[1]}}

CA=/etc/ssl/certs/ca-certificates.crt
[ -s "$CA" ] || die "$CA is missing: apt-get install ca-certificates"

# --- the root filesystem
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
rootfs=$ctx/rootfs
mkdir -p "$rootfs/etc/ssl/certs"
cp "$bin" "$rootfs/sluice"
chmod 0755 "$rootfs/sluice"

# ldd lines: "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)", "/lib64/ld-linux-x86-64.so.2
# (0x...)", "linux-vdso.so.1 (0x...)" (in the kernel, no file), "not a dynamic executable"
# (static: nothing to copy). Each file is copied (symlinks resolved) to the same path, where
# the loader looks for it.
if ldd_out=$(ldd "$bin" 2>&1); then
  if grep -q 'not found' <<<"$ldd_out"; then
    die "$bin needs libraries this machine lacks:"$'\n'"$ldd_out"
  fi
  libs=$(awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' <<<"$ldd_out" | sort -u)
  [ -n "$libs" ] || die "ldd listed no library files for $bin:"$'\n'"$ldd_out"
  for lib in $libs; do
    cp -L --parents "$lib" "$rootfs/"
  done
elif grep -q 'not a dynamic executable\|statically linked' <<<"$ldd_out"; then
  libs=""
else
  die "ldd $bin failed: $ldd_out"
fi

cp -L "$CA" "$rootfs$CA"
printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:%s:%s:nonroot:/home/nonroot:/sbin/nologin\n' \
  "$NONROOT_UID" "$NONROOT_UID" > "$rootfs/etc/passwd"
printf 'root:x:0:\nnonroot:x:%s:\n' "$NONROOT_UID" > "$rootfs/etc/group"
# glibc resolves names through NSS; without this file it tries DNS before /etc/hosts.
echo 'hosts: files dns' > "$rootfs/etc/nsswitch.conf"
mkdir -p "$rootfs/home/nonroot"

cat > "$ctx/Containerfile" <<EOF
FROM scratch
COPY rootfs/ /
USER $NONROOT_UID:$NONROOT_UID
ENTRYPOINT ["/sluice"]
LABEL org.opencontainers.image.title="sluice" \\
      org.opencontainers.image.version="${BASH_REMATCH[1]}" \\
      org.opencontainers.image.source="https://github.com/sluice-dev/sluice" \\
      dev.sluice.build="scripts/build-image.sh from $(basename "$(dirname "$bin")")/sluice (scratch + ldd)"
EOF

echo "building $tag from $bin ($version); libraries: ${libs//$'\n'/ }" >&2
$SUDO podman build --pull=never -t "$tag" -f "$ctx/Containerfile" "$ctx" >&2
echo "$tag"
