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
#   outside the clone, so fresh CI clones reuse it) from exactly the packages README tells Debian 13 users to install
#   (scripts/prerequisites.sh), so a prerequisite missing from README fails this lane; a changed list rebuilds it.
#   It is kept: its uv cache and the repo copy's .venv make later runs warm. Concurrent callers on one machine are
#   serialised with flock.
# - The repo's files (tracked and untracked-but-not-ignored, as git lists them) are copied to /work/$DCGAN_CURRENT_WORK
#   (default dcgan) in the root; nothing of the host is bound read-write into it. Only proc, sysfs (read-only), a tmpfs
#   /dev/shm and a tmpfs /tmp are mounted, in a private mount namespace of this script (unshare -m: invisible to the
#   host and to concurrent callers, gone when the script ends), and unmounted on exit, also on failure
#   (scripts/root_session.sh, shared with scripts/in_root.sh).
#   Callers with different DCGAN_CURRENT_WORK (make test-current: dcgan, make run-current: dcgan-run) run side by side;
#   the same one waits (flock).
# - The command runs as root in a clean environment with DCGAN_STACK=current. Results stay inside the root
#   (e.g. $DCGAN_CURRENT_ROOT/work/dcgan/runs/quick); test-artifacts/ is copied back to ./test-artifacts/current-stack/.
set -euo pipefail
cd "$(dirname "$0")/.."

ROOT=${DCGAN_CURRENT_ROOT:-/var/cache/dcgan/trixie-current}
. scripts/root_session.sh
HOST=0 host_flag=()
if [ "${1:-}" = --host ]; then HOST=1 host_flag=(--host); shift; fi
[ "$#" -gt 0 ] || set -- make test
root_session_require_root in_current_root

WORKNAME=${DCGAN_CURRENT_WORK:-dcgan}
case "$WORKNAME" in */*|.*|"") echo "in_current_root: DCGAN_CURRENT_WORK must be a plain name" >&2; exit 2 ;; esac
root_session_namespace "$PWD/scripts/in_current_root.sh" "${host_flag[@]}" "$@"
# Exactly what README tells Debian 13 users to install (chromium and rclone: apt-get below, as `make test` does on a
# host; debootstrap cannot configure chromium). A change of the list changes debian_root.sh's stamp: the root is rebuilt.
PACKAGES=$(scripts/prerequisites.sh "Debian 13" | tr ' ' ,)

start=$(date +%s)
mkdir -p "$(dirname "$ROOT")"
exec 8>"$ROOT.$WORKNAME.lock"
flock 8                                      # one caller per repo copy
exec 9>"$ROOT.lock"
flock 9                                      # the root itself is made/extended by one caller at a time
scripts/debian_root.sh trixie "$ROOT" "$PACKAGES"
root_session_mount "$ROOT"

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
git ls-files -z --cached --others --exclude-standard | while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done \
  | root_session_copy "$WORK" .venv runs
echo "in_current_root: $ROOT (Debian $(cat "$ROOT/etc/debian_version"), $(chroot "$ROOT" getconf GNU_LIBC_VERSION)); ready in $(( $(date +%s) - start )) s; running: $*" >&2

in_root() { root_session_run "$ROOT" "/work/$WORKNAME" DCGAN_STACK=current -- "$@"; }
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
