#!/usr/bin/env bash
# Makes sure a tool the tests drive is installed: `scripts/ensure_tool.sh TOOL PURPOSE PACKAGE...`. TOOL is a command
# name or an absolute path. Idempotent: does nothing when it is there; otherwise installs the Debian PACKAGEs with
# apt-get (as root or with password-less sudo), or explains what to install.
set -euo pipefail
TOOL=$1 PURPOSE=$2
shift 2
found() { if [[ $TOOL == /* ]]; then [ -x "$TOOL" ]; else command -v "$TOOL" >/dev/null 2>&1; fi; }
found && exit 0

echo "ensure_tool: $TOOL not found; installing $* with apt-get (for $PURPOSE)" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"; fi
fi
if ! command -v apt-get >/dev/null 2>&1 || { [ "$(id -u)" -ne 0 ] && [ -z "$SUDO" ]; }; then
  echo "ensure_tool: cannot install $* here (needs apt-get and root or password-less sudo); $PURPOSE need(s) $TOOL." \
       "Install it yourself, e.g.: sudo apt-get install -y $*" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
if ! { $SUDO apt-get install -y "$@" >/dev/null \
       || { $SUDO apt-get update >/dev/null && $SUDO apt-get install -y "$@" >/dev/null; }; }; then
  echo "ensure_tool: apt-get could not install $* (see the messages above); $PURPOSE need(s) $TOOL." >&2
  exit 1
fi
found || { echo "ensure_tool: $* installed but $TOOL is still missing" >&2; exit 1; }
echo "ensure_tool: $TOOL installed ($*)" >&2
