"""The `portaflow` command: run, render, plan, validate, sites, workflows, schema, matrix, containers, export.

Exit codes: 0 done, 1 a step failed, 2 bad input (nothing submitted), 130 interrupted (SIGINT, Ctrl-C), 143 stopped
by SIGTERM, 129 by SIGHUP (128 + the signal's number, as shells report it).

Logging is configured here and only here (library modules just log): messages go to stderr, so the
results the commands print on stdout stay clean. -v shows what portaflow decides (INFO), -vv also
every external command it runs (DEBUG) and other libraries' INFO, --debug everything and tracebacks;
-q only errors.
"""

from __future__ import annotations

import json
import logging
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from portaflow import __version__, shipped
from portaflow.errors import InputError, PortaflowError
from portaflow.spec.cwl import is_cwl
from portaflow.spec.loading import LoadedSite, LoadedWorkflow, load_any, load_site, load_workflow, parse_assignments, parse_value, site_search_path

# emoji=False: rich would print 'file.yaml:100:9' as 'file.yaml💯9' (':100:' is an emoji code), and users' names and paths
# are printed verbatim
console = Console(highlight=False, soft_wrap=True, emoji=False, width=None if sys.stdout.isatty() else 200)
err_console = Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)
"""Progress and notes on stderr (silenced by -q)."""
error_console = Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)
"""The final error message: printed even with -q."""

site_option = click.option("--site", "-s", default="local", show_default=True, help="site profile: a name or a YAML file")
site_set_option = click.option("--site-set", multiple=True, metavar="KEY=VALUE", help="override a site value (e.g. account=abc123); repeatable")
engine_option = click.option("--engine", "-e", type=click.Choice(["parsl", "snakemake"]), default="parsl", show_default=True)
param_option = click.option("--param", "-p", "params", multiple=True, metavar="KEY=VALUE", help="set a workflow parameter; repeatable")
params_file_option = click.option("--params-file", type=click.Path(dir_okay=False), help="YAML file of parameter values")
preset_option = click.option("--preset", default=None, metavar="NAME", help="start from the workflow's named parameter set (e.g. small); "
                                                                            "--param and --params-file win over it")


@dataclass(frozen=True)
class CliOptions:
    """The group's options, kept on the click context object for every subcommand."""

    verbose: int = 0
    quiet: bool = False
    debug: bool = False

    def levels(self) -> tuple[int, int]:
        """(level for portaflow's loggers, level for every other library's): others stay at WARNING below -vv."""
        if self.debug or self.verbose >= 3:
            return logging.DEBUG, logging.DEBUG
        if self.verbose == 2:
            return logging.DEBUG, logging.INFO
        if self.verbose == 1:
            return logging.INFO, logging.WARNING
        if self.quiet:
            return logging.ERROR, logging.ERROR
        return logging.WARNING, logging.WARNING


def _options(ctx: click.Context) -> CliOptions:
    return ctx.obj if isinstance(ctx.obj, CliOptions) else CliOptions()


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is when a record comes (test runners swap it after configuration)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> Any:  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


class _ByOrigin(logging.Filter):
    """portaflow's records at one level, everyone else's at another.

    Why a filter and not only logger levels: libraries set their own loggers' levels when they start
    (Parsl sets `parsl` to DEBUG for its runinfo log file), and their records would then reach stderr.
    """

    def __init__(self, ours: int, others: int):
        super().__init__()
        self.ours, self.others = ours, others

    def filter(self, record: logging.LogRecord) -> bool:
        ours = record.name == "portaflow" or record.name.startswith("portaflow.")
        return record.levelno >= (self.ours if ours else self.others)


class _PlainFormatter(logging.Formatter):
    """INFO as the bare message (it reads like the commands' own output); warnings and errors say so."""

    def format(self, record: logging.LogRecord) -> str:
        if not (record.name == "portaflow" or record.name.startswith("portaflow.")) and (record.exc_info or record.exc_text):
            # another library's traceback (Parsl logs each failed task with one) is for --debug; the step's own log and
            # portaflow's report say what failed
            record = logging.makeLogRecord({**record.__dict__, "exc_info": None, "exc_text": None, "stack_info": None})
        text = super().format(record)
        return text if record.levelno <= logging.INFO else f"{record.levelname.lower()}: {text}"


def configure_logging(options: CliOptions) -> None:
    """Install portaflow's one stderr handler on the root logger (replacing one from an earlier call)."""
    ours, others = options.levels()
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, _StderrHandler)]:
        root.removeHandler(handler)
    handler = _StderrHandler()
    handler.addFilter(_ByOrigin(ours, others))
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s") if ours <= logging.DEBUG
                         else _PlainFormatter("%(message)s"))
    root.addHandler(handler)
    root.setLevel(others)
    logging.getLogger("portaflow").setLevel(ours)
    logging.captureWarnings(True)


class PortaflowGroup(click.Group):
    """Turns portaflow's errors into messages and exit codes instead of tracebacks (kept with --debug)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except PortaflowError as exc:
            if _options(ctx).debug:
                traceback.print_exc()
            error_console.print(f"error: {exc}", markup=False)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt as exc:  # the driver's Interrupted carries the signal's exit code; a bare Ctrl-C is SIGINT
            error_console.print("interrupted: jobs cancelled, partial outputs removed")
            ctx.exit(getattr(exc, "exit_code", 130))


@click.group(cls=PortaflowGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="portaflow")
@click.option("--verbose", "-v", count=True, help="log to stderr what portaflow decides (-v), also each external command and other "
                                                  "libraries' notices (-vv)")
@click.option("--quiet", "-q", is_flag=True, help="only errors on stderr (no progress, no warnings)")
@click.option("--debug", is_flag=True, help="show tracebacks and log everything at DEBUG")
@click.pass_context
def cli(ctx: click.Context, verbose: int, quiet: bool, debug: bool) -> None:
    """portaflow: one workflow description, compiled to Parsl or Snakemake, for any site."""
    if quiet and (verbose or debug):
        raise click.UsageError("-q/--quiet cannot be combined with -v/--verbose or --debug")
    ctx.obj = CliOptions(verbose, quiet, debug)
    configure_logging(ctx.obj)
    err_console.quiet = quiet


def _params(workflow: Any, preset: str | None, params: tuple[str, ...], params_file: str | None) -> dict[str, Any]:
    """Parameter values: the preset's, then the file's, then each --param (later wins)."""
    values: dict[str, Any] = {}
    if preset:
        try:
            values.update(workflow.preset(preset))
        except KeyError as exc:
            raise InputError(f"--preset: {exc.args[0]}") from None
    if params_file:
        from portaflow.spec.yamlfile import read_yaml, to_plain

        values.update(to_plain(read_yaml(params_file).data))
    values.update({k: parse_value(v) for k, v in parse_assignments(params, "--param").items()})
    return values


def _load(workflow: str, site: str, site_set: tuple[str, ...], params: tuple[str, ...], params_file: str | None, preset: str | None = None,
          cores: int | None = None, jobs: int | None = None, job: str | None = None):
    from portaflow.driver import load_plan

    overrides = parse_assignments(site_set, "--site-set")
    if cores is not None or jobs is not None:  # the site's adapter says which profile values they stand for (or refuses)
        from portaflow.schedulers import adapter_for

        overrides.update(adapter_for(load_site(site, overrides)).shortcut_overrides(cores, jobs))
    # a CWL document is translated for this site (its container runtime runs DockerRequirements)
    loaded_wf = _workflow_file(workflow, job, load_site(site, overrides).site.container if is_cwl(workflow) else None)
    return load_plan(loaded_wf, site, overrides, _params(loaded_wf.workflow, preset, params, params_file))


def _workflow_file(workflow: str, job: str | None = None, container: Any = None) -> LoadedWorkflow:
    """A workflow file or a shipped workflow's name, or a CWL document (.cwl) with its job (`container`: the site's
    container settings, which run its DockerRequirements)."""
    if is_cwl(workflow):
        from portaflow.spec.cwl import load_cwl

        return load_cwl(workflow, job, container)
    if job:
        raise InputError(f"{job}: a CWL input object (job) goes with a CWL document (.cwl), not with {workflow}")
    return load_workflow(shipped.resolve_workflow(workflow))


def _cwl_job(workflow: str, targets: tuple[str, ...]) -> tuple[str | None, tuple[str, ...]]:
    """`run WORKFLOW.cwl JOB.yml`: the job is the first argument after a CWL document (the rest are targets)."""
    if is_cwl(workflow) and targets:
        return targets[0], targets[1:]
    return None, targets


def verbosity_options(command: Any) -> Any:
    """-v/-q after the subcommand too (`portaflow run wf.yaml -v`), as Snakemake and Nextflow users type them."""
    command = click.option("--verbose", "-v", "sub_verbose", count=True, help="as portaflow -v: log what portaflow decides (-vv: more)")(command)
    return click.option("--quiet", "-q", "sub_quiet", is_flag=True, help="as portaflow -q: only errors on stderr")(command)


def _apply_verbosity(sub_verbose: int, sub_quiet: bool) -> CliOptions:
    """The group's options with the subcommand's -v/-q added; logging reconfigured when they change anything."""
    ctx = click.get_current_context()
    options = _options(ctx)
    if not (sub_verbose or sub_quiet):
        return options
    merged = CliOptions(options.verbose + sub_verbose, options.quiet or sub_quiet, options.debug)
    if merged.quiet and (merged.verbose or merged.debug):
        raise click.UsageError("-q/--quiet cannot be combined with -v/--verbose or --debug")
    ctx.obj = merged
    configure_logging(merged)
    err_console.quiet = merged.quiet
    return merged


@cli.command()
@click.argument("workflow", type=click.Path())
@click.argument("targets", nargs=-1, metavar="[TARGET]...")
@site_option
@site_set_option
@engine_option
@param_option
@params_file_option
@preset_option
@click.option("--workdir", "-w", type=click.Path(file_okay=False), help="where outputs go (default: work/<workflow>)")
@click.option("--dry-run", "-n", is_flag=True, help="show what would run and why; submit nothing")
@click.option("--until", "until", multiple=True, metavar="STEP", help="run only this step (a step, a task such as 'gen[i=1]', or an "
              "output path) and what it needs; repeatable; TARGETs after the workflow do the same")
@click.option("--force", "force", multiple=True, metavar="STEP", help="rerun this step (step, task or output) even if up to date, and "
              "everything downstream of it; repeatable")
@click.option("--force-all", "-F", is_flag=True, help="rerun every task")
@click.option("--fail-fast/--keep-going", default=False, show_default=True,
              help="after a task fails, start no more tasks (default: keep running those that do not depend on it)")
@click.option("--cores", "-c", type=click.IntRange(min=1), default=None, help="local site: use at most N cores (default: all)")
@click.option("--jobs", "-j", type=click.IntRange(min=1), default=None, help="local site: run at most N tasks at once")
@click.option("--unlock", is_flag=True, help="only clear the lock a run left on the work directory (`portaflow unlock`); run nothing")
@verbosity_options
def run(workflow: str, targets: tuple[str, ...], site: str, site_set: tuple[str, ...], engine: str, params: tuple[str, ...],
        params_file: str | None, preset: str | None, workdir: str | None, dry_run: bool, until: tuple[str, ...], force: tuple[str, ...],
        force_all: bool, fail_fast: bool, cores: int | None, jobs: int | None, unlock: bool, sub_verbose: int, sub_quiet: bool) -> None:
    """Run WORKFLOW on a site with an engine; only stale tasks run (TARGETs: only what they need).

    WORKFLOW may be a CWL document (.cwl), its input object (JOB.yml) the first argument after it."""
    from portaflow import driver

    options = _apply_verbosity(sub_verbose, sub_quiet)
    job, targets = _cwl_job(workflow, targets)
    _, loaded_site, plan = _load(workflow, site, site_set, params, params_file, preset, cores, jobs, job)
    wd = Path(workdir) if workdir else driver.default_workdir(plan, loaded_site)
    if unlock:
        _unlock(wd)
        return
    selection = driver.Selection(until=tuple(until) + tuple(targets), force=tuple(force), force_all=force_all)
    driver.select(plan, selection.until, "--until")  # an unknown name: exit 2 before the work directory is touched
    driver.select(plan, selection.force, "--force")
    if dry_run:
        from portaflow.preflight import preflight

        preflight(plan, loaded_site, wd.resolve(), check_scheduler=False)
        stale = driver.tasks_to_run(plan, loaded_site, wd.resolve(), selection=selection)
        left = {t.id for t in stale.not_requested}
        _plan_table(plan, loaded_site, {t.id for t in stale.todo}, left)
        for task in stale.todo:
            console.print(f"  {escape(task.display)}: {escape(stale.reasons[task.id])}")
        console.print(f"dry run: {len(stale.todo)} of {len(plan.tasks)} task(s) would run on {loaded_site.site.name} with {engine}"
                      + (f"; {len(left)} stale task(s) not needed by the targets" if left else ""))
        return
    err_console.print(f"portaflow {plan.workflow}: {len(plan.tasks)} task(s) on site {loaded_site.site.name} with {engine}; work directory {wd}")
    result = driver.run(plan, loaded_site, engine, wd, quiet=options.quiet, selection=selection, keep_going=not fail_fast)
    _summary(result)
    if is_cwl(workflow) and result.ok:
        from portaflow.spec.cwl import OUTPUT_OBJECT

        console.print(f"CWL output object: {result.workdir / OUTPUT_OBJECT}", markup=False)
    if not result.ok:
        sys.exit(1)


def _summary(result: Any) -> None:
    if not result.ran:
        console.print("nothing to do: every output is up to date" + (" (no run directory made)" if result.run_dir is None else ""))
        if result.not_requested:
            console.print(f"{len(result.not_requested)} stale task(s) not needed by the targets were left alone")
        return
    status = "[red]FAILED[/red]" if result.failed else "[green]succeeded[/green]"
    left = f", {len(result.not_requested)} not requested" if result.not_requested else ""
    console.print(f"run {result.run_id} {status}: {len(result.ran)} task(s) run, {len(result.skipped) - len(result.not_requested)} up to "
                  f"date{left}, {len(result.failed)} failed")
    for task_id, outcome in result.failed.items():
        log = result.run_dir / "logs" / f"{task_id}.log"
        where = f" job {outcome.job_id}" if outcome.job_id else ""
        code = f" exit code {outcome.exit_code}" if outcome.exit_code is not None else ""
        console.print(f"  [red]failed[/red] {escape(task_id)}{where}{code}: {escape(outcome.message)}")
        tail = _tail(log)
        if tail:
            console.print("    " + "\n    ".join(escape(line) for line in tail), style="dim")
        console.print(f"    log: {log}")
    console.print(f"outputs:  {result.workdir}")
    console.print(f"manifest: {result.run_dir / 'manifest.json'}")


def _tail(path: Path, lines: int = 6) -> list[str]:
    """The last lines of a step's log: usually the error a user needs first."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return []
    text = text.rpartition("--> end executable <--")[2]  # Parsl echoes the script before its output
    return text.rstrip().splitlines()[-lines:]


def _workdir_of(workflow: str | None, workdir: str | None, site: str, site_set: tuple[str, ...]) -> Path:
    """-w DIR, or WORKFLOW's default work directory on the site (as `run` would choose it)."""
    from portaflow import driver

    if workdir:
        return Path(workdir)
    if not workflow:
        raise click.UsageError("give a WORKFLOW or --workdir DIR")
    loaded_wf = _workflow_file(workflow)
    return driver.workdir_for(loaded_wf.workflow.name, load_site(site, parse_assignments(site_set, "--site-set")))


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


@cli.command("runs")
@click.argument("workflow", required=False, type=click.Path())
@click.option("--workdir", "-w", type=click.Path(file_okay=False), help="the work directory (default: WORKFLOW's, as run chooses it)")
@site_option
@site_set_option
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
def runs_cmd(workflow: str | None, workdir: str | None, site: str, site_set: tuple[str, ...], as_json: bool) -> None:
    """List a work directory's runs: id, engine, site, start, duration, state, task counts."""
    from portaflow import driver

    wd = _workdir_of(workflow, workdir, site, site_set)
    runs = driver.list_runs(wd)
    if as_json:
        click.echo(json.dumps([{"run_id": r.run_id, "engine": r.engine, "site": r.site, "started": r.started, "finished": r.finished,
                                "duration_s": r.duration_s, "state": r.state, "tasks": r.counts, "path": str(r.path)} for r in runs], indent=2))
        return
    if not runs:
        console.print(f"no runs in {wd}")
        return
    table = Table(title=f"runs in {wd}")
    for col in ("run", "engine", "site", "started", "duration", "state", "tasks"):
        table.add_column(col)
    for r in runs:
        table.add_row(r.run_id, r.engine, r.site, (r.started or "-").replace("T", " "), _duration(r.duration_s), r.state,
                      ", ".join(f"{n} {k}" for k, n in sorted(r.counts.items())) or "-")
    console.print(table)


@cli.command("report")
@click.argument("run", required=False)
@click.option("--workdir", "-w", type=click.Path(file_okay=False), default=".", show_default=True, help="the work directory whose run to report")
@click.option("--output", "-o", type=click.Path(dir_okay=False), help="the HTML file to write (default: <run dir>/report.html)")
def report_cmd(run: str | None, workdir: str, output: str | None) -> None:
    """Write a run's report (RUN: its id or run directory; default the newest) as one self-contained HTML file."""
    from portaflow import report

    path = report.write_report(report.find_run(Path(workdir), run), Path(output) if output else None)
    click.echo(str(path))


@cli.command("unlock")
@click.argument("workflow", required=False, type=click.Path())
@click.option("--workdir", "-w", type=click.Path(file_okay=False), help="the work directory (default: WORKFLOW's, as run chooses it)")
@site_option
@site_set_option
def unlock_cmd(workflow: str | None, workdir: str | None, site: str, site_set: tuple[str, ...]) -> None:
    """Clear the lock of a run that did not release the work directory (a run on another host, killed or lost).

    Refused while a run on this host holds it, or while the run it names still runs on this host."""
    _unlock(_workdir_of(workflow, workdir, site, site_set))


def _unlock(workdir: Path) -> None:
    from portaflow.engines.state import WorkdirLock

    holder = WorkdirLock(workdir.resolve()).unlock()
    if holder:
        console.print(f"unlocked {workdir}: cleared run {holder.get('run_id', '?')} (pid {holder.get('pid', '?')} on host "
                      f"{holder.get('host', '?')}, since {holder.get('started', '?')})", markup=False)
    else:
        console.print(f"{workdir} was not locked", markup=False)


@cli.command("clean")
@click.argument("workflow", required=False, type=click.Path())
@click.option("--workdir", "-w", type=click.Path(file_okay=False), help="the work directory (default: WORKFLOW's, as run chooses it)")
@site_option
@site_set_option
@click.option("--keep", default=5, show_default=True, type=click.IntRange(min=0), help="how many of the newest runs to keep")
@click.option("--dry-run", "-n", is_flag=True, help="say what would be removed; remove nothing")
def clean_cmd(workflow: str | None, workdir: str | None, site: str, site_set: tuple[str, ...], keep: int, dry_run: bool) -> None:
    """Remove old run records (.portaflow/runs/<run>), keeping the newest N; outputs and task records stay."""
    from portaflow import driver

    wd = _workdir_of(workflow, workdir, site, site_set)
    removed = driver.clean_runs(wd, keep, dry_run=dry_run)
    for path in removed:
        console.print(f"{'would remove' if dry_run else 'removed'} {path}")
    console.print(f"{len(removed)} run record(s) {'would be ' if dry_run else ''}removed from {wd}")


@cli.command()
@click.argument("workflow", type=click.Path())
@click.argument("job", required=False, type=click.Path(dir_okay=False))
@site_option
@site_set_option
@engine_option
@param_option
@params_file_option
@preset_option
@click.option("--output", "-o", "out", required=True, type=click.Path(file_okay=False), help="directory for the rendered files")
@click.option("--workdir", "-w", type=click.Path(file_okay=False), help="work directory the rendered files refer to")
def render(workflow: str, job: str | None, site: str, site_set: tuple[str, ...], engine: str, params: tuple[str, ...], params_file: str | None,
        preset: str | None, out: str, workdir: str | None) -> None:
    """Write exactly what would be submitted, without running anything (JOB: a CWL document's input object)."""
    from portaflow import driver

    _, loaded_site, plan = _load(workflow, site, site_set, params, params_file, preset, job=job)
    for f in driver.render(plan, loaded_site, engine, Path(out), Path(workdir) if workdir else None):
        console.print(str(f))


@cli.command("plan")
@click.argument("workflow", type=click.Path())
@click.argument("job", required=False, type=click.Path(dir_okay=False))
@site_option
@site_set_option
@param_option
@params_file_option
@preset_option
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
def plan_cmd(workflow: str, job: str | None, site: str, site_set: tuple[str, ...], params: tuple[str, ...], params_file: str | None,
        preset: str | None, as_json: bool) -> None:
    """Show the tasks: step -> partition, resources, container, job options (JOB: a CWL document's input object)."""
    _, loaded_site, plan = _load(workflow, site, site_set, params, params_file, preset, job=job)
    if as_json:
        console.print_json(json.dumps([_task_json(t) for t in plan.tasks]))
        return
    _plan_table(plan, loaded_site, None)


def _task_json(task: Any) -> dict[str, Any]:
    r = task.resources
    return {"id": task.id, "step": task.step, "partition": task.partition, "partition_reason": task.partition_reason,
            "cores": r.cores, "memory_mib": r.memory_mib,
            "walltime_s": r.walltime_s, "gpus": r.gpus, "container": task.container, "depends": list(task.depends)}


def _plan_table(plan: Any, loaded: LoadedSite, to_run: set[str] | None, not_requested: set[str] = frozenset()) -> None:
    from portaflow.schedulers import adapter_for
    from portaflow.schedulers.parsl_blocks import partition_limit_notes
    from portaflow.units import format_walltime

    scheduler = adapter_for(loaded)
    table = Table(title=f"{plan.workflow} on {loaded.site.name} ({loaded.site.scheduler}): {len(plan.tasks)} task(s)")
    for col in ("task", "partition", "cores", "memory", "walltime", "gpus", "container", "job options"):
        table.add_column(col)
    if to_run is not None:
        table.add_column("will run")
    for t in plan.tasks:
        r = t.resources
        row = [escape(t.display), t.partition, str(r.cores), f"{r.memory_mib} MiB", format_walltime(r.walltime_s),
               str(r.gpus) + (f" ({r.gpu_model})" if r.gpu_model else ""), t.container or "-",
               escape(" ".join(scheduler.directives(r, t.partition))) or "-"]
        if to_run is not None:
            row.append("yes" if t.id in to_run else "not requested" if t.id in not_requested else "up to date")
        table.add_row(*row)
    console.print(table)
    for note in partition_limit_notes(loaded.site, plan.tasks, scheduler.parsl_blocks_hold_one_image(), scheduler.blocks_are_jobs):
        console.print(escape(note), soft_wrap=True, highlight=False)
    # Why each step's tasks went where they did: one line per step (its tasks share a request), not per partition.
    seen: set[str] = set()
    for t in plan.tasks:
        if t.step not in seen and t.partition_reason:
            seen.add(t.step)
            console.print(f"{escape(t.step)}: {escape(t.partition_reason)}", soft_wrap=True, highlight=False)


@cli.command()
@click.argument("files", nargs=-1, required=True, type=click.Path())
@click.option("--site", "site_names", multiple=True, help="also plan each workflow on this site (name or file): do its steps fit? (repeatable)")
def validate(files: tuple[str, ...], site_names: tuple[str, ...]) -> None:
    """Check workflow and site profile files; report every problem with its location.

    A workflow is planned with its default parameters, as `plan` would plan it (scatter lists, templates, paths,
    clashing outputs, cycles), and with --site on that site too (whether each step fits its partitions)."""
    from portaflow.errors import PlanError, SpecError
    from portaflow.plan import make_plan
    from portaflow.plan.planner import LocatedPlanError, check_workflow, located
    from portaflow.schedulers import adapter_for

    problems: list[str] = []
    workflows: list[tuple[str, LoadedWorkflow]] = []
    sites: list[LoadedSite] = []
    for name in files:
        try:
            loaded = _workflow_file(name) if is_cwl(name) else load_any(shipped.resolve_workflow(name))
            if isinstance(loaded, LoadedSite):
                adapter = adapter_for(loaded)
                adapter.check()
                console.print(f"{name}: ok (site profile {loaded.site.name}, scheduler {loaded.site.scheduler})")
                for note in adapter.unverifiable_here():
                    console.print(f"{name}: not checkable here: {escape(note)}")
            else:
                try:
                    check_workflow(loaded.workflow, dict(loaded.workflow.parameters))
                except LocatedPlanError as exc:
                    raise located(exc, loaded.document) from None
                except PlanError as exc:
                    raise InputError(f"{loaded.path}: {exc}") from None
                workflows.append((name, loaded))
                console.print(f"{name}: ok (workflow {loaded.workflow.name}, {len(loaded.workflow.steps)} steps)")
        except SpecError as exc:
            problems.extend(str(p) for p in exc.problems)
        except InputError as exc:
            problems.append(f"{name}: {exc}")
    for site_name in site_names:
        try:
            loaded_site = load_site(site_name)
            adapter_for(loaded_site).check()
            sites.append(loaded_site)
        except SpecError as exc:
            problems.extend(str(p) for p in exc.problems)
        except InputError as exc:
            problems.append(f"--site {site_name}: {exc}")
    for name, loaded_wf in workflows:  # each request against each --site: what `plan --site` would refuse
        for loaded_site in sites:
            try:
                make_plan(loaded_wf.workflow, loaded_site.site, {})
            except LocatedPlanError as exc:
                problems.extend(f"{p} (on site {loaded_site.site.name})" for p in located(exc, loaded_wf.document).problems)
            except PlanError as exc:
                problems.append(f"{name}: on site {loaded_site.site.name}: {exc}")
    if problems:
        raise InputError(f"{len(problems)} problem(s):\n" + "\n".join(problems))


@cli.command()
def sites() -> None:
    """List shipped and user site profiles."""
    table = Table(title="site profiles")
    for col in ("name", "scheduler", "description", "file"):
        table.add_column(col)
    seen: set[str] = set()
    for directory in site_search_path():
        if not directory.is_dir():
            continue
        for path in sorted(directory.glob("*.y*ml")):
            if path.stem in seen:
                continue
            seen.add(path.stem)
            try:
                site = load_site(str(path), environ={}).site
                table.add_row(site.name, site.scheduler, (site.description + (" [example]" if site.example else "")).strip(), str(path))
            except PortaflowError as exc:
                table.add_row(path.stem, "?", f"invalid: {str(exc).splitlines()[0]}", str(path))
    console.print(table)


@cli.command("workflows")
def workflows_cmd() -> None:
    """List the shipped workflows; run, plan, render and validate accept their names (e.g. examples/wordfreq)."""
    table = Table(title="shipped workflows")
    for col in ("name", "description", "file"):
        table.add_column(col, overflow="fold")
    for path in shipped.workflows():
        try:
            description = load_workflow(path).workflow.description or ""
        except PortaflowError as exc:
            description = f"invalid: {str(exc).splitlines()[0]}"
        table.add_row(shipped.workflow_name(path), escape(description), str(path))
    console.print(table)


@cli.command()
@click.argument("kind", type=click.Choice(["workflow", "site"]))
def schema(kind: str) -> None:
    """Print the JSON Schema of workflow or site files (for editors)."""
    from portaflow.spec import SiteProfile, Workflow

    model = Workflow if kind == "workflow" else SiteProfile
    click.echo(json.dumps(model.model_json_schema(), indent=2))


@cli.command()
@click.option("--workflows", "workflow_args", multiple=True, metavar="FILE", help="workflow files (default: every shipped workflow); repeatable")
@click.option("--sites", "site_args", multiple=True, metavar="SITE", help="site profiles, names or files (default: every shipped profile); "
                                                                          "repeatable")
@click.option("--engines", "engine_args", multiple=True, type=click.Choice(["parsl", "snakemake"]), help="engines (default: both); repeatable")
@click.option("--preset", default="small", show_default=True, help="each workflow's parameter preset, where it has one ('' for the defaults)")
@click.option("--output", "-o", "out", default="matrix-results", show_default=True, type=click.Path(file_okay=False),
              help="where cells and reports go")
@click.option("--must-run", multiple=True, metavar="SITE", help="a site whose cells must really run here (e.g. your CI's cluster); repeatable")
@click.option("--jobs", "-j", default=1, show_default=True, type=click.IntRange(min=1), help="cells that run at once (the report is the same)")
def matrix(workflow_args: tuple[str, ...], site_args: tuple[str, ...], engine_args: tuple[str, ...], preset: str, out: str,
           must_run: tuple[str, ...], jobs: int) -> None:
    """Every workflow x site x engine: run what can run here, render and check the rest, compare all outputs.

    Writes matrix.md, matrix.json and matrix.html; exits 1 when a cell failed or two cells' outputs disagree.
    """
    from portaflow.matrix import ENGINES, rows, run_matrix, write_reports

    workflows = [Path(shipped.resolve_workflow(w)) for w in workflow_args] or shipped.workflows()
    sites = list(site_args) or [p.stem for p in shipped.site_profiles()]
    result = run_matrix(workflows, sites, list(engine_args) or list(ENGINES), Path(out), preset or None,
                        must_run=must_run, log=lambda text: err_console.print(text, markup=False),
                        jobs=jobs)
    table = Table(title=f"portability matrix: {'passed' if result.ok else 'FAILED'}")
    for column in ("workflow", "site", "engine", "status", "wall", "tasks", "jobs", "note"):
        table.add_column(column, overflow="fold")
    for row in rows(result):
        table.add_row(*[escape(v) for v in (*row[:7], row[8])])
    console.print(table)
    for d in result.disagreements:
        console.print(f"DISAGREEMENT {d.workflow}: {d.cell} vs {d.reference}: " + "; ".join(f"{p} ({w})" for p, w in d.files.items()), markup=False)
    for kind, path in write_reports(result, Path(out)).items():
        console.print(f"{kind}: {path}", markup=False)
    if not result.ok:
        sys.exit(1)


@cli.group()
def containers() -> None:
    """Container images for the workflows' steps."""


@containers.command("render")
@click.option("--directory", "-d", type=click.Path(file_okay=False), default=None, help="recipes directory (default: the shipped containers/)")
def containers_render(directory: str | None) -> None:
    """Write NAME.def (Apptainer) and NAME.Containerfile (podman/docker) from each NAME.yaml recipe."""
    from portaflow.containers.recipes import render_all

    for path, text in render_all(Path(directory) if directory else shipped.containers_dir()).items():
        path.write_text(text)
        console.print(str(path))


@containers.command("build")
@click.argument("name")
@click.option("--runtime", "-r", type=click.Choice(["podman", "docker", "apptainer", "singularity"]), default="podman", show_default=True)
@click.option("--base", default=None, help="base image instead of the recipe's: a local image (podman/docker) or a local SIF/sandbox (apptainer)")
@click.option("--image", default=None, help="tag (podman/docker) or SIF path (apptainer); default: what sites resolve by default")
@click.option("--executable", default=None, help="the runtime's binary, if not its name on PATH")
@click.option("--directory", "-d", type=click.Path(file_okay=False), default=None, help="recipes directory (default: the shipped containers/)")
@click.option("--force", is_flag=True, help="build even when the image was built from the same recipe, base and wheels (podman/docker)")
def containers_build(name: str, runtime: str, base: str | None, image: str | None, executable: str | None, directory: str | None,
                     force: bool) -> None:
    """Build container NAME (containers/NAME.yaml) on this machine, with no registry when --base is local."""
    from portaflow.containers.build import build_image

    source = shipped.source_checkout()
    if source is None:  # the image gets portaflow's own wheel, which pip builds from the source
        raise InputError("portaflow containers build needs portaflow's source checkout (it builds portaflow's wheel "
                         "into the image); run it from a checkout's environment (pip install -e .)")
    built = build_image(name, runtime, Path(directory) if directory else shipped.containers_dir(), source,
                        base=base, image=image, executable=executable, log=lambda text: err_console.print(text, markup=False), force=force)
    console.print(f"{'built' if built.rebuilt else 'kept'} {built.image} ({built.runtime}) digest {built.digest or 'unknown'}", markup=False)


@containers.command("base")
@click.option("--tag", default=None, help="image name (default: localhost/portaflow-base:bookworm)")
@click.option("--suite", default="bookworm", show_default=True, help="Debian release (its python3 must be >= 3.11)")
@click.option("--mirror", default="http://deb.debian.org/debian", show_default=True)
@click.option("--executable", default="podman", show_default=True, help="podman or docker")
def containers_base(tag: str | None, suite: str, mirror: str, executable: str) -> None:
    """Make a local Debian base image with Python (debootstrap + import): builds then need no registry."""
    from portaflow.containers.build import BASE_TAG, bootstrap_base

    built = bootstrap_base(tag or BASE_TAG, suite, mirror, executable, log=lambda text: err_console.print(text, markup=False))
    console.print(f"built {built.image} digest {built.digest or 'unknown'}", markup=False)


@cli.group("site")
def site_group() -> None:
    """Check a site profile against the site, from its login node."""


@site_group.command("check")
@click.argument("site")
@site_set_option
@click.option("--partition", "partitions", multiple=True, metavar="NAME", help="probe only this partition (default: every one); repeatable")
@click.option("--container", default=None, metavar="NAME", help="run the probe in this container's image (default: the profile's first "
                                                                 "container.images entry, if the site uses a runtime)")
@click.option("--timeout", "timeout_s", default=120, show_default=True, type=click.IntRange(min=5), help="seconds to wait for every probe")
@click.option("--workdir", "-w", type=click.Path(file_okay=False), default=None,
              help="where the probes' scripts and results go; jobs must see it (default: ./.portaflow/site-check/<site>)")
@click.option("--no-probe", "no_probe", is_flag=True, help="only compare the profile with the scheduler's answers (partitions, limits, "
                                                           "accounts, QOS, clusters, servers); submit no probe job")
@click.option("--json", "as_json", is_flag=True, help="machine-readable report on stdout")
def site_check(site: str, site_set: tuple[str, ...], partitions: tuple[str, ...], container: str | None, timeout_s: int,
               workdir: str | None, no_probe: bool, as_json: bool) -> None:
    """Compare SITE's profile with the scheduler, then submit one tiny probe job per partition and report what it found.

    The comparison (nothing submitted): each partition exists and gives what the profile promises (max time, cores,
    memory, GPUs and their models), the accounts and QOS exist for you, the clusters and servers answer. Each probe runs
    the site's environment set-up (modules, worker_init), looks for the container runtime (and runs in the image), notes
    the GPUs it sees, writes to the storage directories, and connects back to the address a run's workers would be told
    (a listener on that one address). Each result: passed, wrong (profile says X, site says Y, the key to change) or
    could not check (why). Exit 0 when nothing is wrong, 1 with a table of what is."""
    from portaflow.sitecheck import check_site, rows

    loaded = load_site(site, parse_assignments(site_set, "--site-set"))
    directory = Path(workdir) if workdir else Path(".portaflow") / "site-check" / loaded.site.name
    report = check_site(loaded, directory, list(partitions) or None, container, float(timeout_s),
                        progress=None if as_json else (lambda text: err_console.print(text, markup=False)), probe=not no_probe)
    if as_json:
        click.echo(json.dumps(report.as_json(), indent=2))
    else:
        verdict = "passed" if report.ok else "WRONG"
        compared = Table(title=f"{report.site}: the profile against the scheduler ({verdict}; "
                               + ", ".join(f"{report.count(v)} {v}" for v in ("passed", "wrong", "could not check")) + ")")
        for column in ("check", "key", "profile says", "site says", "verdict"):
            compared.add_column(column, overflow="fold")
        for f in report.findings:
            style = {"wrong": "red", "could not check": "yellow"}.get(f.verdict, "green")
            compared.add_row(*[escape(v or "-") for v in (f.what, f.key, f.profile, f.site)],
                             f"[{style}]{escape(f.verdict + (': ' + f.why if f.why else ''))}[/{style}]")
        console.print(compared)
        where = (f"{report.address}" + (f" on {report.interface}" if report.interface else "") + f" ({report.chosen_by})"
                 if report.address else "none")
        console.print(f"driver address: {where}", markup=False)
        if report.address_problem:
            console.print(f"[red]address problem[/red]: {escape(report.address_problem)}")
    if not as_json and not report.probed:
        console.print("no probe jobs: " + ("--no-probe" if no_probe else "the scheduler's adapter cannot submit them from here"), markup=False)
    elif not as_json:
        table = Table(title=f"site check of {report.site}: {'passed' if report.ok else 'PROBLEMS'} ({report.elapsed_s:g} s)")
        for column in ("partition", "job", "queue wait", "host", "set-up", "container", "storage", "driver address", "GPUs", "verdict"):
            table.add_column(column, overflow="fold")
        for row in rows(report):
            table.add_row(*[escape(v) for v in row])
        console.print(table)
        if report.timed_out:
            console.print(f"timeout: not every probe reported within {report.timeout_s:g} s (--timeout); the rest were cancelled")
        console.print(f"probe files: {report.directory}", markup=False)
    if not report.ok:
        sys.exit(1)


@cli.group("export")
def export_group() -> None:
    """Write a workflow in another workflow language (CWL), to run it elsewhere."""


@export_group.command("cwl")
@click.argument("workflow", type=click.Path())
@site_option
@site_set_option
@param_option
@params_file_option
@preset_option
@click.option("--output", "-o", "out", required=True, type=click.Path(file_okay=False), help="folder for the CWL files (new, empty, or an "
                                                                                                "earlier export, which is replaced)")
@click.option("--workdir", "-w", type=click.Path(file_okay=False), help="where input files no step makes are found, as `run` finds "
                                                                       "them (default: the work directory `run` would use)")
def export_cwl_cmd(workflow: str, site: str, site_set: tuple[str, ...], params: tuple[str, ...], params_file: str | None, preset: str | None,
                   out: str, workdir: str | None) -> None:
    """A CWL v1.2 Workflow, one CommandLineTool per step and a job file of the parameters (docs/cwl.md)."""
    from portaflow.driver import default_workdir
    from portaflow.exchange.cwl_export import export_cwl

    loaded_wf, loaded_site, plan = _load(workflow, site, site_set, params, params_file, preset)
    # the work directory matters only for input files no step makes (a site's may name variables unset here)
    where = Path(workdir) if workdir else default_workdir(plan, loaded_site) if plan.external_inputs else Path.cwd()
    for path in export_cwl(loaded_wf, loaded_site, plan, Path(out), where):
        console.print(str(path), markup=False)


def main() -> None:
    cli(prog_name="portaflow")


if __name__ == "__main__":
    main()
