#!/usr/bin/env bash
# Creates (or refreshes) .venv from the committed lock files. Idempotent: a second run with unchanged locks is a no-op.
#
# Python 3.10 is required (TFX 1.16, see README "Supported platforms"). It is looked up in this order:
#   $DCGAN_PYTHON, `python3.10` on PATH, pyenv (`pyenv prefix 3.10.*`), /usr/bin/python3.10.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${DCGAN_VENV:-.venv}
STAMP="$VENV/.locks.sha256"
UV_VERSION=0.13.9

find_python() {
  local c
  for c in "${DCGAN_PYTHON:-}" "$(command -v python3.10 || true)"; do
    if [ -n "$c" ] && "$c" -c 'import sys, venv; assert sys.version_info[:2] == (3, 10)' 2>/dev/null; then echo "$c"; return 0; fi
  done
  if command -v pyenv >/dev/null 2>&1; then
    for v in $(pyenv versions --bare 2>/dev/null | grep -E '^3\.10(\.[0-9]+)?$' | sort -V -r); do
      c="$(pyenv prefix "$v")/bin/python3"
      if "$c" -c 'import sys, venv; assert sys.version_info[:2] == (3, 10)' 2>/dev/null; then echo "$c"; return 0; fi
    done
  fi
  for c in /usr/bin/python3.10 /usr/local/bin/python3.10; do
    if [ -x "$c" ] && "$c" -c 'import sys, venv' 2>/dev/null; then echo "$c"; return 0; fi
  done
  return 1
}

want=$(cat requirements.lock requirements-nodeps.lock pyproject.toml | sha256sum | cut -d' ' -f1)
if [ -x "$VENV/bin/python" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then
  exit 0
fi

if ! PY=$(find_python); then
  cat >&2 <<'MSG'
setup: no Python 3.10 found.
  This project needs Python 3.10 (TFX 1.16.0 publishes wheels for 3.9/3.10 only; see README "Supported platforms").
  Install one of:
    - Debian/Ubuntu:  apt-get install python3.10 python3.10-venv   (or the deadsnakes PPA on Ubuntu)
    - pyenv:          pyenv install 3.10.13
    - conda:          conda create -n py310 python=3.10
  then re-run, or point DCGAN_PYTHON at the interpreter:  DCGAN_PYTHON=/path/to/python3.10 make setup
MSG
  exit 1
fi

echo "setup: using $PY ($("$PY" -c 'import sys; print(sys.version.split()[0])'))"
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"   # a venv with pip: TFX's module_file wheel step runs `python -m pip`
fi
"$VENV/bin/python" -m pip install -q --disable-pip-version-check "uv==$UV_VERSION"
export UV_PYTHON="$VENV/bin/python"
echo "setup: installing the locked environment into $VENV (about a minute on first run)"
"$VENV/bin/uv" pip sync -q --python "$VENV/bin/python" requirements.lock
"$VENV/bin/uv" pip install -q --python "$VENV/bin/python" --no-deps --require-hashes -r requirements-nodeps.lock
# pip itself stays in the venv (uv pip sync would remove what the lock does not name).
"$VENV/bin/python" -m ensurepip -q >/dev/null 2>&1 || true
"$VENV/bin/uv" pip install -q --python "$VENV/bin/python" --no-deps --no-build-isolation -e .
echo "$want" > "$STAMP"
echo "setup: done ($VENV)"
