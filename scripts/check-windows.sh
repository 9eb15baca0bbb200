#!/usr/bin/env bash
# Check that the engine builds for the Windows machine NinjaTrader runs on (Unix-only code —
# process groups, signals, the data dir's socket — is behind cfg(unix)). Needs the target and
# a MinGW C compiler (ring and SQLite have C parts):
#   rustup target add x86_64-pc-windows-gnu; apt-get install -y gcc-mingw-w64-x86-64
# Build a binary with `cargo build --release --target x86_64-pc-windows-gnu -p sovereign`.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo check --target x86_64-pc-windows-gnu -p sovereign
