"""The portability matrix: every workflow x every site x both engines, run where it can run, rendered and
checked with the scheduler's own parser where it cannot, and the outputs of every run compared.

Why runs go through the `portaflow run` command in a subprocess: a cell is then exactly what a user
gets (exit code, manifest, logs), one cell's crash cannot take the others down, and wall times are
real. Renders stay in-process: they are pure and there are many of them.
"""

from __future__ import annotations

import html
import json
import logging
import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from portaflow.commands import run_command
from portaflow.errors import PortaflowError
from portaflow.gpuprobe import unavailable_reason
from portaflow.plan.model import Plan
from portaflow.preflight import container_problems
from portaflow.spec.loading import LoadedSite, load_site, load_workflow

PASSED, FAILED, RENDERED, UNSUPPORTED, SKIPPED = "passed", "failed", "rendered-only", "unsupported", "skipped"
ENGINES = ("parsl", "snakemake")
GPU_SKIP = "GPU steps, and GPUs here cannot compute"
EXAMPLE_ACCOUNT = "matrix-example"
"""The account set on example profiles that require one: their cells only render."""

logger = logging.getLogger(__name__)
"""(Named so: `log` is run_matrix's callback for the one-line notes a person watches.)"""


@dataclass
class Cell:
    workflow: str
    site: str
    engine: str
    status: str = SKIPPED
    reason: str = ""
    wall_s: float | None = None
    tasks: int | None = None
    jobs: int | None = None
    outputs: dict[str, str] = field(default_factory=dict)
    """output path -> sha256 (from the run's manifest)"""
    workdir: str | None = None
    rendered: list[str] = field(default_factory=list)
    report: str | None = None
    """The run's report (`portaflow report`: its DAG, timeline, logs, outputs with previews), for a cell that ran."""

    @property
    def name(self) -> str:
        return f"{self.workflow} @ {self.site} / {self.engine}"


@dataclass
class Disagreement:
    workflow: str
    reference: str
    cell: str
    files: dict[str, str]
    """output path -> what differs"""


@dataclass
class MatrixResult:
    cells: list[Cell]
    disagreements: list[Disagreement]
    parameters: dict[str, Any]

    @property
    def ok(self) -> bool:
        return not self.disagreements and all(c.status != FAILED for c in self.cells)


def run_matrix(workflows: list[Path], sites: list[str], engines: list[str], out_dir: Path, preset: str | None = "small",
               must_run: tuple[str, ...] = (), log: Callable[[str], None] = print, jobs: int = 1) -> MatrixResult:
    """Every (workflow, site, engine) cell; then the outputs of the cells that ran, compared per workflow.

    `must_run` names sites whose cells must really run here (a CI's own cluster): on those, a cell that
    could only be rendered, or was skipped for any reason but GPUs that cannot compute, fails.

    `jobs` cells run at once. Why only the runs: each is a `portaflow run` subprocess that mostly waits (on
    a scheduler's queue and polling, on its workers), while planning and rendering are quick, in-process
    and stay in order. The report lists the cells in the same order whatever `jobs` is; only the progress
    lines of cells that ran come in the order the runs end.
    """
    from concurrent.futures import Future, ThreadPoolExecutor, as_completed  # here: the module's imports belong to others

    out_dir.mkdir(parents=True, exist_ok=True)
    cells: list[Cell] = []
    plans: dict[str, Plan] = {}
    gpu_problem = unavailable_reason()
    logger.info("matrix: %d workflow(s) x %d site(s) x %d engine(s) in %s; GPU steps %s", len(workflows), len(sites), len(engines),
                out_dir, f"skipped ({gpu_problem})" if gpu_problem else "run")

    def finish(cell: Cell) -> None:
        if cell.site in must_run and cell.status in (RENDERED, SKIPPED) and not cell.reason.startswith(GPU_SKIP):
            cell.status, cell.reason = FAILED, f"must run here (--must-run {cell.site}) but: {cell.reason}"
        log(f"{cell.name}: {cell.status}" + (f" ({cell.reason})" if cell.reason else "")
            + (f" in {cell.wall_s:.0f}s" if cell.wall_s is not None else ""))
        _log_outcome(cell, out_dir / "cells" / f"{cell.workflow}--{cell.site}--{cell.engine}")

    running: dict[Future[None], Cell] = {}

    def finish_ended(wait_for_all: bool) -> None:
        ended = as_completed(list(running)) if wait_for_all else [f for f in list(running) if f.done()]
        for future in ended:
            future.result()  # a cell's run raising (not failing: raising) stops the matrix, as it did in order
            finish(running.pop(future))

    with ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="matrix-cell") as pool:
        for wf_path in workflows:
            loaded_wf = load_workflow(wf_path)
            workflow = loaded_wf.workflow
            params = workflow.preset(preset) if preset and preset in workflow.presets else {}
            for site_name in sites:
                for engine in engines:
                    cell = Cell(workflow.name, site_name, engine)
                    cells.append(cell)
                    cell_dir = out_dir / "cells" / f"{workflow.name}--{site_name}--{engine}"
                    logger.info("cell %s: start", cell.name)
                    run = _decide(cell, wf_path, loaded_wf, site_name, params, cell_dir, gpu_problem, plans)
                    if run is None:
                        finish(cell)
                    elif jobs <= 1:
                        run()
                        finish(cell)
                    else:
                        running[pool.submit(run)] = cell
                    finish_ended(wait_for_all=False)
        finish_ended(wait_for_all=True)
    disagreements = compare_cells(cells, plans)
    logger.info("matrix: %d disagreement(s) between cells' outputs", len(disagreements))
    return MatrixResult(cells, disagreements, {"preset": preset})


def _log_outcome(cell: Cell, cell_dir: Path) -> None:
    """The details of a cell's outcome that its one-line note leaves out (-v shows them)."""
    logger.info("cell %s: %s task(s), %s scheduler job(s), %d output(s) to compare; files in %s", cell.name,
                "no" if cell.tasks is None else cell.tasks, "no" if cell.jobs is None else cell.jobs, len(cell.outputs), cell_dir)


def _decide(cell: Cell, wf_path: Path, loaded_wf: Any, site_name: str, params: dict[str, Any], cell_dir: Path,
            gpu_problem: str | None, plans: dict[str, Plan]) -> Callable[[], None] | None:
    """Plan the cell, then render it or say why it cannot run; or return the run, for the caller to start
    (the runs are what may overlap)."""
    from portaflow.driver import load_plan

    try:
        site = load_site(site_name, {}).site
        overrides = {"account": EXAMPLE_ACCOUNT} if site.account_required and not site.account else {}
        _, loaded_site, plan = load_plan(loaded_wf, site_name, overrides, params)
    except PortaflowError as exc:
        cell.status, cell.reason = UNSUPPORTED, _first_line(exc)
        return None
    needs_gpu = any(t.resources.gpus or (t.dask and t.dask.gpu_workers) for t in plan.tasks)
    why_not_here = _not_runnable_here(loaded_site, plan)
    # a workflow of the user's own data (radio/image-ms: an MS path as a parameter) has nothing to read here
    absent = [p for p in plan.external_inputs if not (cell_dir / "work" / p).exists()]
    if why_not_here:
        render_cell(cell, plan, loaded_site, cell_dir, why_not_here)
    elif absent:
        cell.status, cell.reason = UNSUPPORTED, (f"reads {absent[0]}, which no step produces and which is not here "
                                                 "(a workflow of your own data: give its path with --param)")
    elif needs_gpu and gpu_problem:
        cell.status, cell.reason = SKIPPED, f"{GPU_SKIP}: {gpu_problem}"
    elif (missing := container_problems(plan, loaded_site.site)):
        cell.status, cell.reason = SKIPPED, "; ".join(missing)
    else:
        plans[cell.workflow] = plan
        return lambda: _run_cell(cell, wf_path, params, cell_dir)
    return None


def _not_runnable_here(loaded: LoadedSite, plan: Plan) -> str | None:
    """Why this site's jobs cannot be submitted from here (None: run the cell)."""
    from portaflow.schedulers import adapter_for

    if loaded.site.example:
        return "example profile of a site not reachable from here"
    problems = adapter_for(loaded).connection_problems()
    return "; ".join(problems) if problems else None


def render_cell(cell: Cell, plan: Plan, loaded: LoadedSite, cell_dir: Path, why: str) -> None:
    """Render what the engine would submit and have the scheduler's own checks read it."""
    from portaflow.driver import render, workdir_for
    from portaflow.errors import SpecError
    from portaflow.schedulers import adapter_for

    render_dir = cell_dir / "rendered"
    shutil.rmtree(render_dir, ignore_errors=True)
    started = time.perf_counter()
    try:
        workdir = workdir_for(plan.workflow, loaded)
    except SpecError:  # storage.work_dir names a variable only that site sets ($SCRATCH): render into the cell's own
        workdir = cell_dir / "work"
    try:
        files = render(plan, loaded, cell.engine, render_dir, workdir=workdir)
        problems = adapter_for(loaded).check_rendered(files)
    except PortaflowError as exc:
        cell.status, cell.reason = UNSUPPORTED, _first_line(exc)
        return
    except Exception as exc:  # a renderer's bug fails its cell, not the whole matrix
        cell.status, cell.reason = FAILED, f"rendering failed: {type(exc).__name__}: {_first_line(exc)}"
        return
    cell.wall_s = time.perf_counter() - started
    cell.rendered = [str(f) for f in files]
    cell.tasks = len(plan.tasks)
    unverifiable = adapter_for(loaded).unverifiable_here()
    if problems:
        cell.status, cell.reason = FAILED, "rendered files rejected: " + "; ".join(problems[:3])
    else:
        cell.status, cell.reason = RENDERED, why + (f"; not checkable here: {', '.join(unverifiable)}" if unverifiable else "")


def _run_cell(cell: Cell, wf_path: Path, params: dict[str, Any], cell_dir: Path) -> None:
    workdir = cell_dir / "work"
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    argv = [sys.executable, "-m", "portaflow", "run", str(wf_path), "--site", cell.site, "--engine", cell.engine,
            "--workdir", str(workdir)] + [w for k, v in params.items() for w in ("--param", f"{k}={v}")]
    started = time.perf_counter()
    # No time limit (a cell on a busy cluster takes what it takes; killing `portaflow run` would leave its
    # jobs behind), and its exit code is the cell's verdict, read below rather than raised.
    from portaflow.schedulers import scheduler_for

    result = run_command(argv, check=False, timeout=None, input="", level=logging.INFO)
    cell.wall_s = time.perf_counter() - started
    cell.workdir = str(workdir)
    (cell_dir / "portaflow.log").write_text(result.stdout + result.stderr)
    manifest_path = workdir / ".portaflow" / "runs" / "latest" / "manifest.json"
    if manifest_path.exists():
        manifest = json.loads(manifest_path.read_text())
        cell.tasks = len(manifest["tasks"])
        # the scheduler's jobs where jobs have ids; where each task is a process on this machine, one per task
        jobs_have_ids = scheduler_for(manifest["scheduler"]).blocks_are_jobs
        cell.jobs = len(manifest["scheduler_jobs"]) if jobs_have_ids else cell.tasks
        cell.outputs = {path: info["sha256"] for path, info in sorted(manifest["outputs"].items())}
        cell.report = str(_cell_report(manifest_path.parent, cell_dir))
    if result.returncode == 0:
        cell.status = PASSED
    else:
        cell.status = FAILED
        cell.reason = f"exit {result.returncode}: " + _first_line(result.stderr.strip().splitlines()[-1] if result.stderr.strip() else "no message")


def _cell_report(run_dir: Path, cell_dir: Path) -> Path | None:
    """The cell's run report beside its log (a report that cannot be written costs only its link)."""
    from portaflow.report import write_report

    try:
        return write_report(run_dir, cell_dir / "report.html")
    except (OSError, ValueError, PortaflowError) as exc:
        logger.warning("no report for %s: %s", run_dir, exc)
        return None


def compare_cells(cells: list[Cell], plans: dict[str, Plan]) -> list[Disagreement]:
    """Each passed cell's outputs against the workflow's first passed cell, under each output's comparator."""
    from portaflow.compare import compare_workdirs

    out = []
    for workflow, plan in plans.items():
        ran = [c for c in cells if c.workflow == workflow and c.status == PASSED]
        for cell in ran[1:]:
            verdicts = compare_workdirs(plan, Path(ran[0].workdir), Path(cell.workdir))
            differ = {path: v.detail for path, v in verdicts if not v.same}
            if differ:
                cell.status, cell.reason = FAILED, f"outputs differ from {ran[0].name}: {', '.join(sorted(differ))}"
                out.append(Disagreement(workflow, ran[0].name, cell.name, differ))
    return out


def _first_line(value: Any) -> str:
    text = str(value).strip()
    return text.splitlines()[0] if text else ""


# -- reports ---------------------------------------------------------------------------------------

COLUMNS = ("workflow", "site", "engine", "status", "wall time", "tasks", "jobs", "outputs (sha256)", "note")


def rows(result: MatrixResult) -> list[list[str]]:
    out = []
    for c in result.cells:
        digests = ", ".join(f"{Path(p).name}:{d[:8]}" for p, d in c.outputs.items())
        out.append([c.workflow, c.site, c.engine, c.status, f"{c.wall_s:.1f}s" if c.wall_s is not None else "",
                    "" if c.tasks is None else str(c.tasks), "" if c.jobs is None else str(c.jobs), digests, c.reason])
    return out


def overview(result: MatrixResult) -> list[str]:
    """Sites x workflows, each entry `parsl status / snakemake status`: the table a README shows."""
    workflows = list(dict.fromkeys(c.workflow for c in result.cells))
    sites = list(dict.fromkeys(c.site for c in result.cells))
    by_key = {(c.site, c.workflow, c.engine): c.status for c in result.cells}
    engines = list(dict.fromkeys(c.engine for c in result.cells))
    lines = ["| site | " + " | ".join(workflows) + " |", "|" + "---|" * (len(workflows) + 1)]
    for site in sites:
        entries = [" / ".join(by_key.get((site, w, e), "-") for e in engines) for w in workflows]
        lines.append(f"| {site} | " + " | ".join(entries) + " |")
    return lines + ["", f"Each entry: {' / '.join(engines)}."]


def to_markdown(result: MatrixResult) -> str:
    counts = {s: sum(c.status == s for c in result.cells) for s in (PASSED, FAILED, RENDERED, UNSUPPORTED, SKIPPED)}
    lines = [f"Portability matrix: {'PASSED' if result.ok else 'FAILED'}; " + ", ".join(f"{n} {s}" for s, n in counts.items()), ""]
    lines += overview(result) + ["", "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows(result)]
    for d in result.disagreements:
        lines.append(f"\n**Disagreement** in {d.workflow}: {d.cell} vs {d.reference}: "
                     + "; ".join(f"`{p}` ({why})" for p, why in d.files.items()))
    return "\n".join(lines) + "\n"


def to_json(result: MatrixResult) -> str:
    return json.dumps({"ok": result.ok, "parameters": result.parameters, "cells": [asdict(c) for c in result.cells],
                       "disagreements": [asdict(d) for d in result.disagreements]}, indent=2) + "\n"


def to_html(result: MatrixResult, out_dir: Path | None = None) -> str:
    """The matrix as a self-contained page; a cell that ran links to its run's report (relative to OUT_DIR, where the page
    is written), which shows its DAG, timeline, logs and outputs with previews."""
    colour = {PASSED: "#c8f7c5", FAILED: "#f7c5c5", RENDERED: "#dde8f7", UNSUPPORTED: "#eeeeee", SKIPPED: "#f7efc5"}
    body = ["<tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in (*COLUMNS, "run report")) + "</tr>"]
    for cell, row in zip(result.cells, rows(result), strict=True):
        link = ""
        if cell.report:
            href = os.path.relpath(cell.report, out_dir) if out_dir else cell.report
            link = f'<a class="report" href="{html.escape(href)}">report</a>'
        body.append(f'<tr style="background:{colour.get(row[3], "#fff")}">' + "".join(f"<td>{html.escape(v)}</td>" for v in row)
                    + f"<td>{link}</td></tr>")
    issues = "".join(f"<p><b>Disagreement</b> in {html.escape(d.workflow)}: {html.escape(d.cell)} vs {html.escape(d.reference)}: "
                     f"{html.escape(', '.join(d.files))}</p>" for d in result.disagreements)
    return ("<!doctype html><meta charset=utf-8><title>portaflow portability matrix</title>"
            "<style>body{font-family:sans-serif}td,th{border:1px solid #999;padding:2px 6px;font-size:90%}table{border-collapse:collapse}</style>"
            f"<h1>portaflow portability matrix: {'passed' if result.ok else 'FAILED'}</h1>{issues}<table>{''.join(body)}</table>\n")


def write_reports(result: MatrixResult, out_dir: Path) -> dict[str, Path]:
    paths = {"markdown": out_dir / "matrix.md", "json": out_dir / "matrix.json", "html": out_dir / "matrix.html"}
    paths["markdown"].write_text(to_markdown(result))
    paths["json"].write_text(to_json(result))
    paths["html"].write_text(to_html(result, out_dir))
    return paths
