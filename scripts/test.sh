#!/usr/bin/env bash
# The test suite, as CI runs it (`make test`): lint, then pytest on the locked environment.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/ruff check dcgan components pipeline serving tests bench
exec .venv/bin/python -m pytest -q -p no:cacheprovider --timeout=900 "$@"
