"""Helpers shared by portaflow's tests (a plain module: conftest.py files are not importable by name
when several directories have one)."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = ROOT / "workflows"
SITES = ROOT / "site_profiles"


def small_preset(path: Path) -> list[str]:
    """A workflow's `small` preset as `KEY=VALUE` strings (the size CI and the portability matrix run)."""
    from portaflow.spec.loading import load_workflow

    return [f"{k}={v}" for k, v in load_workflow(path).workflow.preset("small").items()]


SCIENCE_CASES = {name: (path, small_preset(path)) for name, path in
                 {"hep": WORKFLOWS / "hep" / "zmumu.yaml", "radio": WORKFLOWS / "radio" / "imaging.yaml"}.items()}
"""Each science workflow with parameters small enough for a test (its `small` preset)."""


def param_args(params: list[str]) -> list[str]:
    """['a=1', 'b=2'] -> ['--param', 'a=1', '--param', 'b=2']."""
    return [word for p in params for word in ("--param", p)]


def run_portaflow(*args: str, cwd: Path | None = None, env: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run the real `portaflow` command in a subprocess (exit codes and stderr as a user sees them)."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "portaflow", *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout)


@functools.cache
def gpu_unavailable() -> str | None:
    """Why GPU tests cannot run here (None: CuPy just computed on a device). Asked once per test process, and
    through portaflow.gpuprobe, so that asking imports no science core."""
    from portaflow.gpuprobe import unavailable_reason

    return unavailable_reason()


def unavailable(reason: str) -> None:
    """Skip a test whose test bed is missing; under PORTAFLOW_CI=1 (where CI set it up on purpose) fail instead,
    so a broken test bed cannot pass as a row of skips."""
    import pytest

    if os.environ.get("PORTAFLOW_CI") == "1":
        pytest.fail(f"PORTAFLOW_CI=1 and {reason}", pytrace=False)
    pytest.skip(reason)
