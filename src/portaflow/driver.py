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
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

from portaflow.containers import container_call
from portaflow.containers.images import image_digest
from portaflow.engines import engine_for
from portaflow.engines.base import Engine, RunContext, TaskOutcome, remove_outputs
from portaflow.engines.state import StateStore, WorkdirLock, signatures, stale_tasks
from portaflow.errors import PortaflowError
from portaflow.hashing import stat_key
from portaflow.plan import make_plan
from portaflow.plan.model import Plan, Task
from portaflow.plan.planner import OutputPathError, located
from portaflow.preflight import preflight
from portaflow.progress import Progress
from portaflow.schedulers import adapter_for
from portaflow.spec.loading import LoadedSite, LoadedWorkflow, load_site

log = logging.getLogger(__name__)


@dataclass
class RunResult:
    run_id: str
    run_dir: Path
    workdir: Path
    ran: list[str]
    skipped: list[str]
    failed: dict[str, TaskOutcome] = field(default_factory=dict)
    manifest: dict[str, Any] = field(default_factory=dict)

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
    except OutputPathError as exc:
        raise located(exc, loaded_wf.document) from None
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
    base = loaded.site.storage.work_dir
    return Path(os.path.expandvars(base)) / plan.workflow if base else Path("work") / plan.workflow


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


def extra_signatures(plan: Plan, loaded: LoadedSite, images: dict[str, dict[str, str | None]]) -> dict[str, str]:
    """What else decides a task's outputs besides its command: the image (location and digest), the site's environment."""
    env = loaded.site.environment.env
    return {task.id: json.dumps({"image": images.get(task.container or ""), "env": env}, sort_keys=True) for task in plan.tasks}


def tasks_to_run(plan: Plan, loaded: LoadedSite, workdir: Path,
                 images: dict[str, dict[str, str | None]] | None = None) -> tuple[StateStore, dict[str, str], list[Task]]:
    """The run's records, every task's signature, and the stale tasks (what a run or a dry run would do)."""
    store = StateStore(workdir)
    images = container_images(plan, loaded) if images is None else images
    sigs = signatures(plan, workdir, extra_signatures(plan, loaded, images))
    todo = stale_tasks(plan, store, sigs)
    log.info("%d of %d task(s) to run in %s", len(todo), len(plan.tasks), workdir)
    if log.isEnabledFor(logging.INFO):
        for task_id, why in stale_reasons(plan, store, sigs, todo).items():
            log.info("  %s: %s", plan.by_id[task_id].display, why)
    if log.isEnabledFor(logging.DEBUG):
        todo_ids = {t.id for t in todo}
        for task in plan.tasks:
            if task.id not in todo_ids:
                log.debug("  %s: up to date (signature %s)", task.display, sigs[task.id][:12])
    return store, sigs, todo


def stale_reasons(plan: Plan, store: StateStore, sigs: dict[str, str], todo: list[Task]) -> dict[str, str]:
    """Why each task in `todo` runs, in words (for the log; `stale_tasks` decides, this only explains)."""
    todo_ids = {t.id for t in todo}
    reasons = {}
    for task in todo:
        record = store.read(task.id)
        upstream = [plan.by_id[d].display for d in task.depends if d in todo_ids]
        if record is None:
            reasons[task.id] = "no record of an earlier run"
        elif record.get("signature") != sigs[task.id]:
            reasons[task.id] = "its command, inputs, image or environment changed"
        elif not all((store.workdir / path).exists() and stat_key(store.workdir / path) == info.get("stat")
                     for path, info in record.get("outputs", {}).items()):
            reasons[task.id] = "an output is missing or was changed after it was recorded"
        else:
            reasons[task.id] = "upstream task(s) rerun: " + ", ".join(upstream) if upstream else "upstream changed"
    return reasons


def run(plan: Plan, loaded: LoadedSite, engine_name: str, workdir: Path | None = None, quiet: bool = False) -> RunResult:
    """Run the plan's stale tasks on one engine. KeyboardInterrupt propagates after clean-up."""
    workdir = (workdir or default_workdir(plan, loaded)).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    run_id = new_run_id(engine_name)
    lock = WorkdirLock(workdir)
    lock.acquire(run_id)  # before anything in the work directory changes; WorkdirBusy (exit 2) if another run holds it
    try:
        return _run_locked(plan, loaded, engine_name, workdir, run_id, quiet)
    finally:
        lock.release()


def _run_locked(plan: Plan, loaded: LoadedSite, engine_name: str, workdir: Path, run_id: str, quiet: bool) -> RunResult:
    preflight(plan, loaded, workdir)
    images = container_images(plan, loaded)
    store, sigs, todo = tasks_to_run(plan, loaded, workdir, images)
    todo_ids = {t.id for t in todo}
    engine = engine_for(engine_name)
    run_id, run_dir = new_run_dir(workdir, engine_name, run_id)
    log.info("run %s: engine %s on %s (%s); run directory %s", run_id, engine_name, loaded.site.name, loaded.site.scheduler, run_dir)
    _write_run_inputs(run_dir, plan, loaded)
    progress = Progress(len(todo))
    recorder = Recorder(store, sigs, workdir, progress.event if not quiet else (lambda *a: None))
    ctx = RunContext(plan, loaded, workdir, run_dir, todo, adapter_for(loaded), run_id=run_id, on_event=recorder.event)
    for task in todo:  # a rerun starts from nothing: no stale file may pass for a fresh one
        store.forget(task.id)
        remove_outputs(workdir, task)
        for out in task.outputs.values():
            (workdir / out.path).parent.mkdir(parents=True, exist_ok=True)
    outcomes: dict[str, TaskOutcome] = {}
    if todo:
        render_context(engine, ctx, run_dir / "rendered")
        previous = {sig: signal.signal(sig, _raise_interrupt) for sig in INTERRUPT_SIGNALS}
        try:
            outcomes = engine.execute(ctx)
        except KeyboardInterrupt:
            log.warning("run %s interrupted: cancelling its jobs", run_id)
            try:
                cancelled = ctx.scheduler.cancel_run(run_id, ctx.jobs)
                log.info("cancelled %d job(s)%s", len(cancelled), f": {', '.join(cancelled)}" if cancelled else "")
            except PortaflowError as exc:  # clean-up and the manifest still happen; the person learns what is left
                log.error("run %s: could not cancel every job (%s); known jobs: %s", run_id, exc, ", ".join(ctx.jobs) or "none")
            outcomes = recorder.finished_outcomes()
            _clean_unfinished(ctx, todo, recorder.recorded)
            _report_interrupted(plan, todo, recorder.recorded)
            _write_manifest(run_dir, plan, loaded, engine_name, run_id, workdir, store, todo_ids, outcomes, ctx.jobs, images, status="interrupted",
                            driver_address=ctx.driver_address)
            raise
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    failed = {}
    for task in todo:
        outcome = outcomes.get(task.id) or TaskOutcome(task.id, False, message="no outcome reported")
        if outcome.ok and task.id in recorder.recorded:
            continue
        if outcome.ok and all((workdir / p).exists() for p in task.output_paths()):
            store.write(task, sigs[task.id])
        else:
            remove_outputs(workdir, task)
            failed[task.id] = outcome
    manifest = _write_manifest(run_dir, plan, loaded, engine_name, run_id, workdir, store, todo_ids, outcomes, ctx.jobs,
                               images, status="failed" if failed else "succeeded", driver_address=ctx.driver_address)
    for task_id, outcome in failed.items():
        log.debug("task %s failed: %s", task_id, outcome.message)
    log.info("run %s %s: manifest %s", run_id, "failed" if failed else "succeeded", run_dir / "manifest.json")
    return RunResult(run_id, run_dir, workdir, [t.id for t in todo], [t.id for t in plan.tasks if t.id not in todo_ids], failed, manifest)


INTERRUPT_SIGNALS = (signal.SIGTERM, signal.SIGHUP)
"""Besides SIGINT (KeyboardInterrupt already): a login node's time limit (SIGTERM), a dropped connection (SIGHUP)."""


class Recorder:
    """Records each task as done the moment its engine reports it finished well, then passes the event on.

    Why: a run can end at any instant (Ctrl-C, SIGTERM, the OOM killer's SIGKILL). A task recorded when it
    finishes is kept by an interrupt and is not recomputed by the next run, even after `kill -9` of the
    driver; a task recorded only when the whole run ends would be lost with it. Engines call `event` from
    their own threads (Parsl's future callbacks), hence the lock."""

    def __init__(self, store: StateStore, sigs: dict[str, str], workdir: Path, forward: Callable[[str, Task, Any], None]):
        self.store, self.sigs, self.workdir, self.forward = store, sigs, workdir, forward
        self.recorded: set[str] = set()
        self.outcomes: dict[str, TaskOutcome] = {}
        self._lock = threading.Lock()

    def event(self, kind: str, task: Task, outcome: Any) -> None:
        if kind == "finished" and isinstance(outcome, TaskOutcome):
            with self._lock:
                self.outcomes[task.id] = outcome
                if outcome.ok and task.id not in self.recorded and all((self.workdir / p).exists() for p in task.output_paths()):
                    try:
                        self.store.write(task, self.sigs[task.id])
                        self.recorded.add(task.id)
                    except OSError as exc:  # the run goes on; the end of the run tries again
                        log.error("could not record task %s as done: %s", task.display, exc)
        self.forward(kind, task, outcome)

    def finished_outcomes(self) -> dict[str, TaskOutcome]:
        """What the engine reported before it was stopped: recorded tasks as done, reported failures as failed."""
        with self._lock:
            return {tid: o for tid, o in self.outcomes.items() if not o.ok or tid in self.recorded}


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


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


def _write_manifest(run_dir: Path, plan: Plan, loaded: LoadedSite, engine: str, run_id: str, workdir: Path,
                    store: StateStore, todo_ids: set[str], outcomes: dict[str, TaskOutcome], jobs: list[str],
                    images: dict[str, dict[str, str | None]], status: str, driver_address: dict[str, str] | None = None) -> dict[str, Any]:
    """manifest.json: every output with its sha256, how each task ended, versions, images, and where workers
    reached the driver and each Dask step's scheduler (`network`)."""
    tasks = {}
    outputs = {}
    for task in plan.tasks:
        record = store.read(task.id)
        if task.id in todo_ids:
            outcome = outcomes.get(task.id)
            state = "ran" if outcome and outcome.ok else ("failed" if outcome else "not run")
        else:
            state = "up to date"
        tasks[task.id] = {"step": task.step, "display": task.display, "status": state}
        if outcomes.get(task.id) and not outcomes[task.id].ok:
            tasks[task.id]["error"] = outcomes[task.id].message
        if record and state in ("ran", "up to date"):
            for path, info in record["outputs"].items():
                outputs[path] = {"sha256": info["sha256"], "task": task.id}
    manifest = {
        "run_id": run_id, "status": status, "workflow": plan.workflow, "site": plan.site, "scheduler": plan.scheduler,
        "engine": engine, "workdir": str(workdir), "finished": dt.datetime.now().isoformat(timespec="seconds"),
        "parameters": plan.parameters, "tasks": tasks, "outputs": outputs, "tools": tool_versions(), "containers": images,
        "scheduler_jobs": jobs, "network": network_record(run_dir, driver_address),
    }
    (run_dir / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest
