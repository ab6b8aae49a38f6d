"""Fault injection on the local site (issue 14): both engines, the driver killed with SIGKILL, SIGTERM and SIGINT at
every point (before any task finished, mid-fan-out, during the Dask step, after all finished), then rerun.

Every (signal, point) pair runs on each engine (tests/faultinjection.py, `rotated_plans`: three segments of four
kills and a rerun, side by side). The figures are printed as a table (`-s` shows it; it is also written to
$PORTAFLOW_FAULT_TABLE when set) and asserted: finished tasks recomputed 0, outputs differing from the undisturbed run
(one per session, shared with the SLURM tests) 0, processes of the killed run left 0, the rerun succeeds.
docs/failures.md records them."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from faultinjection import POINTS, SIGNALS, check_segments, every_point_plans, rotated_plans
from testlib import ROOT, run_portaflow

ENGINES = ("parsl", "snakemake")


def test_each_engine_runs_every_signal_at_every_point():
    """The local plan is the full grid: every (signal, point) pair once, and within a segment each kill point further
    on than the one before (a run after a kill must be able to reach the next point)."""
    plans = rotated_plans()
    assert sorted(pair for plan in plans for pair in plan) == sorted((sig, point) for sig in SIGNALS for point in POINTS)
    for plan in plans:
        assert [point for _, point in plan] == list(POINTS)


def test_on_slurm_each_engine_meets_every_signal_and_every_point_and_no_pair_twice():
    """The SLURM design (tests/slurm/test_fault_injection_slurm.py), for several seeds: one segment per engine in
    kill-point order, every signal and every point per engine, no (signal, point) pair on both engines."""
    for seed in range(20):
        plans = every_point_plans(ENGINES, seed)
        pairs = [pair for engine in ENGINES for plan in plans[engine] for pair in plan]
        assert len(pairs) == len(set(pairs)) == 2 * len(POINTS), (seed, pairs)
        for engine in ENGINES:
            assert [point for plan in plans[engine] for _, point in plan] == list(POINTS)
            assert {sig for plan in plans[engine] for sig, _ in plan} == set(SIGNALS)


@pytest.mark.parametrize("engine", ENGINES)
def test_every_signal_at_every_point_loses_no_finished_work(tmp_path, engine, fault_reference):
    check_segments(engine, "local", tmp_path, rotated_plans(), fault_reference, "every signal at every point")


FAILS_HALFWAY = ROOT / "tests" / "data" / "workflows" / "fails_halfway.yaml"


@pytest.mark.parametrize("engine", ENGINES)
def test_a_step_failing_halfway_leaves_no_partial_output_and_the_rerun_resumes_from_it(tmp_path, engine):
    """The step writes part of its output, then exits 1: its partial output goes, the next run (same command) runs it
    and what depends on it, and nothing upstream reruns."""
    args = ("run", str(FAILS_HALFWAY), "--engine", engine, "--workdir", str(tmp_path))
    failed = run_portaflow(*args, env={"FAULTS_FAIL": "1"}, timeout=300)
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert (tmp_path / "one.txt").exists() and not (tmp_path / "two.txt").exists(), "the failed step's partial output survived"
    assert not (tmp_path / "three.txt").exists()
    first = json.loads((tmp_path / ".portaflow" / "state" / "first.json").read_text())
    first_stat = os.stat(tmp_path / "one.txt")
    env = {k: v for k, v in os.environ.items() if k != "FAULTS_FAIL"}
    rerun = subprocess.run([sys.executable, "-m", "portaflow", *args], env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    tasks = json.loads((tmp_path / ".portaflow" / "runs" / "latest" / "manifest.json").read_text())["tasks"]
    assert {t: s["status"] for t, s in tasks.items()} == {"first": "up to date", "broken": "ran", "last": "ran"}
    assert json.loads((tmp_path / ".portaflow" / "state" / "first.json").read_text()) == first, "the upstream step was recomputed"
    assert (os.stat(tmp_path / "one.txt").st_ino, os.stat(tmp_path / "one.txt").st_mtime_ns) == (first_stat.st_ino, first_stat.st_mtime_ns)
    assert (tmp_path / "two.txt").read_text() == "one\npartial\ndone\n" == (tmp_path / "three.txt").read_text()
