#!/usr/bin/env bash
# Installs what the browser tests (tests/browser) need and is missing; safe to run again.
#   - Debian's `chromium` (the only browser this project uses: nothing downloads one)
#   - Playwright for Python into .venv, pinned; its own browser download is never run: the tests
#     launch /usr/bin/chromium through `executable_path` (BROWSER_TEST_CHROMIUM overrides it).
# Run after scripts/setup.sh (it needs .venv).
set -euo pipefail
cd "$(dirname "$0")/.."
PLAYWRIGHT_VERSION=1.65.2
CHROMIUM=${BROWSER_TEST_CHROMIUM:-/usr/bin/chromium}

if [ ! -x "$CHROMIUM" ]; then
    if [ "$(id -u)" != 0 ]; then
        echo "setup-browser: $CHROMIUM is missing; install it (apt-get install chromium) or run as root" >&2
        exit 1
    fi
    echo "setup-browser: installing chromium from Debian"
    DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium fonts-dejavu-core >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
    echo "setup-browser: .venv is missing; run scripts/setup.sh (make setup) first" >&2
    exit 1
fi
if ! .venv/bin/python -c "import importlib.metadata as m, sys; \
sys.exit(m.version('playwright') != '$PLAYWRIGHT_VERSION')" 2>/dev/null; then
    echo "setup-browser: installing playwright $PLAYWRIGHT_VERSION into .venv"
    .venv/bin/pip install -q --disable-pip-version-check "playwright==$PLAYWRIGHT_VERSION"
fi
