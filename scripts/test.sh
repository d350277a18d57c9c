#!/usr/bin/env bash
# Every test of the workspace (README): setup, then `cargo test --workspace`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
exec cargo test --workspace "$@"
