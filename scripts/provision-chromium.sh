#!/usr/bin/env bash
# Debian's Chromium for the browser tests (test/browser.test.ts, driven by playwright-core, which downloads no
# browser of its own): installs the `chromium` package with apt-get when /usr/bin/chromium is missing. That needs
# root (as on CI); elsewhere install it yourself or point SKIPGRAD_CHROMIUM at a Chromium binary.
#
#   bash scripts/provision-chromium.sh
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
  echo "provision-chromium: $(/usr/bin/chromium --version 2>/dev/null | tail -1)"
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "provision-chromium: /usr/bin/chromium is missing and this is not root: run 'sudo apt-get install chromium'," \
    "or set SKIPGRAD_CHROMIUM to a Chromium binary" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
for attempt in 1 2 3; do
  if apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium >/dev/null; then break; fi
  [ "$attempt" = 3 ] && { echo "provision-chromium: apt-get could not install chromium" >&2; exit 1; }
  echo "provision-chromium: apt-get failed (attempt $attempt), retrying in 10 s" >&2
  sleep 10
done
echo "provision-chromium: $(/usr/bin/chromium --version 2>/dev/null | tail -1)"
