"""Where portaflow finds its shipped site profiles, workflows and container recipes: in the source
checkout here, inside the package once installed (scripts/check_wheel.sh checks a real wheel)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from portaflow import shipped
from portaflow.errors import InputError
from portaflow.spec.loading import site_search_path

from testlib import ROOT, run_portaflow


def test_the_checkout_is_where_shipped_files_are_found_in_development():
    assert shipped.source_checkout() == ROOT
    assert shipped.shipped_root() == ROOT
    assert shipped.site_profiles() == sorted((ROOT / "site_profiles").glob("*.yaml"))
    assert shipped.workflows() == sorted((ROOT / "workflows").glob("*/*.yaml"))
    assert shipped.containers_dir() == ROOT / "containers"
    assert site_search_path()[-1] == ROOT / "site_profiles"


def _installed_copy(site: Path, with_shipped: bool) -> None:
    """The package as a wheel lays it out: the code, and (with_shipped) the data under portaflow/_shipped/."""
    shutil.copytree(ROOT / "src" / "portaflow", site / "portaflow", ignore=shutil.ignore_patterns("__pycache__"))
    if with_shipped:
        for kind in shipped.KINDS:
            shutil.copytree(ROOT / kind, site / "portaflow" / "_shipped" / kind)


def _run_installed(site: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(site), "XDG_CONFIG_HOME": str(cwd / "config")}
    env.pop("PORTAFLOW_SITE_PATH", None)
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_an_installed_package_reads_its_shipped_files_from_inside_itself(tmp_path):
    site = tmp_path / "site-packages"
    _installed_copy(site, with_shipped=True)
    code = ("from portaflow import shipped; import json; print(json.dumps([str(shipped.shipped_root()), "
            "str(shipped.source_checkout()), str(shipped.find_workflow('wordfreq')), str(shipped.containers_dir())]))")
    result = _run_installed(site, tmp_path, "-c", code)
    assert result.returncode == 0, result.stderr
    inside = site / "portaflow" / "_shipped"
    assert json.loads(result.stdout) == [str(inside), "None", str(inside / "workflows" / "examples" / "wordfreq.yaml"),
                                         str(inside / "containers")]
    # the CLI's site lookup and shipped-workflow names, run from a directory that is not the checkout
    result = _run_installed(site, tmp_path, "-m", "portaflow", "plan", "examples/wordfreq", "--site", "slurm-local", "--json")
    assert result.returncode == 0, result.stderr
    assert len(json.loads(result.stdout)) == 3 + 3 + 1


def test_a_package_without_its_shipped_files_says_so(tmp_path):
    site = tmp_path / "site-packages"
    _installed_copy(site, with_shipped=False)
    result = _run_installed(site, tmp_path, "-m", "portaflow", "sites")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "portaflow's shipped files (site profiles, workflows, container recipes) are missing" in result.stderr


def test_shipped_workflows_are_named_by_folder_and_file(monkeypatch, tmp_path):
    wordfreq = ROOT / "workflows" / "examples" / "wordfreq.yaml"
    for name in ("examples/wordfreq", "examples/wordfreq.yaml", "wordfreq", "wordfreq.yaml"):
        assert shipped.find_workflow(name) == wordfreq, name
    assert shipped.workflow_name(wordfreq) == "examples/wordfreq"
    assert shipped.find_workflow("nosuch") is None
    assert shipped.find_workflow("workflows/examples/wordfreq") is None
    # a bare name two domains share is refused rather than guessed
    for domain in ("a", "b"):
        (tmp_path / "workflows" / domain).mkdir(parents=True)
        (tmp_path / "workflows" / domain / "same.yaml").write_text("name: same\n")
    monkeypatch.setattr(shipped, "shipped_root", lambda: tmp_path)
    assert shipped.find_workflow("a/same") == tmp_path / "workflows" / "a" / "same.yaml"
    with pytest.raises(InputError, match="'same' names several shipped workflows: a/same, b/same"):
        shipped.find_workflow("same")


def test_an_existing_file_wins_over_a_shipped_name(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    assert shipped.resolve_workflow("wordfreq") == str(ROOT / "workflows" / "examples" / "wordfreq.yaml")
    Path("wordfreq").write_text("name: mine\n")
    assert shipped.resolve_workflow("wordfreq") == "wordfreq"
    assert shipped.resolve_workflow("nosuch.yaml") == "nosuch.yaml"


def test_cli_lists_shipped_workflows_and_runs_them_by_name(tmp_path):
    result = run_portaflow("workflows")
    assert result.returncode == 0, result.stderr
    for path in shipped.workflows():
        assert shipped.workflow_name(path) in result.stdout
    by_name = run_portaflow("plan", "wordfreq", "--preset", "small", "--json", cwd=tmp_path)
    by_path = run_portaflow("plan", str(ROOT / "workflows" / "examples" / "wordfreq.yaml"), "--preset", "small", "--json")
    assert by_name.returncode == 0, by_name.stderr
    assert json.loads(by_name.stdout) == json.loads(by_path.stdout)
    missing = run_portaflow("plan", "nosuch", cwd=tmp_path)
    assert missing.returncode == 2 and "nosuch: file not found" in missing.stderr


def test_pyproject_packages_every_module_and_every_shipped_file():
    """The wheel's package list is explicit (package-dir maps the shipped folders): a package added under
    src/portaflow but not listed would be missing from the wheel, and a package-data pattern that matches
    nothing ships nothing."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    # every package under src/: portaflow's and the top-level ones Snakemake discovers by name (its logger plugin)
    on_disk = {".".join(p.parent.relative_to(ROOT / "src").parts) for p in (ROOT / "src").rglob("__init__.py")
               if "egg-info" not in str(p)}
    assert on_disk <= listed, f"add to [tool.setuptools] packages: {sorted(on_disk - listed)}"
    package_dir = config["package-dir"]
    assert {package_dir[f"portaflow._shipped.{kind}"] for kind in shipped.KINDS} == set(shipped.KINDS)
    for package, patterns in config["package-data"].items():
        folder = ROOT / package_dir[package] if package in package_dir else ROOT / "src" / package.replace(".", "/")  # a package's own data
        for pattern in patterns:
            assert list(folder.glob(pattern)), f"package-data {package}: {pattern} matches nothing in {folder}"
    for kind in shipped.KINDS:  # every shipped file is covered by a pattern
        patterns = config["package-data"][f"portaflow._shipped.{kind}"]
        covered = {p for pattern in patterns for p in (ROOT / kind).glob(pattern)}
        files = {p for p in (ROOT / kind).rglob("*") if p.is_file()}
        assert files == covered, f"{kind}: not shipped: {sorted(str(p) for p in files - covered)}"
