#!/usr/bin/env bash
# Create .venv (if missing) and install assetpipe into it; $1 = extras (e.g. "dev").
# A second run with the same pyproject.toml and extras installs nothing (a stamp in .venv).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
extras="${1:-}"
stamp=.venv/.assetpipe-installed
digest="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [ -f "$stamp" ] && [ -x .venv/bin/assetpipe ]; then
  read -r had_digest had_extras < "$stamp" || true
  # Installed from this pyproject.toml with these extras (or more): nothing to do.
  if [ "$had_digest" = "$digest" ] && { [ -z "$extras" ] || [ "${had_extras:-}" = "$extras" ]; }; then
    exit 0
  fi
fi
.venv/bin/python -m pip install --quiet --upgrade pip
if [ -n "$extras" ]; then
  .venv/bin/python -m pip install --quiet -e ".[$extras]"
else
  .venv/bin/python -m pip install --quiet -e .
fi
echo "$digest $extras" > "$stamp"
