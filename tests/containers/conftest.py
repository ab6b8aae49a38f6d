"""Fixtures for tests that run steps in real podman containers (set up by `tests/containers/podman.sh up`).

The images are built here, by the product's own commands (`portaflow containers base`, then `build`), from a
debootstrapped Debian base and a wheelhouse: no registry is reached. Building takes minutes, so it happens
once per session. Every test collected here is marked `podman`. Without podman they skip (fail under
PORTAFLOW_CI=1, where CI installs it on purpose).
"""

from __future__ import annotations

import fcntl
import functools
import os
import shutil
import subprocess

import pytest

from testlib import run_portaflow, unavailable

BASE = "localhost/portaflow-base:bookworm"
CORES = ("hep", "radio")


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/containers/" in str(item.fspath):
            item.add_marker(pytest.mark.podman)


@functools.cache
def _podman_problem() -> str | None:
    if shutil.which("podman") is None:
        return "podman is not installed (run `bash tests/containers/podman.sh up` as root)"
    info = subprocess.run(["podman", "info", "--format", "{{.Host.OCIRuntime.Name}}"], capture_output=True, text=True)
    if info.returncode != 0:
        return f"podman does not work here: {info.stderr.strip().splitlines()[-1:]}"
    return None


@pytest.fixture(scope="session")
def podman() -> str:
    problem = _podman_problem()
    if problem:
        unavailable(problem)
    return "podman"


@pytest.fixture(scope="session")
def base_image(podman, tmp_path_factory) -> str:
    """The local Debian base (`portaflow containers base`), built if absent: the small image with bash that tests
    needing just some container run, and the base of the cores' images. Tests that need only the base may run on
    another xdist worker than the images' (test_podman_leftovers.py): a lock in the directory the workers share
    makes one build it while the others wait (two builds of one tag at once would race)."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent
    with open(root / "podman-base.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if subprocess.run(["podman", "image", "exists", BASE]).returncode != 0:
            result = run_portaflow("containers", "base", "--tag", BASE, timeout=900)
            assert result.returncode == 0, result.stderr
    return BASE


@pytest.fixture(scope="session")
def core_images(base_image) -> dict[str, str]:
    """Build the base (if absent) and both cores' images from this checkout; return name -> image id.

    `containers build` keeps an image already built from the same recipe, base and wheels (this checkout's
    portaflow wheel among them), so a rerun on an unchanged checkout builds nothing; any change to the sources
    rebuilds. Which of the two happened is printed (pytest -s shows it; CI's log has the fixture's time).
    """
    built = {}
    for name in CORES:
        result = run_portaflow("containers", "build", name, "--runtime", "podman", "--base", BASE, timeout=1200)
        assert result.returncode == 0, result.stderr
        print(result.stdout.strip())
        built[name] = result.stdout.split("digest ")[-1].strip()
    return built
