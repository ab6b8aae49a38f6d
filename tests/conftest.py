"""Fixtures shared by portaflow's tests (importable helpers live in testlib.py), and how the suite is split
across pytest-xdist workers (`make test` runs it with `-n`, `--dist loadgroup`)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent

SHARED_SESSION_FIXTURES = {
    "containers": "science-local",
    "cores/hep": "hep-core",
    "cores/radio": "radio-core",
}
"""Test directories whose session fixtures are expensive -> the xdist group that keeps them on one worker.

Why: a session fixture is built once per worker process, so spread over N workers it is built N times. The
podman images take minutes to build (and two workers building the same tag at once would race), and the
container and CWL export tests compare with the same host runs (`science_on_local`); the cores'
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


_CHECKED_CRATES: set[Path] = set()


def _crate_problems(root: Path) -> list[str]:
    """The structural problems of every run's RO-Crate under `root` not checked yet in this process (cratecheck.py)."""
    from cratecheck import crate_paths, structural_problems

    problems: list[str] = []
    for path in crate_paths(root):
        if path not in _CHECKED_CRATES:
            _CHECKED_CRATES.add(path)
            problems += structural_problems(path.parent)
    return problems


@pytest.fixture(autouse=True)
def _run_crates_hold_together(request: pytest.FixtureRequest):
    """Issue 19: every test run's RO-Crate holds together. After each test, the crates its runs wrote under its
    tmp_path get cratecheck's structural check (milliseconds each); the full roc-validator runs on a representative
    set (tests/e2e/test_run_crate.py, tests/slurm/test_run_crate_slurm.py)."""
    yield
    tmp_path = request.node.funcargs.get("tmp_path") if hasattr(request.node, "funcargs") else None
    if isinstance(tmp_path, Path):
        problems = _crate_problems(tmp_path)
        if problems:
            pytest.fail("a run wrote an unsound RO-Crate:\n" + "\n".join(problems), pytrace=False)


@pytest.fixture(scope="session", autouse=True)
def _session_run_crates_hold_together(tmp_path_factory: pytest.TempPathFactory):
    """The same check, at the end of the session, for the crates of runs in shared fixtures' directories
    (tmp_path_factory): everything under this process's base temporary directory not checked yet."""
    yield
    problems = _crate_problems(tmp_path_factory.getbasetemp())
    if problems:
        pytest.fail("a run wrote an unsound RO-Crate:\n" + "\n".join(problems), pytrace=False)


@pytest.fixture(scope="session")
def science_on_local(tmp_path_factory: pytest.TempPathFactory):
    """`science_on_local(core)`: the work directory of one run of that science workflow (testlib.SCIENCE_CASES, its
    small preset) on the local site with its default engine, made on first use. The tests that compare another
    run with an undisturbed host run (in podman, under cwltool) share it: each would otherwise pay for its own.
    They share it inside one test process only, so they carry `xdist_group("science-local")`."""
    from testlib import SCIENCE_CASES, param_args, run_portaflow

    made: dict[str, Path] = {}

    def run(core: str) -> Path:
        if core not in made:
            path, params = SCIENCE_CASES[core]
            workdir = tmp_path_factory.mktemp(f"{core}-local")
            result = run_portaflow("run", str(path), "--workdir", str(workdir), *param_args(params))
            assert result.returncode == 0, result.stdout + result.stderr
            made[core] = workdir
        return made[core]

    return run


@pytest.fixture(scope="session")
def fault_reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The undisturbed run of tests/data/workflows/faults.yaml that the local and the SLURM fault-injection tests
    compare with, made once per session (and once across xdist workers: they share the base temporary directory's
    parent, and tests/faultinjection.py's `shared_reference` holds a lock while one worker makes it)."""
    import os

    from faultinjection import shared_reference

    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent
    return shared_reference(root)
