#!/usr/bin/env bash
# The separate PyTorch environment the benchmarks compare against (.venv-torch: Python 3.11, torch 2.13.0 CPU).
# Not needed for the pipeline or the tests. torch must be the CPU build: on machines without a local wheel use
#   pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${BENCH_PYTHON:-$(command -v python3.11 || true)}
if [ -z "$PY" ] && command -v pyenv >/dev/null; then PY="$(pyenv prefix 3.11.7 2>/dev/null || pyenv prefix 3.11 2>/dev/null)/bin/python3"; fi
[ -x "$PY" ] || { echo "setup_bench: need Python 3.11 (set BENCH_PYTHON)" >&2; exit 1; }
if [ ! -x .venv-torch/bin/python ]; then "$PY" -m venv .venv-torch; fi
.venv-torch/bin/python -c 'import torch' 2>/dev/null || .venv-torch/bin/pip install -q torch==2.13.0 numpy pillow
.venv-torch/bin/python -c 'import torch; print("bench env: torch", torch.__version__, "threads", torch.get_num_threads())'
