"""Snakemake: the plan becomes a Snakefile (one rule per task) plus a profile, run by Snakemake's CLI.

Why one rule per task: portaflow has already decided which tasks are stale and filled every value
(quoted) into each command, so the Snakefile holds exactly those jobs and `--forceall` runs them;
Snakemake's dry-run job list is the plan's task list. Per-rule resources carry the site's request
(for SLURM: slurm_partition, slurm_account, runtime, mem_mb or mem_mb_per_cpu, gres...).

What differs per scheduler (each executor plugin's resource names and settings, the shell of jobs that
do not see the driver's filesystem, what `render` captures of the plugins) comes from the site's scheduler
adapter (`ctx.scheduler`); this module writes the Snakefile and profile, runs Snakemake and reads its log.
"""

from __future__ import annotations

import logging
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO, Any

import yaml

from portaflow.commands import run_command
from portaflow.engines.base import Engine, RunContext, TaskOutcome, failure_message, not_run_message
from portaflow.engines.snakemake_events import EVENTS_FILE, EventFile, RunEvents, logger_args, plugin_search_path
from portaflow.gctools import paused_gc
from portaflow.plan.model import Task
from portaflow.safetext import one_line
from portaflow.schedulers.base import job_slot_resources, snakemake_job_limits, submit_rate
from portaflow.schedulers.kubernetes.storage import FETCH_PREFIX, fetch_rule, rule_path, staging_rules, target_path, uses_object_store

_EXIT_STATUS = re.compile(r"returned non-zero exit status (\d+)")  # in a remote job's own log (_last_exit_status)
_POLL_S = 0.25
"""How often the events file is read while Snakemake runs (progress reaches ctx.on_event this late at most)."""


logger = logging.getLogger(__name__)

def _escape_braces(text: str) -> str:
    """Snakemake formats shell strings with str.format: double every brace so none is a field."""
    return text.replace("{", "{{").replace("}", "}}")


class SnakemakeEngine(Engine):
    name = "snakemake"

    # -- compiling -----------------------------------------------------------------------------
    def snakefile(self, ctx: RunContext) -> str:
        lines = [
            "# Snakefile compiled by portaflow: one rule per task; do not edit (re-render instead).",
            "# " + one_line(f"workflow: {ctx.plan.workflow}   site: {ctx.site.name} ({ctx.site.scheduler})"),
            'shell.executable("/bin/bash")',
            'shell.prefix("")  # portaflow writes its own strict-mode line into every rule',
            "",
            "localrules: portaflow_all",
            "",
            "rule portaflow_all:",
            "    input:",
        ]
        lines += [f"        {target_path(ctx, p)}," for t in ctx.tasks for p in t.output_paths()]
        lines.append("")
        with paused_gc():
            for task in ctx.tasks:
                lines += self._rule(ctx, task)
        if uses_object_store(ctx):
            lines += staging_rules(ctx)
        return "\n".join(lines) + "\n"

    def _rule(self, ctx: RunContext, task: Task) -> list[str]:
        # The Snakefile is Python: user text appears only inside string literals (repr) or escaped into one comment line.
        out = [f"rule {task.id}:", f"    # {one_line(task.display)}"]
        if task.input_paths():
            out.append("    input:")
            out += [f"        {rule_path(ctx, p)}," for p in task.input_paths()]
        out.append("    output:")
        for o in task.outputs.values():
            out.append(f"        directory({o.path!r})," if o.directory else f"        {o.path!r},")
        # No `log:` directive: the rule redirects its own output (below), and Snakemake's log handling
        # cost ~20 ms per job here (benchmarks/overhead.py).
        out.append(f"    threads: {task.resources.cores}")
        # the partition's job limit (base.partition_job_limits) as a slot each rule takes and --resources caps
        resources = {**ctx.scheduler.snakemake_resources(ctx, task), **job_slot_resources(ctx.site, task)}
        if resources:
            out.append("    resources:")
            out += [f"        {k}={v!r}," for k, v in resources.items()]
        if task.retries:
            out.append(f"    retries: {task.retries}")
        if ctx.scheduler.jobs_see_driver_filesystem():  # the step's log, exit status and marker go where the driver reads them
            script = "\n".join([
                f"exec >>{shlex.quote(str(ctx.log_path(task)))} 2>&1",
                # The exit status survives wherever the job ran (on SLURM, Snakemake's log does not carry it).
                f"trap 'echo $? > {shlex.quote(str(ctx.exit_code_path(task)))}' EXIT",
                ctx.shell_line(task),
                f"touch {shlex.quote(str(ctx.marker_path(task)))}",
            ])
        else:
            script = ctx.scheduler.remote_job_script(ctx, task)
        out.append(f"    shell: {_escape_braces(script)!r}")
        out.append("")
        return out

    def profile(self, ctx: RunContext) -> dict[str, Any]:
        """The Snakemake profile (config.yaml): executor, limits and polling etiquette from the site."""
        site = ctx.site
        cfg: dict[str, Any] = {
            "keep-going": ctx.keep_going,
            # portaflow's own lock (engines.state.WorkdirLock) keeps one run per work directory; Snakemake's lock would
            # outlive a Snakemake killed with -9 and refuse every later run
            "nolock": True,
            "rerun-incomplete": True,
            "latency-wait": site.snakemake.latency_wait,
            "printshellcmds": False,
            "show-failed-logs": False,
        }
        cfg.update(ctx.scheduler.snakemake_profile(ctx))
        if snakemake_job_limits(site):
            cfg["resources"] = [*cfg.get("resources", []), *snakemake_job_limits(site)]
        rate = submit_rate(site)
        if rate:  # the site's submission pace (base.submit_rate), which Parsl's executors keep too
            cfg["max-jobs-per-timespan"] = rate.snakemake_value()
        return cfg

    # -- rendering and running -----------------------------------------------------------------
    def render(self, ctx: RunContext, out_dir: Path, profile: dict[str, Any] | None = None) -> list[Path]:
        out_dir.mkdir(parents=True, exist_ok=True)
        snakefile = out_dir / "Snakefile"
        snakefile.write_text(self.snakefile(ctx))
        profile_dir = out_dir / "profile"
        profile_dir.mkdir(exist_ok=True)
        config = profile_dir / "config.yaml"
        capture = profile is None  # rendering rather than running: capture what the plugin would submit
        profile = profile or self.profile(ctx)
        config.write_text(yaml.safe_dump(profile, sort_keys=True))
        written = [snakefile, config]
        written += ctx.scheduler.render_snakemake_submissions(ctx, out_dir, profile, lambda extra: self.command(ctx, out_dir, extra),
                                                              _env(ctx), capture=capture)
        return written

    def run_profile(self, ctx: RunContext) -> dict[str, Any]:
        """The profile, with what only the cluster can decide when a run starts (the adapter asks it)."""
        return ctx.scheduler.snakemake_run_profile(ctx, self.profile(ctx))

    def command(self, ctx: RunContext, out_dir: Path, extra: list[str] | None = None) -> list[str]:
        args = ["--snakefile", str(out_dir / "Snakefile"), "--profile", str(out_dir / "profile"), "--directory", str(ctx.workdir),
                "--forceall", *(extra or [])]
        return ctx.scheduler.snakemake_launcher(ctx, out_dir, dry_run="--dry-run" in (extra or [])) + args

    def dry_run_jobs(self, ctx: RunContext, out_dir: Path) -> dict[str, int]:
        """Snakemake's own dry-run job counts per rule (a test compares them with the plan)."""
        self.render(ctx, out_dir)
        result = run_command(self.command(ctx, out_dir, ["--dry-run", "--quiet", "rules"]), env=_env(ctx), timeout=600)
        counts: dict[str, int] = {}
        for line in result.stdout.splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[1].isdigit() and parts[0] not in ("job", "total"):
                counts[parts[0]] = int(parts[1])
        return counts

    def execute(self, ctx: RunContext) -> dict[str, TaskOutcome]:
        out_dir = ctx.run_dir / "snakemake"
        self.render(ctx, out_dir, self.run_profile(ctx))
        (ctx.run_dir / "done").mkdir(parents=True, exist_ok=True)
        (ctx.run_dir / "exit").mkdir(parents=True, exist_ok=True)
        (ctx.run_dir / "logs").mkdir(parents=True, exist_ok=True)
        log_path = ctx.run_dir / "snakemake.log"  # Snakemake's text output, for people
        events_path = ctx.run_dir / EVENTS_FILE  # its log events, for portaflow (engines.snakemake_events)
        events_path.unlink(missing_ok=True)
        follower = EventFile(events_path, RunEvents(submission=ctx.scheduler.snakemake_submission))
        events = follower.events
        by_id = {t.id: t for t in ctx.tasks}
        reported: set[str] = set()
        started: set[str] = set()

        def catch_up() -> None:
            """Apply new events: scheduler job ids into ctx.jobs (what an interrupt cancels), finished tasks reported."""
            nonlocal copied
            if follower.read():
                ctx.jobs.extend(events.external_jobs[copied:])
                copied = len(events.external_jobs)
                for rule in set(events.rule_of_job.values()) - started:  # Snakemake started (or submitted) its job
                    started.add(rule)
                    if rule in by_id:
                        ctx.on_event("submitted", by_id[rule], None)
                self._report_new(ctx, by_id, reported, events)

        copied = 0  # of events.external_jobs into ctx.jobs
        with open(log_path, "w") as log:
            env = {**_env(ctx), **ctx.scheduler.client_environment()}
            command = self.command(ctx, out_dir) + logger_args(events_path)
            logger.info("running Snakemake: %s", shlex.join(command))
            proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    text=True, env=env, process_group=0)
            # A process group of its own (the terminal's Ctrl-C reaches the driver only, which stops Snakemake), in the
            # driver's session (where engines.leftovers looks for a killed run's processes).
            assert proc.stdout is not None
            copier = threading.Thread(target=_copy_lines, args=(proc.stdout, log), name="snakemake-log", daemon=True)
            copier.start()
            try:
                while not _exited(proc, _POLL_S):
                    ctx.raise_if_stopped()
                    catch_up()
            except KeyboardInterrupt:
                # The SLURM plugin ignores SIGTERM; SIGINT makes Snakemake cancel its jobs and stop.
                os.killpg(proc.pid, signal.SIGINT)
                try:
                    proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                copier.join(timeout=10)
                catch_up()
                raise
            copier.join()  # until Snakemake's output ends, as snakemake.log must hold all of it
        catch_up()
        outcomes = {}
        # The tasks that failed (a fetch-back rule's failure, on object-store sites, is its task's).
        failed = {rule.removeprefix(FETCH_PREFIX) for rule in events.failures}
        for task in ctx.tasks:
            if finished_well(ctx, task, events.finished):
                outcomes[task.id] = _timed(TaskOutcome(task.id, True, 0, job_id=events.job_of_rule.get(task.id)), events)
                continue
            failure = events.failures.get(task.id)
            if uses_object_store(ctx) and task.id in events.finished:  # its fetch-back rule did not finish
                outcome = TaskOutcome(task.id, False, None, message=f"finished on the site, but its outputs could not be fetched from the "
                                                                    f"object store (see {log_path})")
            elif failure is not None:
                _copy_first(failure.logs, ctx.log_path(task))
                status = failure.exit_status if failure.exit_status is not None else _last_exit_status(ctx.log_path(task))
                code = _read_exit_code(ctx.exit_code_path(task), status)
                # The SLURM job it ran in (its last try); other schedulers' ids are in ctx.jobs but, as before, not in the report.
                job_id = events.job_of_rule.get(task.id, failure.external_jobid) if ctx.scheduler.snakemake_failure_names_job else None
                outcome = TaskOutcome(task.id, False, code, job_id=job_id, message=failure_message(code, task))
            else:
                why = not_run_message(ctx, task, failed, not ctx.keep_going and bool(failed))
                if not failed:  # nothing failed: Snakemake itself stopped (a refused Snakefile, a DAG error)
                    why = f"not run: Snakemake stopped before running it: {snakemake_error(log_path)}"
                outcome = TaskOutcome(task.id, False, None, message=f"{why} (see {log_path})")
            outcomes[task.id] = _timed(outcome, events)
            ctx.on_event("finished", task, outcome)
        return outcomes

    def _report_new(self, ctx: RunContext, by_id: dict[str, Task], reported: set[str], events: RunEvents) -> None:
        for task_id, task in by_id.items():
            if task_id not in reported and finished_well(ctx, task, events.finished):
                reported.add(task_id)
                ctx.on_event("finished", task, _timed(TaskOutcome(task_id, True, 0, job_id=events.job_of_rule.get(task_id)), events))


def _timed(outcome: TaskOutcome, events: RunEvents) -> TaskOutcome:
    """The outcome with when Snakemake dispatched the task's job and reported it finished (the run record's times)."""
    outcome.started = events.started_at.get(outcome.task_id)
    outcome.finished = events.finished_at.get(outcome.task_id)
    return outcome


def finished_well(ctx: RunContext, task: Task, finished: set[str]) -> bool:
    """Whether a task has finished well: Snakemake's word that its rule finished and, where jobs see the driver's
    filesystem, its marker (the step's own shell got that far); on object-store sites, its fetch-back rule too
    (its outputs are back).

    Why Snakemake's word even with a marker: after a job succeeds, Snakemake touches its outputs (so they look
    newer than their inputs) and only then reports it finished. A task recorded on the marker alone kept the
    outputs' earlier mtime, so the next run found them "changed by hand" and ran the task again (CI, under load)."""
    if task.id not in finished:
        return False
    if ctx.scheduler.jobs_see_driver_filesystem():
        return ctx.marker_path(task).exists()
    return not uses_object_store(ctx) or fetch_rule(task) in finished


_ERROR_LINE = re.compile(r"^\s*(\w*(Error|Exception)\b.*|\S+: error: .*)$")


def snakemake_error(log_path: Path) -> str:
    """The error Snakemake printed when it stopped on its own (its first `...Error`/`...Exception` line and the line
    after it), for a report that names the real cause rather than blaming a task that never failed."""
    try:
        lines = log_path.read_text(errors="replace").splitlines()
    except OSError:
        return "its log could not be read"
    for n, line in enumerate(lines):
        match = _ERROR_LINE.match(line)
        if match:
            following = lines[n + 1].strip() if n + 1 < len(lines) else ""
            return (match.group(1).strip() + (f" {following}" if following else ""))[:400]
    return "no error message in its log"


def _copy_lines(source: IO[str], to: IO[str]) -> None:
    """Snakemake's text output into snakemake.log as it comes (a thread: the driver meanwhile reads the events)."""
    for line in source:
        to.write(line)
        to.flush()


def _exited(proc: subprocess.Popen[str], wait_s: float) -> bool:
    try:
        proc.wait(timeout=wait_s)
    except subprocess.TimeoutExpired:
        return False
    return True


def _copy_first(paths: list[str], to: Path) -> None:
    """The first of a failed job's logs that exists, copied to where the driver keeps the step's log."""
    for path in paths:
        if not to.exists() and Path(path).is_file():
            shutil.copyfile(path, to)


def _last_exit_status(log: Path) -> int | None:
    """The exit status a job's own Snakemake printed last in its log (a remote job's log, copied back).

    Text, not events: the job's Snakemake runs on the site, in its remote mode, which uses no logger plugins."""
    try:
        found = _EXIT_STATUS.findall(log.read_text(errors="replace"))
    except OSError:
        return None
    return int(found[-1]) if found else None


def _read_exit_code(path: Path, fallback: int | None) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return fallback


def _env(ctx: RunContext) -> dict[str, str]:
    """os.environ with this Python environment's scripts first on PATH, so Snakemake and what it starts use this
    installation; on sites without an object store, without storage credentials (`SNAKEMAKE_STORAGE_*`):
    Snakemake hands each installed storage plugin's variables to every job, e.g. into an HTCondor submit
    description's `environment`, where a secret would be stored with the job."""
    env = {k: v for k, v in os.environ.items() if uses_object_store(ctx) or not k.startswith("SNAKEMAKE_STORAGE_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [plugin_search_path(), env.get("PYTHONPATH")]))
    return env
