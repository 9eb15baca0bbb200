#!/usr/bin/env bash
# Installs what the test suite needs beyond the Rust toolchain. Idempotent; safe to rerun.
# - sh, echo, sleep, kill, sha256sum: POSIX/coreutils, present on any Debian-like system
# - gpg (gnupg): the anchor tests sign and verify with the real gpg
# - python3 with aiosmtpd: the e-mail tests deliver to a real SMTP server on loopback; the
#   example stack's services are python3 scripts
# - redis-server: the supervisor tests start their own on a free port (heartbeat keys)
# - openssl: the TLS tests make their certificates with it
# - chromium and chromium-driver: the dashboard tests drive a real headless browser over WebDriver
# - git: deploy plans resolve versions in a git repository (the push webhook test makes one);
#   the deploy tests' regions are python3 scripts
set -euo pipefail

has_aiosmtpd() {
  for py in python3 /usr/bin/python3; do
    if command -v "$py" >/dev/null && "$py" -c 'import aiosmtpd' 2>/dev/null; then
      return 0
    fi
  done
  return 1
}

apt_install() {
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"
  else
    echo "please install: $*" >&2
    exit 1
  fi
}

missing=()
command -v gpg >/dev/null || missing+=(gnupg)
command -v sha256sum >/dev/null || missing+=(coreutils)
command -v redis-server >/dev/null || missing+=(redis-server)
command -v openssl >/dev/null || missing+=(openssl)
command -v chromium >/dev/null || missing+=(chromium)
command -v chromedriver >/dev/null || missing+=(chromium-driver)
command -v git >/dev/null || missing+=(git)
if ! has_aiosmtpd; then
  # A pip-managed python takes it from PyPI; a distribution python from its packages.
  if command -v python3 >/dev/null; then
    python3 -m pip install --quiet --disable-pip-version-check aiosmtpd >/dev/null 2>&1 || true
  fi
  has_aiosmtpd || missing+=(python3 python3-aiosmtpd)
fi
if [ ${#missing[@]} -gt 0 ]; then
  apt_install "${missing[@]}"
fi
for tool in sh echo sleep kill gpg sha256sum redis-server openssl python3 chromium chromedriver git; do
  command -v "$tool" >/dev/null || { echo "missing $tool" >&2; exit 1; }
done
has_aiosmtpd || { echo "missing python3 with aiosmtpd" >&2; exit 1; }
echo "test dependencies: ok"
