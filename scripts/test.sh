#!/usr/bin/env bash
# The test suite, as CI runs it (`make test`): lint, then pytest on the locked environment.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/ruff check dcgan components pipeline serving tests bench
scripts/ensure_chromium.sh  # the studio's browser tests drive real Chromium
scripts/ensure_tool.sh rclone "the Kubernetes S3 model-sync test" rclone  # kubernetes/base/scripts/model-sync.sh
exec .venv/bin/python -m pytest -q -p no:cacheprovider --timeout=900 "$@"
