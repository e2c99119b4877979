#!/usr/bin/env bash
# The main job (`make run`): the full TFX pipeline, `quick` preset, on the built-in avatar data, with
# LocalDagRunner (SQLite MLMD under runs/quick, Beam DirectRunner); then a summary of where the served model and
# the web studio are. Extra arguments go to `dcgan pipeline run` (e.g. `make run ARGS="--set train.steps=500"`).
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/dcgan pipeline run --preset quick --root "${DCGAN_ROOT:-runs/quick}" "$@"
