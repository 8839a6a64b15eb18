#!/usr/bin/env bash
# Install Debian's Chromium for the gallery's headless-browser test (tests/test_gallery.py),
# if it is not there yet. Only root can apt-get; anyone else is told what to run.
# The test fails (rather than skips) without a browser unless ASSETPIPE_SKIP_BROWSER=1.
set -euo pipefail

for name in chromium chromium-browser; do
  if command -v "$name" >/dev/null 2>&1; then
    echo "install-browser: $(command -v "$name") is already installed"
    exit 0
  fi
done

if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-browser: no apt-get here; install Chromium with your system's package manager," >&2
  echo "  or set ASSETPIPE_SKIP_BROWSER=1 to skip the browser test" >&2
  exit 1
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "install-browser: Chromium is missing and installing it needs root; run:" >&2
  echo "  sudo apt-get update && sudo apt-get install -y chromium" >&2
  echo "  (or set ASSETPIPE_SKIP_BROWSER=1 to skip the browser test)" >&2
  exit 1
fi

echo "install-browser: installing Debian's chromium package"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq chromium >/dev/null
echo "install-browser: installed $(command -v chromium)"
