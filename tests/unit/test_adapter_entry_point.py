"""A scheduler adapter from another package: installed with pip, found through the `portaflow.schedulers` entry
point group, and used for a whole workflow (plan, render with both engines, a run with each) without portaflow
knowing its name."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from testlib import ROOT, run_portaflow

# The module-scoped fixtures render or run once per test process: one xdist worker takes the whole module.
pytestmark = pytest.mark.xdist_group("adapter-entry-point")

PACKAGE = ROOT / "tests" / "data" / "adapter_pkg"
WORDFREQ = ROOT / "workflows" / "examples" / "wordfreq.yaml"
SITE = """\
name: toy-site
description: a site whose scheduler comes from the portaflow-toyq package
scheduler: toyq
partitions:
  batch: {max_walltime: 1h, cores_per_node: 2, memory_per_node: 4GiB, default: true}
"""


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> dict[str, str]:
    """pip installs the adapter package into a directory of its own; the environment puts it on the path."""
    target = tmp_path_factory.mktemp("toyq-site")
    source = tmp_path_factory.mktemp("toyq-src") / "adapter_pkg"
    shutil.copytree(PACKAGE, source)  # a build writes build/ and *.egg-info beside the sources: not in the checkout
    result = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                             "--no-index", "--target", str(target), str(source)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert list(target.glob("portaflow_toyq-*.dist-info/entry_points.txt")), "pip wrote no entry point metadata"
    return {"PYTHONPATH": os.pathsep.join([str(target), *filter(None, [os.environ.get("PYTHONPATH")])])}


@pytest.fixture
def site(tmp_path) -> Path:
    path = tmp_path / "toy-site.yaml"
    path.write_text(SITE)
    return path


def test_unknown_without_the_package(site):
    result = run_portaflow("plan", str(WORDFREQ), "--site", str(site))
    assert result.returncode == 2
    assert f"{site}:3:" in result.stderr and "unknown scheduler 'toyq'" in result.stderr and "Traceback" not in result.stderr


def test_plan_uses_the_installed_adapters_directives(installed, site):
    result = run_portaflow("plan", str(WORDFREQ), "--site", str(site), "--param", "shards=2", env=installed)
    assert result.returncode == 0, result.stderr
    assert "--toy-queue=batch" in result.stdout and "--toy-cores=1" in result.stdout


def test_extra_directives_may_not_repeat_the_adapters_managed_flags(installed, tmp_path):
    path = tmp_path / "toy-bad.yaml"
    path.write_text(SITE + "extra_directives: ['--toy-mem=1G']\n")
    result = run_portaflow("validate", str(path), env=installed)
    assert result.returncode == 2 and "sets --toy-mem, which portaflow manages" in result.stderr


@pytest.mark.parametrize("engine", ["parsl", "snakemake"])
def test_render_and_run_with_the_installed_adapter(installed, site, tmp_path, engine):
    rendered = run_portaflow("render", str(WORDFREQ), "--site", str(site), "--engine", engine, "--param", "shards=2",
                             "-o", str(tmp_path / "render"), "--workdir", str(tmp_path / "work"), env=installed)
    assert rendered.returncode == 0, rendered.stderr
    result = run_portaflow("run", str(WORDFREQ), "--site", str(site), "--engine", engine, "--param", "shards=2",
                           "--workdir", str(tmp_path / "work"), env=installed)
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "work" / "results" / "top_words.json").read_text()), "the run left no result"
