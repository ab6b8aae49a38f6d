"""The fault-injection harness (issue 14) shared by tests/e2e/test_fault_injection.py (local site) and
tests/slurm/test_fault_injection_slurm.py (the SLURM test cluster).

Workflow tests/data/workflows/faults.yaml: 11 tasks over 5 levels (seed, a fan-out of 7 shards, a gather, a Dask
step, a final step). The driver (`portaflow run`, a real subprocess) is killed with a signal at a *point*, found by
waiting on the task records the driver writes (never on sleeps):

- `start`: the run directory exists, no task is recorded yet;
- `fan-out`: at least two shards recorded by this run;
- `dask`: the Dask step runs: its log in this run's directory says its process has started making its Dask cluster
  (`dask cluster: ...`, written by portaflow.runtime.dask_cluster before the cluster starts, so the step is running
  whatever the site; waiting for it is bounded by the case's timeout);
- `end`: the final task is recorded (every task finished; the driver is ending).

Why a *segment* shares work: the run after a killed one is itself killed at the next point, so one segment of
five runs tests four (signal, point) cases, each case checked on the run that follows it (nothing it had recorded
is recomputed; the killed run's processes and scheduler jobs are gone), and the segment's last run must succeed
and leave the outputs of an undisturbed run. A segment starts with a new `salt` parameter, which makes every task
stale without changing any output.

Which cases run: on the local site the full grid for each engine (`rotated_plans`: three segments with the signals
rotated, every (signal, point) pair once, 12 cases in 15 runs). On the SLURM test cluster, where a run costs minutes,
one segment per engine kills a run at every point (`every_point_plans`): each engine meets every signal and every
point, and the two engines never repeat a pair (8 of the 12); PORTAFLOW_FAULTS_FULL=1 runs the full grid there too,
PORTAFLOW_FAULTS_SEED=N changes the seed.
"""

from __future__ import annotations

import fcntl
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from portaflow.compare import compare_workdirs
from portaflow.plan import make_plan
from portaflow.spec.loading import load_site, load_workflow

from testlib import ROOT

WORKFLOW = ROOT / "tests" / "data" / "workflows" / "faults.yaml"
POINTS = ("start", "fan-out", "dask", "end")
SIGNALS = (signal.SIGKILL, signal.SIGTERM, signal.SIGINT)
TASKS = 11


@dataclass
class Case:
    """One (engine, signal, point) case and what was measured on it."""

    engine: str
    sig: signal.Signals
    point: str
    exit_code: int | None = None
    done_at_kill: int = 0
    recomputed: int = 0
    processes_left: int = 0
    jobs_left: int = 0
    differing: int | None = None
    rerun_ok: bool | None = None
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def row(self) -> str:
        return (f"| {self.engine} | {self.sig.name} | {self.point} | {self.exit_code} | {self.done_at_kill}/{TASKS} | {self.recomputed} | "
                f"{self.differing} | {self.processes_left} | {self.jobs_left} | {'yes' if self.rerun_ok else 'NO'} | {self.seconds:.0f} |")


HEADER = ("| engine | signal | killed at | exit | tasks recorded at kill | finished tasks recomputed | outputs differing | "
          "processes of the run left | scheduler jobs of the run left | rerun succeeds | s |\n"
          "|---|---|---|---|---|---|---|---|---|---|---|")


def table(cases: list[Case]) -> str:
    return "\n".join([HEADER, *(c.row() for c in cases)])


def report(cases: list[Case], summary: str) -> None:
    """Print the figures (pytest -s shows them) and append them to $PORTAFLOW_FAULT_TABLE when it is set."""
    text = table(cases) + f"\n\n{summary}"
    print("\n" + text)
    if os.environ.get("PORTAFLOW_FAULT_TABLE"):
        with open(os.environ["PORTAFLOW_FAULT_TABLE"], "a") as f:
            f.write(text + "\n\n")


def state_dir(workdir: Path) -> Path:
    return workdir / ".portaflow" / "state"


def records(workdir: Path) -> dict[str, str | None]:
    """Task id -> the run that recorded it, for every task record in the work directory."""
    out = {}
    for path in state_dir(workdir).glob("*.json"):
        try:
            out[path.stem] = json.loads(path.read_text()).get("run")
        except (OSError, ValueError):
            continue  # being replaced this instant: the next look sees it
    return out


def run_ids(workdir: Path) -> set[str]:
    runs = workdir / ".portaflow" / "runs"
    return {p.name for p in runs.iterdir() if p.is_dir() and not p.is_symlink()} if runs.is_dir() else set()


def reached(point: str, workdir: Path, run_id: str) -> bool:
    """Whether the run has reached the kill point (read from the task records only)."""
    recs = records(workdir)
    if point == "start":
        return True
    if point == "fan-out":
        return sum(1 for task, run in recs.items() if task.startswith("shard") and run == run_id) >= 2
    if point == "dask":
        return dask_step_started(workdir, run_id)
    return "final" in recs


DASK_STARTED = "portaflow: dask cluster:"
"""The step log's line that portaflow.runtime.dask_cluster writes when the Dask step's process starts its cluster."""


def dask_step_started(workdir: Path, run_id: str) -> bool:
    """Whether this run's Dask step (`survey`) is running: its log in this run's directory has the line the step's
    own process writes before it starts its Dask cluster, and the step is not recorded yet (still running)."""
    try:
        text = (workdir / ".portaflow" / "runs" / run_id / "logs" / "survey.log").read_text(errors="replace")
    except OSError:
        return False
    return DASK_STARTED in text and "survey" not in records(workdir)


def processes_of_run(run_id: str, session: int | None = None) -> list[int]:
    """Processes of this user whose environment carries the run's id (every process a run starts inherits it, and so
    do SLURM jobs on this host: `session` keeps only those in the driver's session)."""
    needle = f"PORTAFLOW_RUN_ID={run_id}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if needle in (entry / "environ").read_bytes().split(b"\0") and (session is None or os.getsid(int(entry.name)) == session):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def wait_gone(run_id: str, seconds: float) -> list[int]:
    deadline = time.monotonic() + seconds
    left = processes_of_run(run_id)
    while left and time.monotonic() < deadline:
        time.sleep(0.2)
        left = processes_of_run(run_id)
    return left


def kill_all(run_id: str, session: int | None = None) -> None:
    """SIGKILL the run's processes (in `session` only, when given)."""
    for pid in processes_of_run(run_id, session):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def command(engine: str, site: str, workdir: Path, salt: int, pause: float) -> list[str]:
    return [sys.executable, "-m", "portaflow", "run", str(WORKFLOW), "--engine", engine, "--site", site, "--workdir", str(workdir),
            "--param", f"salt={salt}", "--param", f"pause={pause}", "-q"]


@dataclass
class Killed:
    run_id: str
    exit_code: int
    recorded: dict[str, str | None]
    stderr: str


def run_and_kill(engine: str, site: str, workdir: Path, salt: int, pause: float, sig: signal.Signals, point: str,
                 timeout: float = 300) -> Killed:
    """Start a run, wait on the task records for `point`, send `sig` to the driver, wait for it to end."""
    before = run_ids(workdir)
    proc = subprocess.Popen(command(engine, site, workdir, salt, pause), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    deadline = time.monotonic() + timeout
    run_id = ""
    try:
        while time.monotonic() < deadline:
            if not run_id:
                new = run_ids(workdir) - before
                run_id = new.pop() if new else ""
            if run_id and reached(point, workdir, run_id):
                break
            if proc.poll() is not None:
                raise AssertionError(f"{engine}: the run ended ({proc.returncode}) before point {point}: {proc.stderr.read()[-3000:]}")
            time.sleep(0.05)
        else:
            raise AssertionError(f"{engine}: point {point} not reached in {timeout:.0f} s")
        proc.send_signal(sig)
        # not communicate() for SIGKILL: the orphans it leaves still hold its stderr pipe
        proc.wait(timeout=180)
        stderr = proc.stderr.read() if sig != signal.SIGKILL else ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return Killed(run_id, proc.returncode, records(workdir), stderr)


def reference(workdir: Path, site: str, engine: str = "snakemake") -> Path:
    """One undisturbed run: what every disturbed one must end with."""
    result = subprocess.run(command(engine, site, workdir, 0, 0.0), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    return workdir


def shared_reference(root: Path) -> Path:
    """The undisturbed run of the whole pytest session, made once under `root` (the session's base temporary
    directory's parent, which every xdist worker shares): the local and the SLURM fault tests compare with the
    same one. A lock file makes the other workers wait for it instead of making their own; a finished run is
    marked by `done`, so an interrupted one is made again."""
    workdir = root / "faults-reference"
    with open(root / "faults-reference.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (workdir / "done").exists():
            reference(workdir, "local")
            (workdir / "done").write_text("")
    return workdir


def differing(reference_dir: Path, workdir: Path, site: str) -> list[str]:
    plan = make_plan(load_workflow(WORKFLOW).workflow, load_site(site, environ={}).site)
    return [f"{path}: {verdict}" for path, verdict in compare_workdirs(plan, reference_dir, workdir) if not verdict.same]


def segment(engine: str, site: str, workdir: Path, salt: int, pause: float, plan: list[tuple[signal.Signals, str]],
            reference_dir: Path, jobs_left: Callable[[str], list[str]] = lambda run_id: [], timeout: float = 300) -> list[Case]:
    """Kill successive runs at the planned (signal, point)s, then run once more undisturbed; measure every case."""
    cases: list[Case] = []
    previous: tuple[Case, Killed] | None = None
    ours: set[str] = set()  # this segment's runs: records older than the segment are stale (another salt) and rerun
    for sig, point in [*plan, (None, None)]:
        began = time.monotonic()
        if sig is None:
            final = subprocess.run(command(engine, site, workdir, salt, pause), capture_output=True, text=True, timeout=timeout)
            after, this_run = records(workdir), None
            ok = final.returncode == 0
            if not ok:
                cases[-1].notes.append(f"final rerun exited {final.returncode}: {final.stderr[-2000:]}")
        else:
            killed = run_and_kill(engine, site, workdir, salt, pause, sig, point, timeout)
            after, this_run = killed.recorded, killed.run_id
            ours.add(this_run)
            ok = None
        if previous is not None:  # the case before this run: judged on what this run did
            case, old = previous
            case.recomputed = sum(1 for task, run in old.recorded.items() if run in ours and after.get(task) != run)
            case.processes_left = max(case.processes_left, len(wait_gone(old.run_id, 10)))
            case.jobs_left = len(jobs_left(old.run_id))
            kill_all(old.run_id)
        if sig is None:
            diff = differing(reference_dir, workdir, site) if ok else ["the final rerun failed"]
            for case in cases:
                case.differing, case.rerun_ok = len(diff), ok
            if diff and cases:
                cases[-1].notes += diff
            break
        case = Case(engine, sig, point, killed.exit_code, sum(1 for run in killed.recorded.values() if run == this_run),
                    seconds=time.monotonic() - began)
        if sig != signal.SIGKILL and killed.exit_code not in (128 + sig, 0):
            case.notes.append(f"exit {killed.exit_code}, expected {128 + sig} (or 0 when it had finished): {killed.stderr[-2000:]}")
        if sig != signal.SIGKILL:  # the driver itself must have stopped everything it started
            case.processes_left = len(wait_gone(killed.run_id, 10))
        if "Traceback" in killed.stderr:
            case.notes.append(f"traceback: {killed.stderr[-2000:]}")
        cases.append(case)
        previous = (case, killed)
    return cases


def rotated_plans() -> list[list[tuple[signal.Signals, str]]]:
    """Three segments; in segment j, point p gets signal (j + p) mod 3: every (signal, point) pair once."""
    return [[(SIGNALS[(j + p) % 3], point) for p, point in enumerate(POINTS)] for j in range(3)]


def every_point_plans(engines: tuple[str, str], seed: int) -> dict[str, list[list[tuple[signal.Signals, str]]]]:
    """One segment per engine that kills a run at every point, for the SLURM test cluster (where a run costs minutes):
    engine i's point p gets signal perm[(p + i) mod 3], so each engine meets every signal and every point, and the two
    engines never repeat a (signal, point) pair (8 of the 12; SIGKILL while a job runs is also its own test). The seed
    permutes the signals."""
    perm = random.Random(seed).sample(SIGNALS, len(SIGNALS))
    return {engine: [[(perm[(p + i) % 3], point) for p, point in enumerate(POINTS)]] for i, engine in enumerate(engines)}


def slurm_plans_for(engines: tuple[str, str]) -> tuple[dict[str, list[list[tuple[signal.Signals, str]]]], str]:
    """The segments each engine runs on SLURM (the full grid with PORTAFLOW_FAULTS_FULL=1), and a line that says which."""
    if os.environ.get("PORTAFLOW_FAULTS_FULL") == "1":
        return {engine: rotated_plans() for engine in engines}, "full grid (PORTAFLOW_FAULTS_FULL=1): every signal at every point on every engine"
    seed = int(os.environ.get("PORTAFLOW_FAULTS_SEED", "14"))
    return every_point_plans(engines, seed), (f"seed {seed} (PORTAFLOW_FAULTS_SEED=N for another): each engine every signal and every "
                                              "point, 8 distinct pairs together; PORTAFLOW_FAULTS_FULL=1 runs the full grid")


def failures(cases: list[Case]) -> list[str]:
    bad = []
    for c in cases:
        what = f"{c.engine} {c.sig.name} at {c.point}"
        if c.recomputed or c.processes_left or c.jobs_left or c.differing or not c.rerun_ok or c.notes:
            bad.append(f"{what}: recomputed {c.recomputed}, processes left {c.processes_left}, jobs left {c.jobs_left}, "
                       f"outputs differing {c.differing}, rerun ok {c.rerun_ok}; {' | '.join(c.notes)}")
    return bad


def check_segments(engine: str, site: str, root: Path, plans: list[list[tuple[signal.Signals, str]]], reference_dir: Path,
                   which: str, **options: object) -> None:
    """Run the segments side by side, each in a work directory of its own under `root` with a salt of its own (much
    of a run's time is waiting), print the figures (also of a failed try), and fail on any case that lost work."""
    began = time.monotonic()
    cases: list[Case] = []
    try:
        with ThreadPoolExecutor(max_workers=len(plans)) as pool:
            futures = [pool.submit(segment, engine, site, root / f"work{salt}", salt, 1.0, plan, reference_dir, **options)
                       for salt, plan in enumerate(plans, start=1)]
            for future in futures:
                cases += future.result()
    finally:
        report(cases, f"{engine} on {site}: {len(cases)} cases in {time.monotonic() - began:.0f} s; {which}")
    assert len(cases) == sum(len(plan) for plan in plans), f"{len(cases)} cases measured of {sum(len(plan) for plan in plans)}"
    assert not failures(cases), "\n".join(failures(cases))
