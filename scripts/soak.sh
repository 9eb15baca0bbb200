#!/usr/bin/env bash
# Soak: 20 supervised services with health checks plus one that prints 200 lines and crashes
# every second, for SOAK_SECS (default 1800); prints the engine's RSS every minute and its CPU
# share. A flat RSS series is the pass mark. Talks only to 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p sovereign --bin sovereign --example loadgen
target/release/examples/loadgen supervise target/release/sovereign --secs "${SOAK_SECS:-1800}" --soak
