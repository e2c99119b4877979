#!/usr/bin/env bash
# Makes a minimal Debian root with debootstrap (for the `current` stack's Debian 13 lane and the pipeline image's
# base). Idempotent: a root already made for the same suite and package list is reused as it is.
#
#   scripts/debian_root.sh SUITE DIR [PACKAGE,PACKAGE...]
#
# The mirror is $DEBIAN_MIRROR, else the first `URIs:` of /etc/apt/sources.list.d/debian.sources, else
# deb.debian.org. The host's /etc/resolv.conf and CA bundle are copied in, so pip/uv/apt reach the package indexes
# from inside. The root is built beside DIR and renamed into place only when complete.
# Nothing is left mounted: callers that mount /proc etc. into DIR must unmount before deleting it.
set -euo pipefail

SUITE=${1:?usage: debian_root.sh SUITE DIR [PACKAGES]}
DIR=${2:?usage: debian_root.sh SUITE DIR [PACKAGES]}
PACKAGES=${3:-python3,python3-venv,python3-pip,ca-certificates}
STAMP="$DIR/.dcgan-root"
want="$SUITE $PACKAGES"

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then
  exit 0
fi
if [ -e "$DIR" ]; then
  if grep -qs " $(realpath -m "$DIR")/" /proc/mounts; then
    echo "debian_root: $DIR has mounts inside it; unmount them before it can be rebuilt" >&2
    exit 1
  fi
  echo "debian_root: $DIR exists but was made for something else; rebuilding it" >&2
  rm -rf "$DIR"
fi

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo -n"
if ! command -v debootstrap >/dev/null 2>&1; then
  echo "debian_root: installing debootstrap" >&2
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get install -y debootstrap >/dev/null 2>&1 \
    || { $SUDO apt-get update >/dev/null && $SUDO apt-get install -y debootstrap >/dev/null; }
fi

MIRROR=${DEBIAN_MIRROR:-$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)}
MIRROR=${MIRROR:-http://deb.debian.org/debian}

TMP="$DIR.partial"
rm -rf "$TMP"
mkdir -p "$(dirname "$DIR")"
echo "debian_root: debootstrap $SUITE into $DIR from $MIRROR (about a minute)" >&2
start=$(date +%s)
$SUDO debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$TMP" "$MIRROR" >"$TMP.log" 2>&1 || {
  echo "debian_root: debootstrap failed; the last lines of $TMP.log:" >&2
  tail -20 "$TMP.log" >&2
  exit 1
}
cp -L /etc/resolv.conf "$TMP/etc/resolv.conf"
if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
  mkdir -p "$TMP/etc/ssl/certs"
  cp -L /etc/ssl/certs/ca-certificates.crt "$TMP/etc/ssl/certs/ca-certificates.crt"
fi
echo "$want" > "$TMP/.dcgan-root"
mv "$TMP" "$DIR"
rm -f "$TMP.log"
echo "debian_root: $DIR ready ($SUITE, $(( $(date +%s) - start )) s)" >&2
