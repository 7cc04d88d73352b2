#!/usr/bin/env bash
# Install headless Chromium from the system's packages, for the test that opens the HTML run
# report in a real browser. Idempotent: quick when /usr/bin/chromium is already there.
#
# A browser download at run time cannot work on the CI machines, so the browser comes from
# Debian's own packages (chromium, and chromium-driver for anyone who drives it with selenium).
# Needs root or passwordless sudo on a machine without Chromium (else it warns and goes on);
# MODELGATE_SKIP_BROWSER=1 skips it.
set -euo pipefail

step() { printf '==> %s\n' "$*"; }

if [ "${MODELGATE_SKIP_BROWSER:-0}" = "1" ]; then
  step "skipping the headless browser (MODELGATE_SKIP_BROWSER=1)"
  exit 0
fi
if [ -x /usr/bin/chromium ]; then
  step "headless browser present: $(/usr/bin/chromium --version 2>/dev/null || echo /usr/bin/chromium)"
  exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
  SUDO=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  SUDO=(sudo -n)
else
  # Not fatal: `make gate` needs no browser; the browser test fails and names this script.
  echo "install-browser: WARNING: /usr/bin/chromium is missing and this user cannot run" \
       "apt-get; install the 'chromium' package as root for the report's browser test" >&2
  exit 0
fi

step "installing headless Chromium from the system's packages (chromium, chromium-driver)"
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -qq
"${SUDO[@]}" apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
/usr/bin/chromium --version
