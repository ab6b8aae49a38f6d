"""Fixtures shared by portaflow's tests (importable helpers live in testlib.py), and how the suite is split
across pytest-xdist workers (`make test` runs it with `-n`, `--dist loadgroup`)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent

SHARED_SESSION_FIXTURES = {
    "containers": "podman-images",
    "cores/hep": "hep-core",
    "cores/radio": "radio-core",
}
"""Test directories whose session fixtures are expensive -> the xdist group that keeps them on one worker.

Why: a session fixture is built once per worker process, so spread over N workers it is built N times. The
podman images take minutes to build (and two workers building the same tag at once would race); the cores'
generated data sets and Dask clusters cost CPU the 2-core CI machine does not have to spare. A test with its
own `xdist_group` mark keeps it."""


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook, which reads the groups into the test ids
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if not item.get_closest_marker("xdist_group"):
            parents = Path(str(item.path)).parents
            for folder, group in SHARED_SESSION_FIXTURES.items():
                if TESTS / folder in parents:
                    item.add_marker(pytest.mark.xdist_group(group))


@pytest.fixture
def write(tmp_path: Path):
    """Write a dedented text file under tmp_path and return its path."""

    def _write(name: str, text: str) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"))
        return path

    return _write
