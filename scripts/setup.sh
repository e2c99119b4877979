#!/usr/bin/env bash
# Creates (or refreshes) .venv from the committed lock files of one of the two stacks. Idempotent: a second run with
# unchanged locks and the same stack is a no-op.
#
# Stacks (docs/platforms.md):
#   legacy   TFX 1.16 / TF 2.16 on Python 3.10      requirements.lock          any glibc (wheels need >= 2.17)
#   current  TFX 1.21 / TF 2.21 on Python 3.13/3.12 requirements-current.lock  glibc >= 2.39 (ml-metadata/TFDV wheels)
# Both share requirements-nodeps.lock. The stack is picked from the host: `current` when glibc >= 2.39 and a Python
# 3.13 (or 3.12) is found, else `legacy` when a Python 3.10 is found. Force one with DCGAN_STACK=legacy|current and
# an interpreter with DCGAN_PYTHON=/path/to/python. Before anything is made, checks that the host can build the locked
# packages that have no Linux wheel (a C++ compiler and Python.h; README "Quickstart" names the packages).
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${DCGAN_VENV:-.venv}
STAMP="$VENV/.locks.sha256"
UV_VERSION=0.13.9

glibc_version() { getconf GNU_LIBC_VERSION 2>/dev/null | awk '{print $2}' || true; }
glibc_at_least() {  # $1 = wanted "2.39"
  local have; have=$(glibc_version)
  [ -n "$have" ] && [ "$(printf '%s\n%s\n' "$1" "$have" | sort -V | head -1)" = "$1" ]
}

is_python() {  # $1 = interpreter, $2.. = accepted "3.10" versions; checks that venv works too
  local c=$1; shift
  [ -n "$c" ] && [ -x "$(command -v "$c" 2>/dev/null || echo /nonexistent)" ] || return 1
  local v; v=$("$c" -c 'import sys, venv; print("%d.%d" % sys.version_info[:2])' 2>/dev/null) || return 1
  local w; for w in "$@"; do [ "$v" = "$w" ] && return 0; done
  return 1
}

find_python() {  # $@ = accepted versions, most preferred first
  local c v
  if [ -n "${DCGAN_PYTHON:-}" ] && is_python "$DCGAN_PYTHON" "$@"; then echo "$DCGAN_PYTHON"; return 0; fi
  for v in "$@"; do
    for c in "$(command -v "python$v" || true)" "/usr/bin/python$v" "/usr/local/bin/python$v"; do
      if is_python "$c" "$v"; then echo "$c"; return 0; fi
    done
    if command -v pyenv >/dev/null 2>&1; then
      local pv
      for pv in $(pyenv versions --bare 2>/dev/null | grep -E "^${v//./\\.}(\\.[0-9]+)?\$" | sort -V -r); do
        c="$(pyenv prefix "$pv")/bin/python3"
        if is_python "$c" "$v"; then echo "$c"; return 0; fi
      done
    fi
  done
  return 1
}

LEGACY_PYTHONS=(3.10)
CURRENT_PYTHONS=(3.13 3.12)
STACK=${DCGAN_STACK:-}
case "$STACK" in
  legacy) WHY="forced by DCGAN_STACK=legacy" ;;
  current) WHY="forced by DCGAN_STACK=current" ;;
  "")
    if glibc_at_least 2.39 && find_python "${CURRENT_PYTHONS[@]}" >/dev/null; then
      STACK=current; WHY="glibc $(glibc_version) >= 2.39"
    elif find_python "${LEGACY_PYTHONS[@]}" >/dev/null; then
      STACK=legacy
      if glibc_at_least 2.39; then WHY="glibc $(glibc_version) but no Python 3.13/3.12 found"
      else WHY="glibc $(glibc_version) < 2.39 (TFX 1.21's ml-metadata/TFDV wheels need 2.39)"; fi
    elif glibc_at_least 2.39; then
      STACK=current; WHY="glibc $(glibc_version) >= 2.39"
    else
      STACK=legacy; WHY="glibc $(glibc_version) < 2.39 (TFX 1.21's ml-metadata/TFDV wheels need 2.39)"
    fi ;;
  *) echo "setup: DCGAN_STACK must be 'legacy' or 'current', not '$STACK'" >&2; exit 2 ;;
esac

if [ "$STACK" = current ]; then
  LOCK=requirements-current.lock; PYTHONS=("${CURRENT_PYTHONS[@]}")
  if ! glibc_at_least 2.39; then
    cat >&2 <<MSG
setup: the current stack needs glibc >= 2.39 (ml-metadata 1.21 wheels are manylinux_2_39, TFDV 1.21 needs 2.38);
  this host has glibc $(glibc_version). Use the legacy stack here (DCGAN_STACK=legacy), or run the current stack in a
  Debian 13 root as CI does (as root): make test-current / make run-current.
MSG
    exit 1
  fi
else
  LOCK=requirements.lock; PYTHONS=("${LEGACY_PYTHONS[@]}")
fi

PY=$(find_python "${PYTHONS[@]}") || PY=""
pyv() { "$1" -c 'import sys; print(sys.version.split()[0])'; }
# (the stamp names the bytecode too: a .venv installed before it was compiled is synced once more)
want="$STACK bytecode $(cat "$LOCK" requirements-nodeps.lock pyproject.toml | sha256sum | cut -d' ' -f1)"
if [ -x "$VENV/bin/python" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then   # (its Python may be gone from PATH)
  if [ -n "$PY" ]; then REASON="$WHY; Python $(pyv "$PY") at $PY"; else REASON="$WHY; $VENV's Python $(pyv "$VENV/bin/python")"; fi
  echo "setup: stack '$STACK' ($REASON): $VENV is up to date" >&2
  exit 0
fi

if [ -z "$PY" ]; then
  if [ "$STACK" = current ]; then
    cat >&2 <<MSG
setup: stack 'current' (TFX 1.21, TF 2.21) needs Python 3.13 or 3.12; none found.
  Debian 13 / Ubuntu 24.04 (as root): apt-get install $(scripts/prerequisites.sh "Debian 13")
  or point DCGAN_PYTHON at the interpreter, or use the legacy stack: DCGAN_STACK=legacy make setup
MSG
  else
    cat >&2 <<MSG
setup: stack 'legacy' (TFX 1.16, TF 2.16) needs Python 3.10; none found.
  TFX 1.16 publishes wheels for 3.9/3.10 only (see docs/platforms.md). Install one of:
    - Ubuntu 22.04:   apt-get install $(scripts/prerequisites.sh "Ubuntu 22.04")   (elsewhere: the deadsnakes PPA)
    - pyenv:          pyenv install 3.10.13
    - conda:          conda create -n py310 python=3.10
  then re-run, or point DCGAN_PYTHON at the interpreter:  DCGAN_PYTHON=/path/to/python3.10 make setup
  On a glibc >= 2.39 host (Debian 13, Ubuntu 24.04) the current stack needs no Python 3.10: DCGAN_STACK=current make setup
MSG
  fi
  exit 1
fi
PYV=$(pyv "$PY")
REASON="$WHY; Python $PYV at $PY"

# Locked packages that PyPI has no Linux wheel of: uv builds them from their sdist, which needs the C++ compiler this
# Python builds extensions with and its headers (Python.h). Checked before anything is made, so a host without them
# gets one message naming the fix instead of a compiler error halfway through (tests/test_setup_prerequisites.py checks
# that this list names every package .venv had to build).
SOURCE_BUILDS=(pyfarmhash)
source_builds=$(for p in "${SOURCE_BUILDS[@]}"; do grep -o -m1 "^$p==[^ ]*" "$LOCK" || true; done | paste -sd' ')
if [ -n "$source_builds" ]; then
  # As setuptools invokes them: $CC / $CXX if set, else the interpreter's sysconfig (x86_64-linux-gnu-g++ on Debian's
  # python3, g++ on pyenv's); the headers in the interpreter's include directory.
  mapfile -t build < <("$PY" -c 'import os, shlex, sysconfig as s
for var in ("CC", "CXX"): print(shlex.split(os.environ.get(var) or s.get_config_var(var) or var.lower())[0])
print(s.get_paths()["include"])')
  [ "${#build[@]}" -eq 3 ] || { echo "setup: could not read the compilers and include directory of $PY" >&2; exit 1; }
  compilers_missing=() headers_missing="" packages=()
  for compiler in "${build[0]}" "${build[1]}"; do
    command -v "$compiler" >/dev/null 2>&1 || compilers_missing+=("$compiler")
  done
  [ "${#compilers_missing[@]}" -eq 0 ] || packages+=(g++)
  if [ ! -f "${build[2]}/Python.h" ]; then
    headers_missing="${build[2]}/Python.h"
    case "$(realpath "$PY")" in   # the distribution's Python: python3-dev for its python3, else pythonX.Y-dev
      "$(realpath /usr/bin/python3 2>/dev/null)") packages+=(python3-dev) ;;
      /usr/bin/*) packages+=("python${PYV%.*}-dev") ;;
    esac
  fi
  if [ "${#compilers_missing[@]}" -gt 0 ] || [ -n "$headers_missing" ]; then
    {
      echo "setup: stack '$STACK' ($REASON): cannot install $LOCK here."
      echo "  $source_builds (locked; PyPI has no Linux wheel of it) is built from source, and this host lacks"
      [ "${#compilers_missing[@]}" -eq 0 ] || echo "  - the compiler $PY builds extensions with: ${compilers_missing[*]} not found"
      [ -z "$headers_missing" ] || echo "  - the headers of Python $PYV: $headers_missing is missing"
      if [ "${#packages[@]}" -gt 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "  Install them (as root; README \"Quickstart\" lists every prerequisite), then run it again:"
        echo "    apt-get install ${packages[*]}"
      elif [ "${#packages[@]}" -gt 0 ]; then
        echo "  Install what is missing with the system's package manager (a C++ compiler such as g++; the development"
        echo "  headers of Python $PYV), then run it again."
      fi
      if [ -n "$headers_missing" ] && [[ " ${packages[*]} " != *-dev\ * ]]; then
        echo "  $PY is not the distribution's Python: reinstall it with its headers (pyenv and conda Pythons"
        echo "  carry them), or point DCGAN_PYTHON at another Python $PYV."
      fi
      echo "  Nothing was installed."
    } >&2
    exit 1
  fi
fi

echo "setup: stack '$STACK' ($REASON): $LOCK"
if [ -x "$VENV/bin/python" ] && ! "$VENV/bin/python" -c "import sys; sys.exit(sys.version.split()[0] != '$PYV')" 2>/dev/null; then
  echo "setup: $VENV was made with another Python; recreating it"
  rm -rf "$VENV"
fi
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"   # a venv with pip: TFX's module_file wheel step runs `python -m pip`
fi
"$VENV/bin/python" -m pip install -q --disable-pip-version-check "uv==$UV_VERSION"
export UV_PYTHON="$VENV/bin/python"
echo "setup: installing the locked environment into $VENV (about a minute on first run)"
# --compile-bytecode: every package's .pyc written now, once. Python writes them itself on first import, except
# where PYTHONDONTWRITEBYTECODE is set (CI's containers set it; so do many images): there every process compiled
# TensorFlow, TFX and Beam from source again, ~4 s more per `import tensorflow`, ~9 s per pipeline process
# (AVX-512 EPYC; `make test` 544 s / 900 core-s -> 416 s / 680 core-s). Compiling costs ~60 core-s once.
"$VENV/bin/uv" pip sync -q --compile-bytecode --python "$VENV/bin/python" "$LOCK"
"$VENV/bin/uv" pip install -q --compile-bytecode --python "$VENV/bin/python" --no-deps --require-hashes \
  -r requirements-nodeps.lock
# pip itself stays in the venv (uv pip sync would remove what the lock does not name).
"$VENV/bin/python" -m ensurepip -q >/dev/null 2>&1 || true
"$VENV/bin/uv" pip install -q --python "$VENV/bin/python" --no-deps --no-build-isolation -e .
echo "$want" > "$STAMP"
echo "setup: done ($VENV, stack '$STACK')"
