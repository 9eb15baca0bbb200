#!/usr/bin/env bash
# Installs what the test suite needs beyond the Rust toolchain. Idempotent; safe to rerun.
# - sh, echo, sleep, kill, sha256sum: POSIX/coreutils, present on any Debian-like system
# - gpg (gnupg): the anchor tests sign and verify with the real gpg
set -euo pipefail
missing=()
command -v gpg >/dev/null || missing+=(gnupg)
command -v sha256sum >/dev/null || missing+=(coreutils)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
  else
    echo "please install: ${missing[*]}" >&2
    exit 1
  fi
fi
for tool in sh echo sleep kill gpg sha256sum; do
  command -v "$tool" >/dev/null || { echo "missing $tool" >&2; exit 1; }
done
echo "test dependencies: ok"
