#!/usr/bin/env bash
# Install what the tests drive besides Python packages: Debian's chromium (pages, PixiJS
# and Phaser), mono-mcs (compiles the C# index), tesseract-ocr (reads text in images),
# and from npm, pinned in tests/engines/package-lock.json, TypeScript, PixiJS and Phaser.
# Each is installed only when missing. Only root can apt-get; anyone else is told what to run.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || missing+=(chromium)
command -v mcs >/dev/null 2>&1 || missing+=(mono-mcs)
command -v tesseract >/dev/null 2>&1 || missing+=(tesseract-ocr)
command -v npm >/dev/null 2>&1 || missing+=(npm)

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "install-tools: missing ${missing[*]}; install them with your package manager, e.g." >&2
    echo "  sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
  echo "install-tools: installing Debian's ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

lock=tests/engines/package-lock.json
stamp=tests/engines/node_modules/.assetpipe-installed
digest="$(sha256sum "$lock" | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$digest" ]; then
  echo "install-tools: npm ci in tests/engines (typescript, pixi.js, phaser)"
  (cd tests/engines && npm ci --no-audit --no-fund --loglevel=error)
  echo "$digest" > "$stamp"
fi
