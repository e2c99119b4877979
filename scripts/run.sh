#!/usr/bin/env bash
# The main job (`make run`). Until the pipeline lands: train a small DCGAN on synthetic images and export it.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
ROOT=${DCGAN_ROOT:-runs/demo}
mkdir -p "$ROOT"
python - "$ROOT/images" <<'PY'
import sys
sys.path.insert(0, "tests")
from conftest import write_synthetic_images
write_synthetic_images(sys.argv[1], n=256, size=48)
PY
dcgan train --data "$ROOT/images" --size 32 --ngf 32 --ndf 32 --batch-size 64 --steps 300 --out "$ROOT/run"
dcgan export "$ROOT/run" "$ROOT/serving/dcgan/1" --force
echo "samples: $ROOT/run/samples/  SavedModel: $ROOT/serving/dcgan/1"
