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
exec cargo test --workspace "${features[@]}" "$@"
