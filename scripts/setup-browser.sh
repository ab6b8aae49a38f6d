#!/usr/bin/env bash
# The headless browser the run report's tests open pages in: Debian's chromium (tests/e2e/test_report.py,
# tests/slurm/test_report_slurm.py, the matrix page). Idempotent: nothing to do when chromium is on PATH.
# Installing needs root (apt-get); without it this says what to run and exits 1 (those tests then skip, or fail under
# PORTAFLOW_CI=1).
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "setup-browser: chromium is not installed; as root: apt-get install -y chromium (the report tests skip without it)" >&2
  exit 1
fi
echo "setup-browser: installing Debian's chromium (headless browser for the report tests)" >&2
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
chromium --version
