#!/usr/bin/env bash
# Runs a command on the `current` stack (TFX 1.21 / TF 2.21 / Python 3.13) inside a Debian 13 root, on any Linux host
# where we are root (CI, these glibc 2.36 machines). `make test-current` and `make run-current` use it.
#
#   scripts/in_current_root.sh [COMMAND...]         (default: make test)
#   scripts/in_current_root.sh --host COMMAND...    `make setup` in the root, then COMMAND on the host while the root
#                                                   is mounted, with DCGAN_CURRENT_CHROOT=<root>, DCGAN_CURRENT_REPO=/work/<copy>
#                                                   (bench/stacks_throughput.py)
#
# - The root is made once by scripts/debian_root.sh at $DCGAN_CURRENT_ROOT (default /var/cache/dcgan/trixie-current,
#   outside the clone, so fresh CI clones reuse it) and kept: its uv cache and the repo copy's .venv make later runs
#   warm. Concurrent callers on one machine are serialised with flock.
# - The repo's files (tracked and untracked-but-not-ignored, as git lists them) are copied to /work/$DCGAN_CURRENT_WORK
#   (default dcgan) in the root; nothing of the host is bound read-write into it. Only proc, sysfs (read-only), a tmpfs
#   /dev/shm and a tmpfs /tmp are mounted, in a private mount namespace of this script (unshare -m: invisible to the
#   host and to concurrent callers, gone when the script ends), and unmounted on exit, also on failure.
#   Callers with different DCGAN_CURRENT_WORK (make test-current: dcgan, make run-current: dcgan-run) run side by side;
#   the same one waits (flock).
# - The command runs as root in a clean environment with DCGAN_STACK=current. Results stay inside the root
#   (e.g. $DCGAN_CURRENT_ROOT/work/dcgan/runs/quick); test-artifacts/ is copied back to ./test-artifacts/current-stack/.
set -euo pipefail
cd "$(dirname "$0")/.."

ROOT=${DCGAN_CURRENT_ROOT:-/var/cache/dcgan/trixie-current}
PACKAGES=python3,python3-venv,python3-pip,ca-certificates,g++,python3-dev,make,git   # chromium: apt-get below (debootstrap cannot configure it)
HOST=0
if [ "${1:-}" = --host ]; then HOST=1; shift; fi
[ "$#" -gt 0 ] || set -- make test
if [ "$(id -u)" -ne 0 ]; then
  echo "in_current_root: needs root (debootstrap, chroot, mount); run it with sudo or use a Debian 13 / Ubuntu 24.04 host" >&2
  exit 1
fi

WORKNAME=${DCGAN_CURRENT_WORK:-dcgan}
case "$WORKNAME" in */*|.*|"") echo "in_current_root: DCGAN_CURRENT_WORK must be a plain name" >&2; exit 2 ;; esac
if [ -z "${DCGAN_IN_NAMESPACE:-}" ]; then   # our own mount namespace: no mount of ours is visible outside or outlives us
  DCGAN_IN_NAMESPACE=1 exec unshare --mount --propagation private "$PWD/scripts/in_current_root.sh" $([ "$HOST" = 1 ] && echo --host) "$@"
fi

start=$(date +%s)
mkdir -p "$(dirname "$ROOT")"
exec 8>"$ROOT.$WORKNAME.lock"
flock 8                                      # one caller per repo copy
exec 9>"$ROOT.lock"
flock 9                                      # the root itself is made/extended by one caller at a time
scripts/debian_root.sh trixie "$ROOT" "$PACKAGES"

MOUNTS=()
cleanup() {
  local i
  for (( i=${#MOUNTS[@]}-1; i>=0; i-- )); do
    umount "${MOUNTS[$i]}" 2>/dev/null || umount -l "${MOUNTS[$i]}" 2>/dev/null || true
  done
  if grep -qs " $(realpath -m "$ROOT")/" /proc/mounts; then
    echo "in_current_root: warning: mounts left under $ROOT:" >&2
    grep " $(realpath -m "$ROOT")/" /proc/mounts >&2 || true
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
mnt() {  # mnt TARGET mount-args...
  local target=$1; shift
  mkdir -p "$target"
  mount "$@" "$target"
  MOUNTS+=("$target")
}
mnt "$ROOT/proc" -t proc proc
mnt "$ROOT/sys" -t sysfs -o ro sysfs
mnt "$ROOT/dev/shm" -t tmpfs -o mode=1777,size=2g tmpfs
mnt "$ROOT/tmp" -t tmpfs -o mode=1777 tmpfs
for dev in null zero random urandom tty; do   # debootstrap made these nodes; make sure they exist
  [ -e "$ROOT/dev/$dev" ] || { echo "in_current_root: $ROOT/dev/$dev missing" >&2; exit 1; }
done

# Tools the tests drive (scripts/test.sh ensures the same on the host): chromium for the studio's browser tests, rclone
# for the Kubernetes S3 model-sync test.
if [ ! -x "$ROOT/usr/bin/chromium" ] || [ ! -x "$ROOT/usr/bin/rclone" ]; then
  echo "in_current_root: installing chromium and rclone in the root (apt-get, about a minute)" >&2
  chroot "$ROOT" /usr/bin/env DEBIAN_FRONTEND=noninteractive PATH=/usr/sbin:/usr/bin:/sbin:/bin /bin/bash -c \
    'apt-get update -q >/tmp/apt.log 2>&1 && apt-get install -y -q --no-install-recommends chromium rclone >>/tmp/apt.log 2>&1 \
       || { tail -20 /tmp/apt.log; exit 1; }'
fi
flock -u 9

# A copy of the repo: replace everything but the venv (kept for warm runs) and the outputs of earlier runs.
WORK="$ROOT/work/$WORKNAME"
mkdir -p "$WORK"
find "$WORK" -mindepth 1 -maxdepth 1 ! -name .venv ! -name runs -exec rm -rf {} +
git ls-files -z --cached --others --exclude-standard | while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done \
  | tar --null -T - -cf - | tar -C "$WORK" -xf -
echo "in_current_root: $ROOT (Debian $(cat "$ROOT/etc/debian_version"), $(chroot "$ROOT" getconf GNU_LIBC_VERSION)); ready in $(( $(date +%s) - start )) s; running: $*" >&2

in_root() {  # a clean environment; TLS through the root's CA bundle (the host's, copied in by debian_root.sh)
  local ca=/etc/ssl/certs/ca-certificates.crt
  chroot "$ROOT" /usr/bin/env -i HOME=/root LANG=C.UTF-8 TERM="${TERM:-dumb}" \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    SSL_CERT_FILE=$ca PIP_CERT=$ca REQUESTS_CA_BUNDLE=$ca \
    ${http_proxy:+http_proxy=$http_proxy} ${https_proxy:+https_proxy=$https_proxy} ${no_proxy:+no_proxy=$no_proxy} \
    DCGAN_STACK=current /bin/bash -c 'cd "$0" && exec "$@"' "/work/$WORKNAME" "$@"
}
rc=0
if [ "$HOST" = 1 ]; then
  in_root make setup
  DCGAN_CURRENT_CHROOT="$ROOT" DCGAN_CURRENT_REPO="/work/$WORKNAME" "$@" || rc=$?
  echo "in_current_root: '$*' (host) exited $rc after $(( $(date +%s) - start )) s" >&2
  exit "$rc"
fi
in_root "$@" || rc=$?
if [ -d "$WORK/test-artifacts" ]; then
  mkdir -p test-artifacts && rm -rf test-artifacts/current-stack && cp -r "$WORK/test-artifacts" test-artifacts/current-stack
fi
echo "in_current_root: '$*' exited $rc after $(( $(date +%s) - start )) s" >&2
exit "$rc"
