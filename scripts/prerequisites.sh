#!/usr/bin/env bash
# Prints the packages README "Quickstart" tells users of DISTRIBUTION to install before `make run` / `make test`,
# space-separated, read from the README's prerequisites table (their one home).
#
#   scripts/prerequisites.sh "Debian 13"      -> python3 python3-venv python3-dev g++ make git ca-certificates
#
# CI's Debian 13 root (scripts/in_current_root.sh) is made from exactly this list, and tests/test_setup_prerequisites.py
# makes its bare roots from it minus the build tools, so a prerequisite the README forgets fails CI.
set -euo pipefail
DISTRO=${1:?usage: prerequisites.sh DISTRIBUTION, as the prerequisites table of README names it, e.g. Debian 13}
README="$(dirname "$0")/../README.md"
# A row of the table: | Debian 13 (trixie) | `current` | `apt-get install python3 ... ca-certificates` |
packages=$(awk -v distro="| $DISTRO" '
  index($0, distro) == 1 && index($0, "`apt-get install ") {
    line = substr($0, index($0, "`apt-get install ") + length("`apt-get install "))
    print substr(line, 1, index(line, "`") - 1); exit
  }' "$README")
if [ -z "$packages" ]; then
  echo "prerequisites: README.md has no prerequisites row for '$DISTRO' (a table row starting '| $DISTRO' with" \
       "\`apt-get install ...\`)" >&2
  exit 1
fi
echo "$packages"
