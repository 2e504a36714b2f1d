#!/usr/bin/env bash
# Proves the container image works, on a machine where `podman run` does not (see
# ../shared/MACHINE_NOTES.md "Containers"): builds it with scripts/build-image.sh, checks its
# name against deploy/, its config (entrypoint, non-root user) and its files (exactly the
# binary, the libraries ldd lists, the CA bundle, passwd/group/nsswitch), then `podman create` +
# `podman export` → untar → runs `/sluice --version`, `/sluice validate` (a valid and an invalid
# Rollout) and `/sluice crd` under chroot as user 65532, and finally shows the check is not
# vacuous: without libc in the root filesystem the same chroot fails.
#
# The image is built from the debug binary the tests already built (CI runs this right after
# scripts/test.sh): a release build would add minutes, and the release image differs only in
# the binary (users build that one with the Containerfile or `scripts/build-image.sh`).
# Override with SLUICE_IMAGE_BINARY=path. Needs root (rootful podman, chroot).
set -euo pipefail
cd "$(dirname "$0")/.."

fail() { echo "test-image: FAIL: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "test-image: needs root (rootful podman and chroot): run it with sudo" >&2; exit 2; }

# The image deploy/ runs (and the chart: crates/sluice-k8s/tests/it/k8s_manifests.rs checks
# the two agree): the name the docs tell users to build and push.
want=$(awk '$1 == "image:" { print $2; exit }' deploy/controller/deployment.yaml)
[ -n "$want" ] || fail "no image: line in deploy/controller/deployment.yaml"

target_dir=$(cargo metadata --no-deps --format-version 1 |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
bin=${SLUICE_IMAGE_BINARY:-$target_dir/debug/sluice}
if [ -z "${SLUICE_IMAGE_BINARY:-}" ]; then
  # Rebuild only when the binary is missing or older than a source it is built from.
  newer=$(find crates Cargo.toml Cargo.lock -newer "$bin" \( -name '*.rs' -o -name '*.toml' -o -name Cargo.lock \) \
    -not -path 'crates/sluice-testkit/*' -not -path '*/tests/*' -print -quit 2>/dev/null || echo missing)
  if [ ! -x "$bin" ] || [ -n "$newer" ]; then
    echo "test-image: $bin is missing or older than ${newer:-?}: cargo build -p sluice" >&2
    cargo build --locked -p sluice >&2
  fi
fi

tag=$(scripts/build-image.sh --binary "$bin")
echo "built $tag from $bin"
[ "$tag" = "$want" ] || fail "built $tag, but deploy/controller/deployment.yaml runs $want"

# --- the image's configuration
entrypoint=$(podman image inspect "$tag" --format '{{json .Config.Entrypoint}}')
user=$(podman image inspect "$tag" --format '{{.Config.User}}')
[ "$entrypoint" = '["/sluice"]' ] || fail "entrypoint is $entrypoint, expected [\"/sluice\"]"
[ "$user" = 65532:65532 ] || fail "user is '$user', expected 65532:65532 (runAsUser in deploy/)"
echo "ok: entrypoint $entrypoint, user $user"

# --- its root filesystem
work=$(mktemp -d)
cid=""
cleanup() {
  if [ -n "$cid" ]; then podman rm -f "$cid" >/dev/null 2>&1 || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
rootfs=$work/rootfs
mkdir "$rootfs"
cid=$(podman create "$tag")
podman export "$cid" | tar -x -C "$rootfs"

expected=$( (printf '%s\n' /sluice /etc/passwd /etc/group /etc/nsswitch.conf /etc/ssl/certs/ca-certificates.crt
  ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }') | sort -u)
actual=$(cd "$rootfs" && find . -type f | sed 's/^\.//' | sort)
[ "$expected" = "$actual" ] || fail "files in the image differ from what was expected:
$(diff <(echo "$expected") <(echo "$actual") || true)"
cmp -s "$bin" "$rootfs/sluice" || fail "/sluice in the image is not $bin"
cmp -s /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/ca-certificates.crt" ||
  fail "the image's CA bundle differs from this machine's"
grep -qx 'nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin' "$rootfs/etc/passwd" ||
  fail "/etc/passwd has no nonroot user 65532: $(cat "$rootfs/etc/passwd")"
echo "ok: files: ${actual//$'\n'/ }"

# --- it runs, as the non-root user, with nothing of this machine's environment
run() { env -i /usr/sbin/chroot --userspec=65532:65532 "$rootfs" /sluice "$@"; }
cp rollouts/reviews-canary.yaml "$rootfs/valid.yaml"       # has a timeZone: tz data is built in
cp tests/fixtures/invalid/bad-cron.yaml "$rootfs/invalid.yaml"
chmod 0644 "$rootfs"/*.yaml

out=$(run --version) || fail "chroot /sluice --version exited $?"
[ "$out" = "$("$bin" --version)" ] || fail "chroot /sluice --version printed '$out'"
echo "ok: chroot /sluice --version: $out"

out=$(run validate /valid.yaml 2>&1) || fail "chroot /sluice validate /valid.yaml exited $?: $out"
[[ $out == *"ok: 1 rollout(s) valid"* ]] || fail "validate of a valid Rollout printed: $out"
echo "ok: chroot /sluice validate /valid.yaml: $out"

set +e
out=$(run validate /invalid.yaml 2>&1)
rc=$?
set -e
[ "$rc" = 1 ] || fail "validate of an invalid Rollout exited $rc (expected 1): $out"
[[ $out == *'spec.schedule.windows[0]: invalid cron expression'* ]] ||
  fail "validate of an invalid Rollout did not name the field: $out"
echo "ok: chroot /sluice validate /invalid.yaml exits 1: $(head -1 <<<"$out")"

run crd > "$work/crd.yaml" || fail "chroot /sluice crd exited $?"
cmp -s "$work/crd.yaml" deploy/crds/rollout.yaml || fail "chroot /sluice crd differs from deploy/crds/rollout.yaml"
echo "ok: chroot /sluice crd = deploy/crds/rollout.yaml"

# --- the check is not vacuous: the chroot uses the image's libraries, not this machine's.
libc=$(cd "$rootfs" && find . -name 'libc.so.*' -print -quit)
[ -n "$libc" ] || fail "no libc in the image (is the binary static? then drop this check)"
rm "$rootfs/$libc"
if run --version >/dev/null 2>&1; then
  fail "/sluice still ran with libc removed from the image: the chroot checks prove nothing"
fi
echo "ok: without ${libc#.} the image's /sluice does not start"
echo "test-image: all checks passed ($tag)"
