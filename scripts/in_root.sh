#!/usr/bin/env bash
# Runs one command in a Debian root with a given package set, on a throwaway copy of some of the repo's files: how the
# set-up is tried on a bare Debian 13 (tests/test_setup_prerequisites.py). Needs root.
#
#   scripts/in_root.sh SUITE ROOT PACKAGE,PACKAGE... PATH... -- COMMAND...
#
# The root is made once by scripts/debian_root.sh (debootstrap; kept and reused while SUITE and the package list stay
# the same). The PATHs (relative to the repo) are copied to a fresh /work/<name> in the root, COMMAND runs there as root
# in a clean environment (scripts/root_session.sh, as for in_current_root.sh), and the copy and every mount are gone
# when this script ends. Exits with COMMAND's status.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/root_session.sh
USAGE="usage: in_root.sh SUITE ROOT PACKAGE,PACKAGE... PATH... -- COMMAND..."
[ "$#" -ge 5 ] || { echo "$USAGE" >&2; exit 2; }
SUITE=$1 ROOT=$2 PACKAGES=$3
root_session_require_root in_root
root_session_namespace "$PWD/scripts/in_root.sh" "$@"
shift 3
PATHS=()
while [ "$#" -gt 0 ] && [ "$1" != -- ]; do
  [ -e "$1" ] || { echo "in_root: $1 is not a path in the repo" >&2; exit 2; }
  PATHS+=("$1"); shift
done
if [ "${1:-}" != -- ] || [ "$#" -lt 2 ]; then echo "$USAGE" >&2; exit 2; fi
shift

mkdir -p "$(dirname "$ROOT")"
exec 9>"$ROOT.lock"
flock 9                                      # the root is made by one caller at a time,
scripts/debian_root.sh "$SUITE" "$ROOT" "$PACKAGES"
flock -s 9                                   # and not remade while others use it
root_session_mount "$ROOT"
WORK=$(mktemp -d "$ROOT/work.XXXXXX")        # beside the root's own files, removed on exit
ROOT_SESSION_REMOVE+=("$WORK")
printf '%s\0' "${PATHS[@]}" | root_session_copy "$WORK"
root_session_run "$ROOT" "/${WORK#"$ROOT"/}" -- "$@"
