"""The run lifecycle with real engines on the local site: --fail-fast (both engines), and --force/--until, runs, clean
and a run with nothing to do (Snakemake, the quicker engine here; the selection is the driver's, shared by both)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from testlib import ROOT, run_portaflow

DATA = ROOT / "tests" / "data" / "workflows"


def manifest(workdir: Path) -> dict:
    return json.loads((workdir / ".portaflow" / "runs" / "latest" / "manifest.json").read_text())


@pytest.mark.parametrize("engine", ["parsl", "snakemake"])
def test_fail_fast_starts_nothing_after_the_first_failure_and_keeps_what_finished(tmp_path, engine):
    result = run_portaflow("run", str(DATA / "fail_fast.yaml"), "--engine", engine, "--workdir", str(tmp_path), "--fail-fast", "--cores", "2",
                           timeout=300)
    assert result.returncode == 1, result.stdout + result.stderr
    tasks = manifest(tmp_path)["tasks"]
    assert tasks["broken"]["status"] == "failed" and tasks["slowish"]["status"] == "ran", tasks
    assert tasks["after"]["status"] != "ran" and "(--fail-fast)" in tasks["after"]["error"], tasks
    assert not (tmp_path / "after.txt").exists() and not (tmp_path / "broken.txt").exists()
    assert (tmp_path / "slowish.txt").read_text() == "slowish\n", "the task running when the failure came was not kept"
    assert (tmp_path / ".portaflow" / "state" / "slowish.json").exists()
    assert tasks["broken"]["error"].startswith("the command failed"), tasks


def test_force_until_runs_and_clean_with_snakemake(tmp_path):
    chain = str(DATA / "chain.yaml")

    def run(*extra: str):
        result = run_portaflow("run", chain, "--engine", "snakemake", "--workdir", str(tmp_path), *extra, timeout=300)
        assert result.returncode == 0, result.stdout + result.stderr
        return result

    run()
    runs_dir = tmp_path / ".portaflow" / "runs"
    first_run = os.readlink(runs_dir / "latest")
    again = run()
    assert "nothing to do" in again.stdout and sorted(os.listdir(runs_dir)) == sorted([first_run, "latest"]), "a no-op run made a run directory"
    before = {p: (tmp_path / p).stat().st_mtime_ns for p in ("first.txt", "middle.txt", "last.txt", "alone.txt")}
    run("--force", "first", "--until", "middle")
    tasks = {name: info["status"] for name, info in manifest(tmp_path)["tasks"].items()}
    assert tasks == {"first": "ran", "middle": "ran", "last": "not requested", "alone": "up to date"}, tasks
    assert (tmp_path / "last.txt").stat().st_mtime_ns == before["last.txt"] and (tmp_path / "first.txt").stat().st_mtime_ns != before["first.txt"]
    # middle wrote the same content again under the same signature: last, which read it, is still up to date.
    dry = run("-n")
    assert "dry run: 0 of 4 task(s) would run" in dry.stdout, dry.stdout
    listed = run_portaflow("runs", "--workdir", str(tmp_path), "--json")
    assert listed.returncode == 0, listed.stderr
    runs = json.loads(listed.stdout)
    assert [r["state"] for r in runs] == ["succeeded", "succeeded"] and runs[1]["tasks"] == {"ran": 2, "up to date": 1, "not requested": 1}, runs
    cleaned = run_portaflow("clean", "--workdir", str(tmp_path), "--keep", "1")
    assert cleaned.returncode == 0 and f"removed {runs_dir / first_run}" in cleaned.stdout, cleaned.stdout + cleaned.stderr
    assert sorted(os.listdir(runs_dir)) == sorted([runs[1]["run_id"], "latest"])
