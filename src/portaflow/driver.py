"""A whole run: preflight, choose stale tasks, hand them to an engine, record, write the manifest.

Both engines share this, so staleness, failure clean-up, the run directory and the manifest are
the same whichever engine runs the tasks.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import platform
import secrets
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

from portaflow.containers import container_call
from portaflow.containers.images import image_digest
from portaflow.containers.running import stop_run_containers
from portaflow.crate import CWL_DIR, write_crate
from portaflow.engines import engine_for
from portaflow.engines.base import Engine, RunContext, TaskOutcome, remove_outputs
from portaflow.engines.leftovers import RUN_ENV, stop_previous_run
from portaflow.engines.state import Signature, StateStore, WorkdirLock, produced_inputs, signature_details, staleness
from portaflow.errors import InputError, Interrupted, PortaflowError, SpecError
from portaflow.exchange.cwl_export import export_for_run
from portaflow.plan import make_plan
from portaflow.plan.model import Plan, Task
from portaflow.plan.planner import LocatedPlanError, located
from portaflow.preflight import preflight
from portaflow.progress import Progress
from portaflow.schedulers import adapter_for
from portaflow.schedulers.context import read_tries
from portaflow.spec.loading import LoadedSite, LoadedWorkflow, load_site
from portaflow.spec.variables import UnsetVariable, expand_here

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Selection:
    """Which tasks a run may run and which it must rerun, from the command line.

    `until`: steps, tasks or outputs; only they and what they need run (Snakemake's targets and --until).
    `force`: steps, tasks or outputs that run even when up to date, with everything downstream of them (--forcerun);
    `force_all`: every task (--forceall)."""

    until: tuple[str, ...] = ()
    force: tuple[str, ...] = ()
    force_all: bool = False


@dataclass
class RunResult:
    run_id: str
    run_dir: Path | None
    """None when there was nothing to do: such a run leaves no run directory."""
    workdir: Path
    ran: list[str]
    skipped: list[str]
    failed: dict[str, TaskOutcome] = field(default_factory=dict)
    manifest: dict[str, Any] = field(default_factory=dict)
    not_requested: list[str] = field(default_factory=list)
    """Stale tasks left alone because the targets (`--until`) do not need them."""

    @property
    def ok(self) -> bool:
        return not self.failed


def load_plan(loaded_wf: LoadedWorkflow, site: str, site_overrides: dict[str, Any], params: dict[str, Any]) -> tuple[LoadedWorkflow,
        LoadedSite, Plan]:
    """A workflow on a site: load the profile, apply its scheduler's checks, plan (InputError on any problem)."""
    loaded_site = load_site(site, site_overrides)
    log.info("site %s (scheduler %s) from %s%s", loaded_site.site.name, loaded_site.site.scheduler, loaded_site.path,
             f", overrides {loaded_site.overrides}" if loaded_site.overrides else "")
    scheduler = adapter_for(loaded_site)
    scheduler.check()
    scheduler.check_user_values()
    try:
        plan = make_plan(loaded_wf.workflow, loaded_site.site, params)
    except LocatedPlanError as exc:  # a step's resources, scatter, paths: at their line in the workflow file
        raise located(exc, loaded_wf.document) from None
    plan.source = loaded_wf.path
    log.info("workflow %s from %s: %d task(s); parameters %s", plan.workflow, loaded_wf.path, len(plan.tasks),
             json.dumps(plan.parameters, sort_keys=True))
    return loaded_wf, loaded_site, plan


def render(plan: Plan, loaded: LoadedSite, engine_name: str, out_dir: Path, workdir: Path | None = None) -> list[Path]:
    """Write what the engine would hand to the scheduler, running nothing; return the files."""
    workdir = (workdir or default_workdir(plan, loaded)).resolve()
    out_dir = out_dir.resolve()  # engines may hand it to tools running in another directory
    ctx = RunContext(plan, loaded, workdir, out_dir, plan.tasks, adapter_for(loaded), run_id="render")
    return render_context(engine_for(engine_name), ctx, out_dir)


def render_context(engine: Engine, ctx: RunContext, out_dir: Path) -> list[Path]:
    """The engine's files, plus what a run's Dask steps create on the site themselves (every engine alike)."""
    return engine.render(ctx, out_dir) + ctx.scheduler.render_dask_clusters(ctx, out_dir)


def default_workdir(plan: Plan, loaded: LoadedSite) -> Path:
    return workdir_for(plan.workflow, loaded)


def workdir_for(workflow: str, loaded: LoadedSite) -> Path:
    """`storage.work_dir/<workflow>`, its `$NAME`s expanded here (the driver creates it), else `work/<workflow>`: where a
    workflow's outputs go on a site when no --workdir is given.

    An unset variable is refused (SpecError at the key, exit 2) before anything is created: expanding it to
    nothing or keeping it would make a directory named `$SCRATCH` here, or write to `/portaflow`."""
    base = loaded.site.storage.work_dir
    if not base:
        return Path("work") / workflow
    try:
        return Path(expand_here(base)) / workflow
    except UnsetVariable as exc:
        names = ", ".join("$" + n for n in exc.names)
        raise SpecError([loaded.problem(
            ("storage", "work_dir"), f"{base!r} uses {names}, which {'is' if len(exc.names) == 1 else 'are'} not set on this machine",
            f"set {names} (on a login node of site {loaded.site.name} it usually is), or choose a work directory with --workdir",
        )]) from None


def new_run_id(engine: str) -> str:
    return f"{dt.datetime.now().strftime('%Y%m%d-%H%M%S')}-{engine}-{secrets.token_hex(2)}"


def new_run_dir(workdir: Path, engine: str, run_id: str | None = None) -> tuple[str, Path]:
    run_id = run_id or new_run_id(engine)
    run_dir = workdir / ".portaflow" / "runs" / run_id
    run_dir.mkdir(parents=True)
    latest = run_dir.parent / "latest"
    if latest.is_symlink() or latest.exists():
        latest.unlink()
    latest.symlink_to(run_id)
    return run_id, run_dir


RUNS_DIR = Path(".portaflow") / "runs"


@dataclass
class RunInfo:
    """One run of a work directory, as `portaflow runs` lists it (from its manifest)."""

    run_id: str
    path: Path
    engine: str
    site: str
    started: str | None
    finished: str | None
    state: str
    counts: dict[str, int]

    @property
    def duration_s(self) -> float | None:
        try:
            return (dt.datetime.fromisoformat(self.finished) - dt.datetime.fromisoformat(self.started)).total_seconds()  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return None


def list_runs(workdir: Path) -> list[RunInfo]:
    """The work directory's runs, oldest first. A run whose manifest still says `running` while no run holds the work
    directory was killed (kill -9, a crash, a reboot); one without a manifest is `unknown`."""
    runs_dir = workdir / RUNS_DIR
    if not runs_dir.is_dir():
        return []
    holder = WorkdirLock(workdir).holder() or {}
    out = []
    for path in sorted(p for p in runs_dir.iterdir() if p.is_dir() and not p.is_symlink()):
        try:
            manifest = json.loads((path / "manifest.json").read_text())
        except (OSError, ValueError):
            manifest = {}
        state = manifest.get("status", "unknown")
        if state in ("running", "unknown") and holder.get("run_id") == path.name:
            state = "running"
        elif state == "running":
            state = "killed"
            manifest = settle_killed_run(workdir, path.name, write=False) or manifest
        counts: dict[str, int] = {}
        for task in manifest.get("tasks", {}).values():
            counts[task.get("status", "?")] = counts.get(task.get("status", "?"), 0) + 1
        started = manifest.get("started") or _started_from_id(path.name)
        out.append(RunInfo(path.name, path, manifest.get("engine", "?"), manifest.get("site", "?"), started, manifest.get("finished"),
                           state, counts))
    return out


def _started_from_id(run_id: str) -> str | None:
    """A run id begins with its start (YYYYmmdd-HHMMSS); older manifests have no `started`."""
    try:
        return dt.datetime.strptime(run_id[:15], "%Y%m%d-%H%M%S").isoformat(timespec="seconds")
    except ValueError:
        return None


def clean_runs(workdir: Path, keep: int, dry_run: bool = False) -> list[Path]:
    """Remove the run records (run directories) of all but the newest `keep` runs; never a running run's. Task records
    (.portaflow/state) and outputs stay: what is up to date stays up to date. Returns what was (or would be) removed."""
    import shutil

    runs = list_runs(workdir)
    old = [r for r in (runs[:-keep] if keep else runs) if r.state != "running"]
    if dry_run:
        return [r.path for r in old]
    for info in old:
        shutil.rmtree(info.path)
    latest = workdir / RUNS_DIR / "latest"
    if latest.is_symlink() and not latest.exists():
        latest.unlink()
        remaining = [r for r in runs if r not in old]
        if remaining:
            latest.symlink_to(remaining[-1].run_id)
    log.info("removed %d run record(s) from %s", len(old), workdir / RUNS_DIR)
    return [r.path for r in old]


def container_images(plan: Plan, loaded: LoadedSite) -> dict[str, dict[str, str | None]]:
    """Each container the plan's tasks use on this site: runtime, image location and digest (looked up once)."""
    images: dict[str, dict[str, str | None]] = {}
    for task in plan.tasks:
        call = container_call(loaded.site, task.container)
        if call and task.container not in images:
            images[task.container] = {"runtime": call.runtime, "image": call.image, "digest": image_digest(call)}
            log.info("container %s: %s image %s, digest %s", task.container, call.runtime, call.image,
                     images[task.container]["digest"] or "unknown")
    return images


def extra_signatures(plan: Plan, loaded: LoadedSite, images: dict[str, dict[str, str | None]]) -> dict[str, dict[str, Any]]:
    """What else decides a task's outputs besides its command: the image (location and digest), the site's environment."""
    env = loaded.site.environment.env
    return {task.id: {"image": images.get(task.container or ""), "env": env} for task in plan.tasks}


def select(plan: Plan, names: tuple[str, ...] | list[str], option: str) -> set[str]:
    """The task ids that step names, task ids or displays (`generate[file=3]`) or output paths name (InputError, exit 2,
    for a name that is none of them)."""
    chosen: set[str] = set()
    by_output = {os.path.normpath(p): t.id for t in plan.tasks for p in t.output_paths()}
    for name in names:
        ids = {t.id for t in plan.tasks if name in (t.step, t.id, t.display)}
        if not ids and os.path.normpath(name) in by_output:
            ids = {by_output[os.path.normpath(name)]}
        if not ids:
            steps = sorted({t.step for t in plan.tasks})
            raise InputError(f"{option} {name}: workflow {plan.workflow} has no step, task or output of that name (steps: "
                             f"{', '.join(steps)}; or a task such as {plan.tasks[0].display!r}, or an output path relative to "
                             "the work directory)")
        chosen |= ids
    return chosen


def upstream(plan: Plan, task_ids: set[str]) -> set[str]:
    """The tasks and every task they depend on, directly or not."""
    out = set(task_ids)
    for task in reversed(plan.tasks):  # dependency order, walked back
        if task.id in out:
            out.update(task.depends)
    return out


@dataclass
class Staleness:
    """What a run (or a dry run) would do: the records, every signature, the tasks to run and why."""

    store: StateStore
    sigs: dict[str, Signature]
    todo: list[Task]
    reasons: dict[str, str]
    not_requested: list[Task]


def tasks_to_run(plan: Plan, loaded: LoadedSite, workdir: Path, images: dict[str, dict[str, str | None]] | None = None,
                 selection: Selection = Selection()) -> Staleness:
    """The run's records, every task's signature, and the stale tasks the selection asks for, each with why."""
    store = StateStore(workdir)
    images = container_images(plan, loaded) if images is None else images
    sigs = signature_details(plan, workdir, extra_signatures(plan, loaded, images))
    force = {t.id for t in plan.tasks} if selection.force_all else select(plan, selection.force, "--force")
    reasons = staleness(plan, store, sigs, force)
    wanted = upstream(plan, select(plan, selection.until, "--until")) if selection.until else None
    todo = [t for t in plan.tasks if t.id in reasons and (wanted is None or t.id in wanted)]
    left = [t for t in plan.tasks if t.id in reasons and wanted is not None and t.id not in wanted]
    log.info("%d of %d task(s) to run in %s%s", len(todo), len(plan.tasks), workdir,
             f" ({len(left)} stale task(s) not needed by --until)" if left else "")
    for task in todo:
        log.info("  %s: %s", task.display, reasons[task.id])
    if log.isEnabledFor(logging.DEBUG):
        for task in plan.tasks:
            if task.id not in reasons:
                log.debug("  %s: up to date (signature %s)", task.display, sigs[task.id].digest[:12])
    return Staleness(store, sigs, todo, reasons, left)


def run(plan: Plan, loaded: LoadedSite, engine_name: str, workdir: Path | None = None, quiet: bool = False,
        selection: Selection = Selection(), keep_going: bool = True) -> RunResult:
    """Run the plan's stale tasks (those the selection asks for) on one engine. `keep_going=False` (--fail-fast): no task
    starts after the first failure. Interrupted (a KeyboardInterrupt) propagates after clean-up."""
    workdir = (workdir or default_workdir(plan, loaded)).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    run_id = new_run_id(engine_name)
    lock = WorkdirLock(workdir)
    lock.acquire(run_id)  # before anything in the work directory changes; WorkdirBusy (exit 2) if another run holds it
    before = {name: os.environ.get(name) for name in RUN_ENVIRONMENT}
    # Until the engine's own handler is in place (_run_locked), a signal stops the run at once, as Interrupted: no engine
    # thread holds a lock yet, and SIGTERM's default action would end the driver without its exit code or clean-up.
    early = {sig: signal.signal(sig, _stop_at_once) for sig in INTERRUPT_SIGNALS}
    try:
        previous = _take_over(workdir, lock.previous, loaded) if lock.previous else None
        os.environ.update({**RUN_ENVIRONMENT, RUN_ENV: run_id})
        return _run_locked(plan, loaded, engine_name, workdir, run_id, quiet, selection, keep_going, previous)
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        lock.release()
        for sig, handler in early.items():
            signal.signal(sig, handler)


def _stop_at_once(signum: int, frame: Any) -> None:
    raise Interrupted(signum)


def _take_over(workdir: Path, holder: dict, loaded: LoadedSite) -> dict[str, Any]:
    """A run was killed here (its lock was left): before anything is submitted, stop what it left running on this host
    and cancel its jobs still on the scheduler (waiting until they are gone), so that no two jobs ever write the same
    output; then correct its manifest. Returns what was done, for this run's manifest (`previous_run`)."""
    killed = str(holder.get("run_id", "?"))
    stopped = stop_previous_run(holder)
    # its steps' podman/docker containers run under the runtime's monitor, not its processes: found by their label
    containers = stop_run_containers(loaded.site, killed, f"run {killed} (killed)")
    cancelled = adapter_for(loaded).cancel_previous_run(killed)  # logged there (warnings reach the console)
    settle_killed_run(workdir, killed)
    return {"run_id": killed, "processes_stopped": len(stopped), "containers_stopped": containers, "jobs_cancelled": cancelled}


def settle_killed_run(workdir: Path, run_id: str, write: bool = True) -> dict[str, Any] | None:
    """The manifest of a run killed with -9 says `running` and `pending` for every task it ran, as it was written
    when the run started. Correct it from the task records: a task recorded by that run `ran`, the others `not run`,
    the run `killed`. Returns the corrected manifest (None if there is none to correct); `write` saves it."""
    path = workdir / RUNS_DIR / run_id / "manifest.json"
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if manifest.get("status") != "running":
        return None
    store = StateStore(workdir)
    for task_id, task in manifest.get("tasks", {}).items():
        if task.get("status") == "pending":
            record = store.read(task_id)
            ran = bool(record) and record.get("run") == run_id
            task["status"] = "ran" if ran else "not run"
            if ran:
                for out_path, info in record["outputs"].items():  # type: ignore[index]
                    manifest.setdefault("outputs", {})[out_path] = {"sha256": info["sha256"], "task": task_id}
    manifest["status"] = "killed"
    if write:
        tmp = path.with_name(".manifest.json.tmp")
        tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        os.replace(tmp, path)
    return manifest


RUN_ENVIRONMENT = {RUN_ENV: "", "SPT_NOENV": "1"}
"""Set in the driver's environment while a run goes on, so that every process it starts inherits them: the run id
(`engines.leftovers` finds a killed run's processes by it) and SPT_NOENV=1, which stops setproctitle (Parsl's
interchange, Dask's workers) from overwriting the environment that /proc shows, and the run id with it."""


def _run_locked(plan: Plan, loaded: LoadedSite, engine_name: str, workdir: Path, run_id: str, quiet: bool, selection: Selection,
                keep_going: bool, previous: dict[str, Any] | None = None) -> RunResult:
    preflight(plan, loaded, workdir)
    images = container_images(plan, loaded)
    stale = tasks_to_run(plan, loaded, workdir, images, selection)
    store, sigs, todo = stale.store, stale.sigs, stale.todo
    not_requested = [t.id for t in stale.not_requested]
    todo_ids = {t.id for t in todo}
    skipped = [t.id for t in plan.tasks if t.id not in todo_ids]
    if not todo:  # nothing to record: no run directory (`portaflow runs` lists runs that did something)
        log.info("run %s: nothing to do; no run directory made", run_id)
        return RunResult(run_id, None, workdir, [], skipped, not_requested=not_requested)
    started = dt.datetime.now()
    engine = engine_for(engine_name)
    run_id, run_dir = new_run_dir(workdir, engine_name, run_id)
    log.info("run %s: engine %s on %s (%s); run directory %s", run_id, engine_name, loaded.site.name, loaded.site.scheduler, run_dir)
    _write_run_inputs(run_dir, plan, loaded)
    record = RunRecord(run_dir, plan, loaded, engine_name, run_id, workdir, store, todo_ids, set(not_requested), images, started, previous)
    record.write({}, [], status="running")  # a run killed with -9 is still listed (`portaflow runs`), as killed
    progress = Progress(len(todo), ids={t.id for t in todo})
    recorder = Recorder(plan, store, sigs, workdir, progress.event if not quiet else (lambda *a: None), run_id)
    ctx = RunContext(plan, loaded, workdir, run_dir, todo, adapter_for(loaded), run_id=run_id, on_event=recorder.event,
                     keep_going=keep_going)
    for task in todo:  # a rerun starts from nothing: no stale file may pass for a fresh one
        store.forget(task.id)
        remove_outputs(workdir, task)
        for out in task.outputs.values():
            (workdir / out.path).parent.mkdir(parents=True, exist_ok=True)
    render_context(engine, ctx, run_dir / "rendered")
    previous = {sig: signal.signal(sig, _stop_handler(ctx)) for sig in INTERRUPT_SIGNALS}
    try:
        ctx.raise_if_stopped()
        outcomes = engine.execute(ctx)
        ctx.raise_if_stopped()  # a signal while the engine ended: the run still ends as interrupted, with its exit code
    except KeyboardInterrupt:
        log.warning("run %s interrupted: cancelling its jobs", run_id)
        try:
            cancelled = ctx.scheduler.cancel_run(run_id, ctx.jobs)
            log.info("cancelled %d job(s)%s", len(cancelled), f": {', '.join(cancelled)}" if cancelled else "")
        except PortaflowError as exc:  # clean-up and the manifest still happen; the person learns what is left
            log.error("run %s: could not cancel every job (%s); known jobs: %s", run_id, exc, ", ".join(ctx.jobs) or "none")
        stop_run_containers(loaded.site, run_id, f"run {run_id} (interrupted)")  # a container's PID 1 may ignore the signal
        outcomes = recorder.finished_outcomes()
        _clean_unfinished(ctx, todo, recorder.recorded)
        _report_interrupted(plan, todo, recorder.recorded)
        record.write(outcomes, ctx.jobs, status="interrupted", driver_address=ctx.driver_address, times=recorder.times)
        raise
    finally:
        progress.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    failed = {}
    for task in todo:
        outcome = outcomes.get(task.id) or TaskOutcome(task.id, False, message="no outcome reported")
        if outcome.ok and task.id in recorder.recorded:
            continue
        if outcome.ok and all((workdir / p).exists() for p in task.output_paths()):
            store.write(task, sigs[task.id], produced_inputs(plan, store, task), run_id)
        else:
            remove_outputs(workdir, task)
            failed[task.id] = outcome
    manifest = record.write(outcomes, ctx.jobs, status="failed" if failed else "succeeded", driver_address=ctx.driver_address,
                            times=recorder.times)
    for task_id, outcome in failed.items():
        log.debug("task %s failed: %s", task_id, outcome.message)
    log.info("run %s %s: manifest %s", run_id, "failed" if failed else "succeeded", run_dir / "manifest.json")
    return RunResult(run_id, run_dir, workdir, [t.id for t in todo], skipped, failed, manifest, not_requested)


INTERRUPT_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
"""Ctrl-C (SIGINT), a login node's time limit (SIGTERM), a dropped connection (SIGHUP)."""


def _stop_handler(ctx: RunContext) -> Callable[[int, Any], None]:
    """While the engine runs, a signal only asks it to stop (ctx.stop_signal); the engine raises Interrupted where it
    waits. Why not raise in the handler: Python runs it between any two bytecodes of the main thread, also inside
    Parsl's and logging's locks, and an exception there left a lock held and the driver hung (Parsl, Ctrl-C). A
    second signal raises at once, for an engine that does not stop."""

    def handler(signum: int, frame: Any) -> None:
        if ctx.stop_signal is not None:
            raise Interrupted(signum)
        ctx.stop_signal = signum

    return handler


class Recorder:
    """Records each task as done the moment its engine reports it finished well, then passes the event on.

    Why: a run can end at any instant (Ctrl-C, SIGTERM, the OOM killer's SIGKILL). A task recorded when it
    finishes is kept by an interrupt and is not recomputed by the next run, even after `kill -9` of the
    driver; a task recorded only when the whole run ends would be lost with it. Engines call `event` from
    their own threads (Parsl's future callbacks), hence the lock."""

    def __init__(self, plan: Plan, store: StateStore, sigs: dict[str, Signature], workdir: Path, forward: Callable[[str, Task, Any], None],
                 run_id: str | None = None):
        self.plan, self.store, self.sigs, self.workdir, self.forward, self.run_id = plan, store, sigs, workdir, forward, run_id
        self.recorded: set[str] = set()
        self.outcomes: dict[str, TaskOutcome] = {}
        self.times: dict[str, dict[str, str]] = {}
        """Task id -> when the engine reported it `submitted` and `finished` (the driver's clock), for the manifest."""
        self._lock = threading.Lock()

    def event(self, kind: str, task: Task, outcome: Any) -> None:
        self.times.setdefault(task.id, {}).setdefault(kind, dt.datetime.now().isoformat(timespec="milliseconds"))
        if kind == "finished" and isinstance(outcome, TaskOutcome):
            with self._lock:
                self.outcomes[task.id] = outcome
                if outcome.ok and task.id not in self.recorded and all((self.workdir / p).exists() for p in task.output_paths()):
                    try:
                        self.store.write(task, self.sigs[task.id], produced_inputs(self.plan, self.store, task), self.run_id)
                        self.recorded.add(task.id)
                    except OSError as exc:  # the run goes on; the end of the run tries again
                        log.error("could not record task %s as done: %s", task.display, exc)
        self.forward(kind, task, outcome)

    def finished_outcomes(self) -> dict[str, TaskOutcome]:
        """What the engine reported before it was stopped: recorded tasks as done, reported failures as failed."""
        with self._lock:
            return {tid: o for tid, o in self.outcomes.items() if not o.ok or tid in self.recorded}


def _clean_unfinished(ctx: RunContext, todo: list[Task], recorded: set[str]) -> None:
    """After an interrupt: the partial outputs of tasks that had not finished go; every recorded task's stay."""
    for task in todo:
        if task.id not in recorded:
            remove_outputs(ctx.workdir, task)


def _report_interrupted(plan: Plan, todo: list[Task], recorded: set[str]) -> None:
    kept = [t.display for t in todo if t.id in recorded]
    rerun = [t.display for t in todo if t.id not in recorded]
    log.warning("kept %d finished task(s)%s", len(kept), f": {', '.join(kept)}" if kept else "")
    log.warning("%d task(s) must rerun (partial outputs removed)%s", len(rerun), f": {', '.join(rerun)}" if rerun else "")


def _write_run_inputs(run_dir: Path, plan: Plan, loaded: LoadedSite) -> None:
    site_data = loaded.site.model_dump(mode="json")
    (run_dir / "site.yaml").write_text(
        f"# effective site profile (from {loaded.path}" + (f", user overrides {loaded.overrides}" if loaded.overrides else "") + ")\n"
        + yaml.safe_dump(site_data, sort_keys=False)
    )
    (run_dir / "parameters.json").write_text(json.dumps(plan.parameters, indent=2, sort_keys=True) + "\n")


def tool_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in ("portaflow", "parsl", "snakemake", "snakemake-executor-plugin-slurm", "dask", "distributed"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return versions


def network_record(run_dir: Path, driver_address: dict[str, str] | None) -> dict[str, Any]:
    """The manifest's `network`: the address the engine's workers reached the driver at and how it was chosen
    (None when the engine's workers do not connect back, as Snakemake's jobs), and what each Dask step recorded
    under `<run dir>/dask/` (its scheduler's address, how it was chosen, each worker's host and node)."""
    dask = {}
    for path in sorted((run_dir / "dask").glob("*.json")):
        try:
            dask[path.stem] = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            log.warning("could not read %s: %s", path, exc)
    return {"driver": driver_address, "dask": dask}



def _task_times(run_dir: Path, task_id: str, events: dict[str, str], outcome: TaskOutcome | None) -> dict[str, Any]:
    """A task's times for the manifest (what `portaflow report` draws): when the engine reported it submitted and
    finished, and each try as its job's shell noted it (start, end, exit status, CPU seconds); `task_times` adds the
    engine's own start and end of the task, which override these, and its scheduler job."""
    out: dict[str, Any] = {k: v for k, v in events.items() if k in ("submitted", "finished")}
    tries = [{**t, "started": _iso(t["started"]), "ended": _iso(t["ended"])} for t in read_tries(run_dir, task_id)]
    if tries:
        out["tries"] = tries
    return out


def _iso(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch).isoformat(timespec="milliseconds")


@dataclass
class RunRecord:
    """What a run's manifest.json is made from; written when the run starts (status running) and when it ends."""

    run_dir: Path
    plan: Plan
    loaded: LoadedSite
    engine: str
    run_id: str
    workdir: Path
    store: StateStore
    todo_ids: set[str]
    not_requested: set[str]
    images: dict[str, dict[str, str | None]]
    started: dt.datetime
    previous_run: dict[str, Any] | None = None
    """A killed run this one took over: its id, its processes stopped, its scheduler jobs cancelled (`_take_over`)."""
    cwl_export: Path | None = None
    """A folder holding the workflow exported as CWL, for the run's RO-Crate (crate.write_crate); None (the default):
    the crate's export is made when the crate is written (`_cwl_export`)."""

    def write(self, outcomes: dict[str, TaskOutcome], jobs: list[str], status: str, driver_address: dict[str, str] | None = None,
              times: dict[str, dict[str, str]] | None = None) -> dict[str, Any]:
        """manifest.json: every output with its sha256, how each task ended (when the engine reported it submitted and
        finished, each try as its shell noted it, its job), versions, images, and where workers reached the driver and
        each Dask step's scheduler (`network`)."""
        plan = self.plan
        tasks = {}
        outputs = {}
        produced = {path for task in plan.tasks for path in task.output_paths()}
        for task in plan.tasks:
            record = self.store.read(task.id)
            outcome = outcomes.get(task.id)
            if task.id in self.todo_ids:
                state = "ran" if outcome and outcome.ok else ("failed" if outcome else "pending" if status == "running" else "not run")
            else:
                state = "not requested" if task.id in self.not_requested else "up to date"
            tasks[task.id] = {"step": task.step, "display": task.display, "status": state, "depends": list(task.depends),
                              "resources": {"cores": task.resources.cores, "memory_mib": task.resources.memory_mib}}
            if outcome and not outcome.ok:
                tasks[task.id]["error"] = outcome.message
            if task.id in self.todo_ids:
                tasks[task.id].update(_task_times(self.run_dir, task.id, (times or {}).get(task.id, {}), outcome))
                tasks[task.id].update(task_times(outcome), inputs=input_digests(task, record, produced))
            if record and state in ("ran", "up to date"):
                for path, info in record["outputs"].items():
                    outputs[path] = {"sha256": info["sha256"], "task": task.id}
        now = dt.datetime.now()
        manifest = {
            "run_id": self.run_id, "status": status, "workflow": plan.workflow, "site": plan.site, "scheduler": plan.scheduler,
            "engine": self.engine, "workdir": str(self.workdir), "started": self.started.isoformat(timespec="seconds"),
            "finished": None if status == "running" else now.isoformat(timespec="seconds"),
            "parameters": plan.parameters, "tasks": tasks, "outputs": outputs, "tools": tool_versions(), "containers": self.images,
            "scheduler_jobs": jobs, "network": network_record(self.run_dir, driver_address),
        }
        if self.previous_run:
            manifest["previous_run"] = self.previous_run
        path = self.run_dir / "manifest.json"
        tmp = path.with_name(".manifest.json.tmp")
        tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        os.replace(tmp, path)  # whole or absent, whenever the driver is killed
        if status != "running":  # the run's RO-Crate says what happened, from the manifest only (never a secret)
            self.write_crate(manifest)
        return manifest

    def write_crate(self, manifest: dict[str, Any]) -> None:
        """The run's RO-Crate beside its manifest (crate.py). A crate that cannot be written costs the crate, never the
        run's record or exit code: the reason is logged."""
        began = time.monotonic()
        try:
            write_crate(self.run_dir, manifest, self.plan, cwl_export=self.cwl_export or self._cwl_export())
        except Exception as exc:  # noqa: BLE001 (see the docstring)
            if isinstance(exc, ModuleNotFoundError) and (exc.name or "").startswith("rocrate"):
                log.warning("run %s: no RO-Crate written: the rocrate library is not installed (pip install 'portaflow[exchange]')",
                            self.run_id)
            else:
                log.error("run %s: could not write its RO-Crate (%s: %s)", self.run_id, type(exc).__name__, exc,
                          exc_info=log.isEnabledFor(logging.DEBUG))
            return
        log.debug("run %s: RO-Crate written in %.2f s", self.run_id, time.monotonic() - began)

    def _cwl_export(self) -> Path | None:
        """The workflow's CWL export in the run directory (`cwl/`), for the crate; None for a run of an imported CWL
        document or a plan made in code, and where the workflow has what CWL cannot say (a multi-node step: logged,
        the crate goes without it)."""
        try:
            return export_for_run(self.loaded, self.plan, self.run_dir / CWL_DIR, self.workdir)
        except (PortaflowError, OSError) as exc:
            log.info("run %s: its RO-Crate holds no CWL export: %s", self.run_id, exc)
            return None


def task_times(outcome: TaskOutcome | None) -> dict[str, Any]:
    """A task's start and end as its engine reported them (ISO 8601 with the UTC offset), the scheduler job it ran in,
    where known, and a failed command's exit code: the manifest's record of each task that was to run (the RO-Crate's
    actions read them)."""
    out: dict[str, Any] = {}
    if outcome is None:
        return out
    for key, when in (("started", outcome.started), ("finished", outcome.finished)):
        if when is not None:
            out[key] = dt.datetime.fromtimestamp(when).astimezone().isoformat(timespec="milliseconds")
    if outcome.job_id:
        out["job"] = outcome.job_id
    if not outcome.ok and outcome.exit_code is not None:
        out["exit_code"] = outcome.exit_code
    return out


def input_digests(task: Task, record: dict[str, Any] | None, produced: set[str]) -> dict[str, str | None]:
    """Each input path of a task with the sha256 it had when the task ran (None where the task has no record: it did
    not finish): an earlier task's output (a path in `produced`) as its producer recorded it, a file from outside the
    workflow as the task's signature hashed it."""
    record = record or {}
    out: dict[str, str | None] = {}
    for path in task.input_paths():
        digest = record.get("inputs", {}).get(path) if path in produced else record.get("parts", {}).get(f"input:{path}")
        out[path] = digest if digest and digest != "missing" else None
    return out
