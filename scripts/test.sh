#!/usr/bin/env bash
# The one command that runs every test: unit, property and end-to-end (real binary) tests.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --workspace --all-targets "$@"
