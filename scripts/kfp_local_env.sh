#!/usr/bin/env bash
# Creates (or refreshes) .venv-kfp: kfp.local's runner for the compiled open-source Kubeflow Pipelines spec
# (`python -m pipeline.kfp_local`, docs/kubeflow.md), from requirements-kfp-local.lock (hash-checked).
# A venv of its own because the legacy stack's TFX 1.16 pins kfp 2.5.0, whose kfp.local runs no pipelines and no
# components with input artifacts. Idempotent: a second run with an unchanged lock is a no-op. Prints the venv's python.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${DCGAN_KFP_VENV:-.venv-kfp}
LOCK=requirements-kfp-local.lock
STAMP="$VENV/.lock.sha256"
want="bytecode $(sha256sum "$LOCK" | cut -d' ' -f1)"
if [ -x "$VENV/bin/python" ] && [ "$(cat "$STAMP" 2>/dev/null)" = "$want" ]; then
  echo "$VENV/bin/python"
  exit 0
fi
[ -x .venv/bin/uv ] || { echo "kfp_local_env: run 'make setup' first (it provides uv and the Python)" >&2; exit 1; }
rm -rf "$VENV"
.venv/bin/uv venv -q --python .venv/bin/python "$VENV" >&2
# .pyc written at install, as scripts/setup.sh does: where PYTHONDONTWRITEBYTECODE is set, each run compiled kfp again
.venv/bin/uv pip sync -q --compile-bytecode --python "$VENV/bin/python" --require-hashes "$LOCK" >&2
echo "$want" > "$STAMP"
echo "kfp_local_env: $VENV ready ($("$VENV/bin/python" -c 'import kfp; print("kfp", kfp.__version__)'))" >&2
echo "$VENV/bin/python"
