#!/usr/bin/env bash
# The main job on the bundled model (README): setup, then `factscope demo`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
exec cargo run --quiet --bin factscope -- demo "$@"
