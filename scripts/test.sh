#!/usr/bin/env bash
# The test suite, as CI runs it (`make test`): lint, the docs site (mkdocs build --strict), then pytest on the locked
# environment, on every core.
#
# pytest-xdist runs one worker per core (DCGAN_TEST_WORKERS=N to choose, 0 = in this process), each test module on
# one worker (--dist loadscope: a module's fixtures are built once), the modules with end-to-end tests first (marker
# `slow`, tests/conftest.py) so that no long module starts last. The 30 slowest tests are printed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/ruff check dcgan components pipeline serving tests bench scripts
site=$(mktemp -d)  # the documentation site: a broken link, a missing page or an anchor that moved fails here
NO_MKDOCS_2_WARNING=1 .venv/bin/mkdocs build --strict --quiet --site-dir "$site"  # (no Material banner in CI logs)
rm -rf "$site"
scripts/ensure_chromium.sh  # the studio's browser tests drive real Chromium
scripts/ensure_tool.sh rclone "the Kubernetes S3 model-sync test" rclone  # kubernetes/base/scripts/model-sync.sh
workers=${DCGAN_TEST_WORKERS:-auto}
parallel=()
[ "$workers" = 0 ] || parallel=(-n "$workers" --dist loadscope)
exec .venv/bin/python -m pytest -q -p no:cacheprovider --timeout=900 --durations=30 "${parallel[@]}" "$@"
