#!/usr/bin/env bash
# Set up, then run everything CI runs: lint, format, types, import layers and the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh dev
bash scripts/install-tools.sh   # chromium, mono-mcs, tesseract-ocr and the npm engines (apt needs root)
echo "== ruff"; .venv/bin/ruff check pipeline tests benchmarks
echo "== ruff format"; .venv/bin/ruff format --check pipeline tests benchmarks
echo "== mypy --strict"; .venv/bin/mypy
echo "== import layers"; .venv/bin/lint-imports
echo "== pytest"; .venv/bin/python -m pytest "$@"
