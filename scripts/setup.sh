#!/usr/bin/env bash
# Make (or refresh) the project's virtual environment in .venv with every extra installed.
# Idempotent: does nothing when pyproject.toml has not changed since the last install.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
stamp=.venv/.portaflow-installed
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x .venv/bin/portaflow ]; then
  exit 0
fi
echo "setup: installing portaflow and its dependencies into .venv (first time: about 2 minutes)" >&2
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip wheel
.venv/bin/python -m pip install --quiet -e ".[all]"
echo "$want" > "$stamp"
