"""Fault injection on the local site (issue 14): both engines, the driver killed with SIGKILL, SIGTERM and SIGINT at
every point (before any task finished, mid-fan-out, during the Dask step, after all finished), then rerun.

By default a seeded covering design runs (tests/faultinjection.py, `covering_plans`): each engine gets a different
half of the 3 signals x 4 points (two segments of three kills and a rerun), and the two engines together cover every
(signal, point) pair. PORTAFLOW_FAULTS_FULL=1 runs every combination on both engines (three segments of five runs
per engine); PORTAFLOW_FAULTS_SEED=N draws another design. The figures are printed as a table with the seed (`-s`
shows it; it is also written to $PORTAFLOW_FAULT_TABLE when set) and asserted: finished tasks recomputed 0, outputs
differing from the undisturbed run (one per session, shared with the SLURM tests) 0, processes of the killed run
left 0, the rerun succeeds. docs/failures.md records them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from faultinjection import POINTS, SIGNALS, failures, plans_for, report, segment
from testlib import ROOT, run_portaflow

ENGINES = ("parsl", "snakemake")
PLANS, WHICH = plans_for(ENGINES)


def test_the_engines_together_cover_every_signal_at_every_point():
    """The sample is a covering design, whatever the seed: no (signal, point) pair is left out, none twice."""
    cases = [case for plans in PLANS.values() for plan in plans for case in plan]
    grid = [(sig, point) for sig in SIGNALS for point in POINTS]
    assert sorted(cases) == sorted(grid * (len(ENGINES) if os.environ.get("PORTAFLOW_FAULTS_FULL") == "1" else 1))
    for plans in PLANS.values():  # within a segment, each kill point is further on than the one before
        for plan in plans:
            assert [POINTS.index(p) for _, p in plan] == sorted({POINTS.index(p) for _, p in plan})


@pytest.mark.parametrize("engine", ENGINES)
def test_every_signal_at_every_point_loses_no_finished_work(tmp_path, engine, fault_reference):
    began = time.monotonic()
    cases = []
    plans = PLANS[engine]
    try:  # the segments side by side, each in a work directory of its own: much of a run's time is waiting
        with ThreadPoolExecutor(max_workers=len(plans)) as pool:
            futures = [pool.submit(segment, engine, "local", tmp_path / f"work{salt}", salt, 1.0, plan, fault_reference)
                       for salt, plan in enumerate(plans, start=1)]
            for future in futures:
                cases += future.result()
    finally:  # the figures, also of a failed try
        report(cases, f"{engine} on local: {len(cases)} cases in {time.monotonic() - began:.0f} s; {WHICH}")
    assert len(cases) == sum(len(plan) for plan in plans)
    assert not failures(cases), "\n".join(failures(cases))


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
