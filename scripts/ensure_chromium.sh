#!/usr/bin/env bash
# Makes sure Chromium is installed for the browser tests (tests/test_studio_browser*.py drive it with Playwright).
# `playwright install` cannot download browsers on these machines, so the Debian packages are used. The browser may be
# elsewhere: set DCGAN_CHROMIUM to its path (the tests read the same variable).
set -euo pipefail
exec "$(dirname "$0")/ensure_tool.sh" "${DCGAN_CHROMIUM:-/usr/bin/chromium}" "the studio's browser tests" \
  chromium chromium-driver
