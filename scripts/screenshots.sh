#!/usr/bin/env bash
# Retake the docs' screenshots (docs/images/*.png) from the tests that draw them: those
# marked docs_screenshots in tests/test_review_page.py, tests/test_gallery.py,
# tests/test_atlases_engines.py, tests/test_sprite_ops.py, tests/test_svg_gallery.py and
# tests/test_qa_pages.py.
# A plain test run takes the same pages but never writes docs/images/, so the tracked
# PNGs change only when someone means them to; commit them with the change they show.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh dev
bash scripts/install-tools.sh
unset ASSETPIPE_SKIP_BROWSER   # a skipped test would leave an old picture in place
export ASSETPIPE_DOCS_SCREENSHOTS=1
.venv/bin/python -m pytest -m docs_screenshots "$@" tests/test_review_page.py tests/test_gallery.py \
  tests/test_atlases_engines.py tests/test_sprite_ops.py tests/test_svg_gallery.py \
  tests/test_qa_pages.py
git status --short docs/images || true
