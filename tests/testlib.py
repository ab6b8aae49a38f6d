"""Helpers shared by portaflow's tests (a plain module: conftest.py files are not importable by name
when several directories have one)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = ROOT / "workflows"
SITES = ROOT / "site_profiles"


def run_portaflow(*args: str, cwd: Path | None = None, env: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run the real `portaflow` command in a subprocess (exit codes and stderr as a user sees them)."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "portaflow", *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout)


def gpu_unavailable_reason() -> str | None:
    """Why the GPU paths cannot run here (None when CuPy has a working device): the reason GPU tests skip."""
    from portaflow.cores.gpu import GPUUnavailableError, require_cupy

    try:
        require_cupy()
    except GPUUnavailableError as exc:
        return str(exc)
    return None
