#!/usr/bin/env bash
# Set up, then validate, plan and build the example project offline (preview provider).
# Safe to run again: an unchanged project installs nothing and builds nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export ASSETPIPE_PROVIDER=preview
.venv/bin/assetpipe validate
.venv/bin/assetpipe plan -q
.venv/bin/assetpipe build
