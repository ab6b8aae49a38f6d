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
        if getattr(config.option, "loadgroup", False):  # an xdist worker under --dist loadgroup
            _name_group_in_id(item)


def _name_group_in_id(item: pytest.Item) -> None:
    """Append `@GROUP` to the test's id, which is how xdist's loadgroup scheduler learns a test's group.

    Why here: pytest-xdist 3.8 appends it to `item._nodeid`, which pytest 9.2 (structured node ids) no longer
    reads, so every group is silently ignored (pytest-dev/pytest-xdist#1386, open) and grouped tests overlap.
    On a pytest that still reads `_nodeid`, xdist does it itself and this does nothing; should xdist also set
    the structured id, the group would be named twice, and the scheduler reads the last `@` only.
    """
    try:
        from _pytest.nodeid import NodeId
    except ImportError:  # pytest before structured node ids: xdist's own suffix works
        return
    groups = sorted({str(m.args[0] if m.args else m.kwargs.get("name", "default")) for m in item.iter_markers("xdist_group")})
    nodeid = item.nodeid
    if groups and isinstance(getattr(item, "_id", None), NodeId) and nodeid.rfind("@") <= nodeid.rfind("]"):
        item._id = NodeId.parse(f"{nodeid}@{'_'.join(groups)}")


@pytest.fixture
def write(tmp_path: Path):
    """Write a dedented text file under tmp_path and return its path."""

    def _write(name: str, text: str) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"))
        return path

    return _write
