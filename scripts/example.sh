#!/usr/bin/env bash
# Set up, then validate, plan and build the example project offline (preview provider).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export ASSETPIPE_PROVIDER=preview
.venv/bin/assetpipe validate
.venv/bin/assetpipe plan
if .venv/bin/assetpipe build --help >/dev/null 2>&1; then
  .venv/bin/assetpipe build
fi
