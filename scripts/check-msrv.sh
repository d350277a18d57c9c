#!/usr/bin/env bash
# Checks that the workspace builds with its declared rust-version (1.85) using Debian's
# rustc-web 1.85 (installed with apt if missing). Separate target folder: target/msrv.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if ! /usr/bin/rustc --version 2>/dev/null | grep -q '^rustc 1\.85\.'; then
    v=1.85.0+dfsg3-1~deb12u3
    apt-get install -y "rustc-web=$v" "cargo-web=$v" "libstd-rust-web-dev=$v" "libstd-rust-web-1.85=$v"
fi
CARGO_TARGET_DIR=target/msrv RUSTC=/usr/bin/rustc /usr/bin/cargo check --workspace --all-targets \
    --features factscope-causal-trace/shared-data "$@"
