#!/usr/bin/env bash
# Makes sure Chromium is installed for the browser tests (tests/test_studio_browser.py drives it with Playwright).
# Idempotent: does nothing when the browser is already there. `playwright install` cannot download browsers on these
# machines, so the Debian packages are used: apt-get install chromium chromium-driver.
# The browser may be elsewhere: set DCGAN_CHROMIUM to its path (the tests read the same variable).
set -euo pipefail

CHROMIUM=${DCGAN_CHROMIUM:-/usr/bin/chromium}
if [ -x "$CHROMIUM" ]; then
  exit 0
fi

echo "ensure_chromium: $CHROMIUM not found; installing chromium with apt-get (for the studio's browser tests)" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"; fi
fi
if ! command -v apt-get >/dev/null 2>&1 || { [ "$(id -u)" -ne 0 ] && [ -z "$SUDO" ]; }; then
  cat >&2 <<MSG
ensure_chromium: cannot install Chromium here (needs apt-get and root or password-less sudo).
  The browser tests (tests/test_studio_browser.py) need it. Install it yourself, e.g.
    sudo apt-get install -y chromium chromium-driver        # Debian / Ubuntu
  or point DCGAN_CHROMIUM at a Chromium/Chrome binary, then run the tests again.
MSG
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
if ! { $SUDO apt-get install -y chromium chromium-driver >/dev/null \
       || { $SUDO apt-get update >/dev/null && $SUDO apt-get install -y chromium chromium-driver >/dev/null; }; }; then
  echo "ensure_chromium: apt-get could not install chromium (see the messages above); the browser tests need it." >&2
  exit 1
fi
if [ ! -x "$CHROMIUM" ]; then
  echo "ensure_chromium: chromium was installed but $CHROMIUM is still missing; set DCGAN_CHROMIUM to its path." >&2
  exit 1
fi
echo "ensure_chromium: $("$CHROMIUM" --version 2>/dev/null | head -1)" >&2
