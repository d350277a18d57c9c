#!/usr/bin/env bash
# The rules CI enforces beside the tests (README "Development"): formatting, clippy with
# warnings as errors over every target and feature the tests use, and warning-free docs.
# Runs setup first (clippy and rustdoc need libtorch for torch-sys' build script).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
features=factscope-causal-trace/shared-data,factscope-function-vectors/shared-data,cuda-tests,browser-tests
echo "lint: cargo fmt --check" >&2
cargo fmt --all -- --check
echo "lint: cargo clippy -D warnings" >&2
cargo clippy --workspace --all-targets --features "$features" -- -D warnings
echo "lint: cargo doc -D warnings" >&2
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --features "$features"
