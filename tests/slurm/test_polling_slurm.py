"""Polling etiquette on the real cluster: a run asks SLURM about all its jobs with one batched query per
polling interval, so its status queries grow with run time, never with the number of jobs.

How it is measured, twice:
- at the daemons: slurmctld counts every RPC it serves by type (`sdiag`), and so does slurmdbd
  (`sacctmgr show stats`), where `sacct` queries land. The test reads both before and after a run of 20
  parallel jobs (tests/data/workflows/fanout.yaml). Those counters are cluster-wide, though: other users
  of the shared test cluster (other test sessions polling sacct) add to them.
- at the client: the run gets a PATH whose first directory holds a stand-in for each SLURM command that
  notes its arguments (and whether it ran inside a job) before running the real one. That count is the
  run's own, and each status command it notes is one status RPC at a daemon, so the daemon-side growth
  must be at least as large (which checks that the two measure the same thing).

Why the assertion can fail: the test runs at a polling interval long enough that the run spans fewer
polling intervals than it has jobs (checked first). A poller that asks about each job separately has to
ask at least once per job to learn that it ended, i.e. >= 20 queries; a batched poller asks at most once
per interval (plus a few one-off probes), which is then below 20. Parsl's blocks are jobs too: with
`parsl.max_blocks=20` each task gets a block of its own, so Parsl also has 20 jobs to watch.

Counters are compared, not reset (`sdiag -r`): the cluster is shared, and other readers may want them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from testlib import ROOT, run_portaflow

FANOUT = ROOT / "tests" / "data" / "workflows" / "fanout.yaml"
JOBS = 20
INTERVAL_S = 20
"""The polling interval for these runs: long enough that a run spans fewer intervals than it has jobs."""
ONE_OFF_QUERIES = 3
"""Status queries a run may make outside its polling loop: portaflow's accounting probe, Parsl's sacct probe
when it creates a provider, one last poll while shutting down."""

STATUS_RPCS = frozenset({
    # slurmctld: squeue, `scontrol show job`, and sacct when there is no slurmdbd
    "REQUEST_JOB_INFO", "REQUEST_JOB_INFO_SINGLE", "REQUEST_JOB_USER_INFO", "REQUEST_JOB_STEP_INFO",
    # slurmdbd: sacct
    "DBD_GET_JOBS_COND",
})
"""RPC types that ask about the state of jobs (sdiag / sacctmgr show stats names)."""

CLIENT_COMMANDS = ("sacct", "squeue", "scontrol", "sinfo", "sacctmgr", "sbatch", "scancel", "srun", "sstat")


def install_client_log(bin_dir: Path, log: Path) -> None:
    """Stand-ins for the SLURM commands in bin_dir: each appends `JOBID<TAB>command args` to log, then runs
    the real command (JOBID is empty outside a job, where the engines' own polling happens)."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    for name in CLIENT_COMMANDS:
        real = shutil.which(name)
        if real is None:
            continue
        shim = bin_dir / name
        shim.write_text(f'#!/bin/sh\nprintf \'%s\\t%s\\n\' "${{SLURM_JOB_ID:-}}" "{name} $*" >> {log}\nexec {real} "$@"\n')
        shim.chmod(0o755)


def client_status_commands(log: Path) -> list[str]:
    """The status commands the run itself made (outside jobs): sacct, squeue, `scontrol show job`."""
    commands = []
    for line in log.read_text().splitlines() if log.exists() else []:
        job, _, command = line.partition("\t")
        words = command.split()
        if not job and words and (words[0] in ("sacct", "squeue") or words[:3] == ["scontrol", "show", "job"]):
            commands.append(command)
    return commands


_RPC_LINE = re.compile(r"^\s+(\w+)\s+\(\s*\d+\)\s+count:(\d+)", re.M)


def rpc_counts(command: list[str]) -> dict[str, int]:
    """Per-RPC-type counts from `sdiag` or `sacctmgr show stats` (their 'by message type' section)."""
    proc = subprocess.run(command, capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, f"{' '.join(command)}: {proc.stderr.strip()}"
    section = proc.stdout.partition("statistics by message type")[2].partition("statistics by user")[0]
    assert section, f"no RPC statistics in the output of {' '.join(command)}:\n{proc.stdout}"
    return {name: int(count) for name, count in _RPC_LINE.findall(section)}


def daemon_rpcs(accounting: bool) -> dict[str, int]:
    """RPC counts of slurmctld, and of slurmdbd when accounting is on, as `daemon:TYPE` -> count."""
    counts = {f"slurmctld:{k}": v for k, v in rpc_counts(["sdiag"]).items()}
    if accounting:
        counts |= {f"slurmdbd:{k}": v for k, v in rpc_counts(["sacctmgr", "show", "stats"]).items()}
    return counts


def growth(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    """How much each counter grew (a counter that went down means someone reset it: the test cannot tell)."""
    grown = {k: after.get(k, 0) - before.get(k, 0) for k in sorted(set(before) | set(after))}
    reset = {k: v for k, v in grown.items() if v < 0}
    if reset:
        pytest.fail(f"RPC counters were reset during the run (sdiag -r or a daemon restart): {reset}")
    return {k: v for k, v in grown.items() if v}


def status_queries(grown: dict[str, int]) -> int:
    """How many of the grown RPCs asked about job states."""
    return sum(v for k, v in grown.items() if k.partition(":")[2] in STATUS_RPCS)


@pytest.mark.slow
@pytest.mark.xdist_group("slurm-polling")  # one after the other: two 20-job runs at once would double the wall time bound
@pytest.mark.parametrize("engine", ["parsl", "snakemake"])
def test_status_queries_grow_with_run_time_not_job_count(slurm_cluster, tmp_path: Path, engine: str):
    log = tmp_path / "slurm-commands.log"
    install_client_log(tmp_path / "bin", log)
    workdir = tmp_path / "run"
    before = daemon_rpcs(slurm_cluster.accounting)
    start = time.monotonic()
    result = run_portaflow(
        "run", str(FANOUT), "--site", "slurm-local", "--engine", engine, "--workdir", str(workdir),
        "--param", f"tasks={JOBS}", "--param", "seconds=2",
        "--site-set", f"polling.interval={INTERVAL_S}s", "--site-set", f"parsl.max_blocks={JOBS}",
        env={"PATH": f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}"}, timeout=540,
    )
    wall_s = time.monotonic() - start
    grown = growth(before, daemon_rpcs(slurm_cluster.accounting))
    assert result.returncode == 0, result.stdout + result.stderr
    assert sorted(p.name for p in (workdir / "nap").iterdir()) == sorted(f"{i}.txt" for i in range(JOBS))

    # The run really had JOBS jobs to watch (Parsl: one block per task), submitted through the stand-ins.
    jobs = json.loads((workdir / ".portaflow" / "runs" / "latest" / "manifest.json").read_text())["scheduler_jobs"]
    assert len(jobs) == JOBS, f"{engine} submitted {len(jobs)} SLURM jobs, expected {JOBS}: {jobs}"
    assert sum(line.partition("\t")[2].startswith("sbatch ") for line in log.read_text().splitlines()) == JOBS

    allowed = int(wall_s // INTERVAL_S) + 1 + ONE_OFF_QUERIES
    assert allowed < JOBS, f"the run took {wall_s:.0f} s, too long to tell batched polling from polling per job"
    mine = client_status_commands(log)
    at_daemons = status_queries(grown)
    print(f"\n{engine}: {JOBS} jobs, {wall_s:.0f} s, {len(mine)} status commands (allowed {allowed}), "
          f"{at_daemons} status RPCs at the daemons; RPCs: {grown}\nstatus commands: {mine}")
    assert len(mine) <= allowed, (
        f"{engine} made {len(mine)} job-status queries in {wall_s:.0f} s for {JOBS} jobs; at most one batched query "
        f"per {INTERVAL_S} s interval allows {allowed}: {mine}")
    assert at_daemons >= len(mine), f"the daemons saw fewer status RPCs ({grown}) than the run made: {mine}"
