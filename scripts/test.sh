#!/usr/bin/env bash
# Every test of the workspace (README): setup, then `cargo test --workspace`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
# Tests that read ../shared/data run where it is (always under CI, which places it there).
features=()
if [ -d ../shared/data ]; then
    features=(--features factscope-causal-trace/shared-data,factscope-function-vectors/shared-data)
elif [ "${CI:-}" = true ]; then
    echo "test.sh: ../shared/data is missing beside the checkout" >&2
    exit 1
fi
# The explorer's browser test runs where Debian's Chromium is (scripts/setup-browser.sh).
if [ -x /usr/bin/chromium ]; then
    features+=(--features factscope/browser-tests)
else
    echo "test.sh: /usr/bin/chromium is absent: the explorer's browser test is not built (bash scripts/setup-browser.sh installs it)" >&2
fi
exec cargo test --workspace "${features[@]}" "$@"
