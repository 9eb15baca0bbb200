#!/usr/bin/env bash
# Installs what the test suite needs beyond the Rust toolchain. Idempotent; safe to rerun.
# Today the suite needs only what the toolchain and a POSIX system provide (sh, echo, sleep).
set -euo pipefail
for tool in sh echo sleep; do
  command -v "$tool" >/dev/null || { echo "missing $tool" >&2; exit 1; }
done
echo "test dependencies: ok"
