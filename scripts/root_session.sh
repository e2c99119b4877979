# shellcheck shell=bash
# Sourced (not run) by the scripts that run a command inside a Debian root made by scripts/debian_root.sh
# (in_current_root.sh, in_root.sh): the private mount namespace, the few mounts a root needs (unmounted on exit, also on
# failure), the copy of repo files, and the clean environment the command runs in. Needs root.
#
#   root_session_require_root WHO            exit 1 with a clear message unless we are root
#   root_session_namespace SCRIPT ARGS...    re-run SCRIPT in a private mount namespace (unshare -m) unless in one:
#                                            no mount of ours is visible outside or outlives the script
#   root_session_mount ROOT                  mount proc, sysfs (read-only), a tmpfs /dev/shm and /tmp into ROOT;
#                                            unmounted on exit, then the paths in ROOT_SESSION_REMOVE are deleted
#   root_session_copy DEST [KEEP...]         replace DEST's contents (all but the names KEEP) with the repo paths read
#                                            NUL-separated from stdin; nothing of the host is bound into the root
#   root_session_run ROOT DIR [NAME=VALUE...] -- COMMAND...
#                                            COMMAND as root in ROOT, in DIR (a path inside the root), in a clean
#                                            environment (TLS through the root's CA bundle) plus the NAME=VALUEs

root_session_require_root() {
  if [ "$(id -u)" -ne 0 ]; then
    echo "$1: needs root (debootstrap, chroot, mount); run it with sudo or use a Debian 13 / Ubuntu 24.04 host" >&2
    exit 1
  fi
}

root_session_namespace() {
  if [ -z "${DCGAN_IN_NAMESPACE:-}" ]; then
    DCGAN_IN_NAMESPACE=1 exec unshare --mount --propagation private "$@"
  fi
  unset DCGAN_IN_NAMESPACE   # a script this one starts makes its own namespace
}

ROOT_SESSION_MOUNTS=()
ROOT_SESSION_REMOVE=()
root_session_cleanup() {
  local i root=$1
  for (( i=${#ROOT_SESSION_MOUNTS[@]}-1; i>=0; i-- )); do
    umount "${ROOT_SESSION_MOUNTS[$i]}" 2>/dev/null || umount -l "${ROOT_SESSION_MOUNTS[$i]}" 2>/dev/null || true
  done
  if grep -qs " $(realpath -m "$root")/" /proc/mounts; then
    echo "root_session: warning: mounts left under $root; not deleting ${ROOT_SESSION_REMOVE[*]:-anything}:" >&2
    grep " $(realpath -m "$root")/" /proc/mounts >&2 || true
    return
  fi
  for i in "${ROOT_SESSION_REMOVE[@]}"; do rm -rf "$i"; done
}

root_session_mount() {
  local root=$1 target dev
  # shellcheck disable=SC2064  # the root is fixed now
  trap "root_session_cleanup '$root'" EXIT
  trap 'exit 130' INT TERM
  for target in proc sys dev/shm tmp; do
    mkdir -p "$root/$target"
    case $target in
      proc) mount -t proc proc "$root/proc" ;;
      sys) mount -t sysfs -o ro sysfs "$root/sys" ;;
      dev/shm) mount -t tmpfs -o mode=1777,size=2g tmpfs "$root/dev/shm" ;;
      tmp) mount -t tmpfs -o mode=1777 tmpfs "$root/tmp" ;;
    esac
    ROOT_SESSION_MOUNTS+=("$root/$target")
  done
  for dev in null zero random urandom tty; do   # debootstrap made these nodes; make sure they exist
    [ -e "$root/dev/$dev" ] || { echo "root_session: $root/dev/$dev missing" >&2; exit 1; }
  done
}

root_session_copy() {
  local dest=$1; shift
  local keep=() name
  for name in "$@"; do keep+=(! -name "$name"); done
  mkdir -p "$dest"
  find "$dest" -mindepth 1 -maxdepth 1 "${keep[@]}" -exec rm -rf {} +
  tar --null -T - -cf - | tar -C "$dest" -xf -
}

root_session_run() {
  local root=$1 dir=$2 ca=/etc/ssl/certs/ca-certificates.crt
  shift 2
  local env=()
  while [ "$#" -gt 0 ] && [ "$1" != -- ]; do env+=("$1"); shift; done
  [ "${1:-}" = -- ] && shift
  # shellcheck disable=SC2016  # $0 and $@ are the inner shell's
  chroot "$root" /usr/bin/env -i HOME=/root LANG=C.UTF-8 TERM="${TERM:-dumb}" \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    SSL_CERT_FILE=$ca PIP_CERT=$ca REQUESTS_CA_BUNDLE=$ca \
    ${http_proxy:+http_proxy=$http_proxy} ${https_proxy:+https_proxy=$https_proxy} ${no_proxy:+no_proxy=$no_proxy} \
    "${env[@]}" /bin/bash -c 'cd "$0" && exec "$@"' "$dir" "$@"
}
