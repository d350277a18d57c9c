#!/usr/bin/env bash
# Installs Debian's Chromium for the explorer's browser test (tests/serve.rs, feature
# `browser-tests`) when it is missing; quick when it is there. Needs root and Debian's
# package registry. scripts/test.sh turns the test on wherever /usr/bin/chromium exists.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
    exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    echo "setup-browser.sh: no /usr/bin/chromium and no root apt-get to install it: the browser test will not be built" >&2
    exit 0
fi
echo "setup-browser.sh: installing chromium (Debian)" >&2
if ! apt-get install -y -qq chromium >/dev/null 2>&1; then
    if ! { apt-get update -qq >/dev/null && apt-get install -y -qq chromium >/dev/null; }; then
        # Not fatal: scripts/test.sh then leaves the browser test out and says so.
        echo "setup-browser.sh: could not install chromium: the browser test will not be built" >&2
    fi
fi
