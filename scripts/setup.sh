#!/usr/bin/env bash
# One-time setup for a fresh clone (idempotent, a no-op when done): libtorch and the bundled
# model. Both README commands call this first.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bash "$here/setup-libtorch.sh"
bash "$here/fetch-model.sh"
