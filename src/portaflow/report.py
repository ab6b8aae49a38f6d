"""A run's report: one self-contained HTML file (`portaflow report`), read from the run's record.

What it shows: the DAG with each task coloured by its state, a timeline (each try's queue wait and run time), per-task
CPU and memory efficiency (from the scheduler's accounting where the site's adapter has one, e.g. sacct on SLURM; else
the CPU time the step's shell noted), retries and failures with the tail of their logs, and the outputs with links and
previews of images (PNG as they are, FITS rendered to a PNG).

Why self-contained: a report is mailed, attached to a ticket or opened on a laptop without the cluster; it loads
nothing (no URL, no CDN): its CSS, script and drawings are inline, images are data: URIs. Every value from the run
(names, parameters, messages, logs) is data: HTML-escaped wherever it is written.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from portaflow.driver import RUNS_DIR, list_runs
from portaflow.errors import InputError, PortaflowError
from portaflow.schedulers.base import JobUsage

log = logging.getLogger(__name__)

LOG_TAIL_LINES = 40
"""How much of a failed (or retried) task's log the report quotes: the end, where the error is."""
PREVIEW_MAX_BYTES = 4 * 1024 * 1024
"""A PNG larger than this is linked, not embedded (the report stays small enough to mail)."""
MAX_PREVIEWS = 24
DAG_TASK_LIMIT = 150
"""Above this many tasks the DAG is drawn by step (one box per step, its tasks counted by state)."""
TIMELINE_ROW_LIMIT = 400

STATE_COLOURS = {
    "ran": "#2e7d32", "up to date": "#90a4ae", "failed": "#c62828", "not run": "#ef6c00", "pending": "#1565c0",
    "not requested": "#cfd8dc", "running": "#1565c0",
}
STATE_ORDER = ["failed", "not run", "pending", "running", "ran", "up to date", "not requested"]
"""Worst first: a step's box takes the colour of its worst task."""


def esc(value: Any) -> str:
    """Any value as HTML text (quotes too: the same text goes into attributes)."""
    return html.escape(str(value), quote=True)


# -- finding a run -------------------------------------------------------------------------------
def find_run(workdir: Path, run: str | None) -> Path:
    """The run directory RUN names (its id, or a path to it) in WORKDIR, or the newest run there (InputError, exit 2, when
    there is none or no such run)."""
    if run and (Path(run) / "manifest.json").is_file():
        return Path(run)
    runs = list_runs(workdir)
    if not runs:
        raise InputError(f"no runs in {workdir} (a run directory is {workdir / RUNS_DIR}/<run-id>/); give --workdir or the workflow")
    if run is None:
        return runs[-1].path
    chosen = [r for r in runs if r.run_id == run or r.run_id.startswith(run)]
    if len(chosen) != 1:
        names = ", ".join(r.run_id for r in runs[-5:])
        raise InputError(f"run {run}: {'no' if not chosen else 'more than one'} run of that id in {workdir} (newest: {names})")
    return chosen[0].path


# -- what the report reads -----------------------------------------------------------------------
@dataclass
class Try:
    started: dt.datetime
    ended: dt.datetime
    exit: int
    cpu_s: float | None
    max_rss_mib: float | None = None
    """Peak resident memory of the step's processes, where its shell ran it under `runtime.peak` (the local site)."""


@dataclass
class TaskView:
    """One task as the report shows it."""

    id: str
    step: str
    display: str
    status: str
    depends: list[str]
    cores: int | None = None
    memory_mib: int | None = None
    error: str = ""
    job: str | None = None
    submitted: dt.datetime | None = None
    tries: list[Try] = field(default_factory=list)
    usage: JobUsage | None = None
    job_shared_by: int = 1

    def efficiency(self) -> tuple[str, str, str]:
        """(CPU efficiency, memory efficiency, where they come from), in words."""
        if self.usage is not None:
            where = f"scheduler accounting, job {self.usage.job_id}" + (
                f" (shared by {self.job_shared_by} tasks)" if self.job_shared_by > 1 else "")
            return _percent(self.usage.cpu_efficiency), _percent(self.usage.memory_efficiency), where
        last = self.tries[-1] if self.tries else None
        if last is not None and (last.cpu_s is not None and self.cores or last.max_rss_mib is not None and self.memory_mib):
            wall = (last.ended - last.started).total_seconds()
            cpu = last.cpu_s / (wall * self.cores) if last.cpu_s is not None and self.cores and wall > 0 else None
            memory = last.max_rss_mib / self.memory_mib if last.max_rss_mib is not None and self.memory_mib else None
            where = "the step's shell (CPU time of its processes)" + (
                f"; peak resident memory {last.max_rss_mib:.0f} MiB (runtime.peak)" if memory is not None else "")
            return _percent(cpu), _percent(memory), where
        return "not measured", "not measured", ""


def _percent(value: float | None) -> str:
    return "not measured" if value is None else f"{100 * value:.0f}%"


def _time(value: Any) -> dt.datetime | None:
    try:
        return dt.datetime.fromisoformat(str(value)) if value else None
    except ValueError:
        return None


def read_tasks(manifest: dict[str, Any]) -> list[TaskView]:
    tasks = []
    for task_id, rec in manifest.get("tasks", {}).items():
        tries = []
        for t in rec.get("tries", []):
            started, ended = _time(t.get("started")), _time(t.get("ended"))
            if started and ended:
                tries.append(Try(started, ended, int(t.get("exit", 0)), t.get("cpu_s"), t.get("max_rss_mib")))
        res = rec.get("resources") or {}
        status = rec.get("status", "?")
        if status == "failed" and not tries and str(rec.get("error", "")).startswith("not "):  # "not run: ...", "not started: ..."
            status = "not run"
        tasks.append(TaskView(task_id, rec.get("step", task_id), rec.get("display", task_id), status,
                              list(rec.get("depends", [])), res.get("cores"), res.get("memory_mib"), rec.get("error", ""),
                              rec.get("job"), _time(rec.get("submitted")), tries))
    return tasks


def add_accounting(tasks: list[TaskView], run_dir: Path) -> str:
    """Each task's job as the site's scheduler accounts it (the adapter's `accounting`); returns where accounting came
    from, in words, for the report."""
    jobs = sorted({t.job for t in tasks if t.job})
    if not jobs:
        return ("no scheduler jobs recorded (CPU time from the step's shell where noted; peak memory where the step ran under "
                "runtime.peak, as on the local site)")
    try:
        from portaflow.schedulers import adapter_for
        from portaflow.spec.loading import load_site

        adapter = adapter_for(load_site(str(run_dir / "site.yaml")))
        usage = adapter.accounting(jobs)
    except PortaflowError as exc:
        log.warning("no scheduler accounting for the report: %s", exc)
        return f"scheduler accounting not available: {exc}"
    shared = {job: sum(1 for t in tasks if t.job == job) for job in jobs}
    for task in tasks:
        if task.job in usage:
            task.usage, task.job_shared_by = usage[task.job], shared[task.job]
    return f"{adapter.name} accounting for {len(usage)} of {len(jobs)} job(s)"


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    # Parsl echoes each try's script before its output: each echo becomes one line that says a try starts
    text = _PARSL_ECHO.sub("[portaflow: a try starts]\n", text)
    return "\n".join(text.rstrip().splitlines()[-lines:])


_PARSL_ECHO = re.compile(r"--> executable follows <--\n.*?--> end executable <--\n?", re.S)


# -- drawings ------------------------------------------------------------------------------------
def levels(tasks: list[TaskView]) -> dict[str, int]:
    """Each task's level: the longest chain of dependencies (within the run's record) leading to it."""
    by_id = {t.id: t for t in tasks}
    level: dict[str, int] = {}

    def of(task_id: str, seen: frozenset[str] = frozenset()) -> int:
        if task_id not in level:
            deps = [d for d in by_id[task_id].depends if d in by_id and d not in seen]
            level[task_id] = 1 + max((of(d, seen | {task_id}) for d in deps), default=-1)
        return level[task_id]

    for task in tasks:
        of(task.id)
    return level


def dag_svg(tasks: list[TaskView]) -> str:
    """The DAG, laid out by levels (left to right), as inline SVG; by step when there are many tasks."""
    if len(tasks) > DAG_TASK_LIMIT:
        nodes = _step_nodes(tasks)
    else:
        nodes = [(t.id, t.display, t.status, t.depends, t.status) for t in tasks]
    views = [TaskView(n[0], "", n[1], n[2], n[3]) for n in nodes]
    lv = levels(views)
    columns: dict[int, list[TaskView]] = {}
    for view in views:
        columns.setdefault(lv[view.id], []).append(view)
    box_w, box_h, gap_x, gap_y, pad = 190, 30, 60, 12, 10
    pos = {}
    for col, members in columns.items():
        for row, view in enumerate(members):
            pos[view.id] = (pad + col * (box_w + gap_x), pad + row * (box_h + gap_y))
    width = pad * 2 + (max(columns, default=0) + 1) * (box_w + gap_x) - gap_x
    height = pad * 2 + max((len(m) for m in columns.values()), default=1) * (box_h + gap_y) - gap_y
    parts = [f'<svg id="dag" width="{width}" height="{height}" role="img" '
             f'aria-label="task graph">',
             '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="6" markerHeight="6" orient="auto">'
             '<path d="M0,0 L10,5 L0,10 z" fill="#777"/></marker></defs>']
    for view in views:
        x2, y2 = pos[view.id]
        for dep in view.depends:
            if dep in pos:
                x1, y1 = pos[dep]
                parts.append(f'<line x1="{x1 + box_w}" y1="{y1 + box_h / 2}" x2="{x2}" y2="{y2 + box_h / 2}" stroke="#999" '
                             'stroke-width="1.2" marker-end="url(#arrow)"/>')
    for view, node in zip(views, nodes, strict=True):
        x, y = pos[view.id]
        colour = STATE_COLOURS.get(node[4], "#9e9e9e")
        label = view.display if len(view.display) <= 28 else view.display[:27] + "…"
        parts.append(f'<g class="node" data-task="{esc(view.id)}" data-state="{esc(node[4])}"><title>{esc(view.display)}: '
                     f'{esc(view.status)}</title><rect x="{x}" y="{y}" width="{box_w}" height="{box_h}" rx="5" fill="{colour}"/>'
                     f'<text x="{x + 8}" y="{y + 19}" fill="#fff" font-size="12">{esc(label)}</text></g>')
    parts.append("</svg>")
    return "".join(parts)


def _step_nodes(tasks: list[TaskView]) -> list[tuple[str, str, str, list[str], str]]:
    """One node per step: (step, 'step ×N', counts by state, the steps it depends on, its worst state)."""
    step_of = {t.id: t.step for t in tasks}
    steps: dict[str, list[TaskView]] = {}
    for task in tasks:
        steps.setdefault(task.step, []).append(task)
    out = []
    for step, members in steps.items():
        counts: dict[str, int] = {}
        for t in members:
            counts[t.status] = counts.get(t.status, 0) + 1
        worst = min(counts, key=lambda s: STATE_ORDER.index(s) if s in STATE_ORDER else len(STATE_ORDER))
        deps = sorted({step_of[d] for t in members for d in t.depends if d in step_of and step_of[d] != step})
        out.append((step, f"{step} ×{len(members)}", ", ".join(f"{n} {s}" for s, n in sorted(counts.items())), deps, worst))
    return out


def timeline_svg(tasks: list[TaskView], run_start: dt.datetime | None) -> str:
    """Each task's tries on one time axis: the wait (from when it could start: handed on and its dependencies done, to
    when its shell started) light: yellow until its job started where the scheduler's accounting says (a task in a job of
    its own), grey for the job's start-up after that; run time solid, coloured by how the try ended."""
    ends = {t.id: t.tries[-1].ended for t in tasks if t.tries}
    rows = []
    for task in tasks:
        if not task.tries:
            continue
        ready_candidates = [x for x in [task.submitted, *(ends[d] for d in task.depends if d in ends)] if x]
        ready = max(ready_candidates) if ready_candidates else task.tries[0].started
        job_start = _time(task.usage.started) if task.usage and task.job_shared_by == 1 else None
        segments = []
        for n, attempt in enumerate(task.tries):
            queued_from = min(ready, attempt.started)
            allocated = job_start if job_start and n == len(task.tries) - 1 else None  # the accounting is of the last try's job
            allocated = min(max(allocated, queued_from), attempt.started) if allocated else attempt.started
            segments.append((queued_from, allocated, attempt.started, attempt.ended, attempt.exit))
            ready = attempt.ended
        rows.append((task, segments))
    if not rows:
        return '<p id="timeline" class="empty">No task of this run noted its times (no task ran, or its jobs could not write to ' \
               'the run directory).</p>'
    rows.sort(key=lambda r: r[1][0][2])
    more = len(rows) - TIMELINE_ROW_LIMIT
    rows = rows[:TIMELINE_ROW_LIMIT]
    t0 = min([s[0] for _, segs in rows for s in segs] + ([run_start] if run_start else []))
    t1 = max(s[3] for _, segs in rows for s in segs)
    span = max((t1 - t0).total_seconds(), 0.001)
    label_w, plot_w, row_h, top = 230, 760, 18, 24
    scale = plot_w / span
    height = top + len(rows) * row_h + 10
    parts = [f'<svg id="timeline" width="{label_w + plot_w + 20}" height="{height}" '
             'role="img" aria-label="timeline">']
    for tick in _ticks(span):
        x = label_w + tick * scale
        parts.append(f'<line x1="{x:.1f}" y1="{top - 4}" x2="{x:.1f}" y2="{height - 6}" stroke="#e0e0e0"/>'
                     f'<text x="{x:.1f}" y="{top - 8}" font-size="10" text-anchor="middle" fill="#555">{_seconds(tick)}</text>')
    for n, (task, segments) in enumerate(rows):
        y = top + n * row_h
        label = task.display if len(task.display) <= 34 else task.display[:33] + "…"
        parts.append(f'<g class="row" data-task="{esc(task.id)}"><text x="4" y="{y + 12}" font-size="11">{esc(label)}</text>')
        for queued, allocated, started, ended, exit_code in segments:
            xq, xa, xs, xe = (label_w + (v - t0).total_seconds() * scale for v in (queued, allocated, started, ended))
            colour = STATE_COLOURS["ran"] if exit_code == 0 else STATE_COLOURS["failed"]
            wait, startup, run = ((b - a).total_seconds() for a, b in ((queued, allocated), (allocated, started), (started, ended)))
            if xa - xq >= 0.5:
                parts.append(f'<rect class="queued" x="{xq:.1f}" y="{y + 3}" width="{xa - xq:.1f}" height="{row_h - 6}" fill="#ffe082">'
                             f'<title>{esc(task.display)}: waited {wait:.1f} s</title></rect>')
            if xs - xa >= 0.5:
                parts.append(f'<rect class="starting" x="{xa:.1f}" y="{y + 3}" width="{xs - xa:.1f}" height="{row_h - 6}" fill="#bdbdbd">'
                             f'<title>{esc(task.display)}: its job started {startup:.1f} s before its step</title></rect>')
            parts.append(f'<rect class="running" x="{xs:.1f}" y="{y + 2}" width="{max(xe - xs, 1.5):.1f}" height="{row_h - 4}" '
                         f'fill="{colour}"><title>{esc(task.display)}: ran {run:.1f} s, exit {exit_code}</title></rect>')
        parts.append("</g>")
    parts.append("</svg>")
    note = f'<p class="note">{more} more task(s) not drawn.</p>' if more > 0 else ""
    return "".join(parts) + note


def _ticks(span: float) -> list[float]:
    step = next((s for s in (0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 43200, 86400)
                 if span / s <= 10), 86400.0)
    return [i * step for i in range(int(span / step) + 1)]


def _seconds(value: float) -> str:
    """A tick's label: `5 s`, `1:30` (minutes:seconds), `2:15 h`."""
    if value < 60:
        return f"{value:g} s"
    if value < 3600:
        return f"{int(value // 60)}:{int(value % 60):02d}"
    return f"{int(value // 3600)}:{int(value % 3600 // 60):02d} h"


# -- outputs -------------------------------------------------------------------------------------
IMAGE_SUFFIXES = (".png",)
FITS_SUFFIXES = (".fits", ".fit", ".fts", ".fits.gz")


def preview(path: Path) -> str:
    """An <img> with the file as a data: URI (a PNG as it is, a FITS image rendered to one), or a short note why not."""
    name = path.name.lower()
    try:
        if name.endswith(IMAGE_SUFFIXES):
            if path.stat().st_size > PREVIEW_MAX_BYTES:
                return f'<span class="note">no preview: {path.stat().st_size // 1024} KiB</span>'
            data = path.read_bytes()
        elif name.endswith(FITS_SUFFIXES):
            data = fits_png(path)
        else:
            return ""
    except Exception as exc:  # a preview is a courtesy: a file it cannot read costs only its picture
        log.warning("no preview of %s: %s", path, exc)
        return f'<span class="note">no preview: {esc(exc)}</span>'
    return f'<img class="preview" alt="{esc(path.name)}" src="data:image/png;base64,{base64.b64encode(data).decode()}">'


def fits_png(path: Path, pixels: int = 360) -> bytes:
    """The first image in a FITS file (its first plane, for a cube), drawn as a PNG with a z-scale stretch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from astropy.io import fits
    from astropy.visualization import ZScaleInterval

    with fits.open(path, memmap=False) as hdus:
        image = next((h.data for h in hdus if h.data is not None and getattr(h.data, "ndim", 0) >= 2), None)
        if image is None:
            raise ValueError("no image in this FITS file")
        data = np.asarray(image, dtype=float)
    while data.ndim > 2:
        data = data[0]
    finite = np.isfinite(data)
    low, high = ZScaleInterval().get_limits(data[finite]) if finite.any() else (0.0, 1.0)
    fig = plt.figure(figsize=(pixels / 100, pixels / 100), dpi=100)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.imshow(data, origin="lower", cmap="gray", vmin=low, vmax=high, interpolation="nearest")
    ax.set_axis_off()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


def output_files(workdir: Path, path: str) -> list[Path]:
    """An output, or the previewable files inside an output directory."""
    full = workdir / path
    if full.is_dir():
        return sorted(p for p in full.rglob("*") if p.is_file() and p.name.lower().endswith(IMAGE_SUFFIXES + FITS_SUFFIXES))[:MAX_PREVIEWS]
    return [full]


# -- the page ------------------------------------------------------------------------------------
CSS = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222;background:#fff}
h1{font-size:1.4em;margin-bottom:.2em} h2{font-size:1.15em;margin-top:1.6em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:.9em} td,th{border:1px solid #ddd;padding:3px 7px;text-align:left;vertical-align:top}
th{background:#f5f5f5} .state{display:inline-block;padding:0 6px;border-radius:4px;color:#fff}
pre{background:#f7f7f7;border:1px solid #ddd;padding:.6em;overflow:auto;max-height:24em;font-size:.85em}
.scroll{overflow:auto;border:1px solid #eee;padding:4px} .note{color:#666;font-size:.9em}
.preview{max-width:360px;max-height:360px;border:1px solid #ccc;display:block;margin:4px 0}
tr.highlight td{background:#fff8c4} .legend span{margin-right:1em} .legend i{display:inline-block;width:12px;height:12px;
margin-right:4px;vertical-align:middle} .node{cursor:pointer} #filter label{margin-right:1em}
"""

SCRIPT = """
(function(){
  function show(id){
    document.querySelectorAll('tr.highlight').forEach(function(r){r.classList.remove('highlight');});
    var row=document.getElementById('task-'+id); if(row){row.classList.add('highlight');row.scrollIntoView({block:'center'});}
  }
  document.querySelectorAll('[data-task]').forEach(function(el){
    el.addEventListener('click',function(){show(el.getAttribute('data-task'));});
  });
  var boxes=document.querySelectorAll('#filter input');
  boxes.forEach(function(box){box.addEventListener('change',function(){
    var on={}; boxes.forEach(function(b){on[b.value]=b.checked;});
    document.querySelectorAll('#tasks tbody tr').forEach(function(r){r.style.display=on[r.getAttribute('data-state')]===false?'none':'';});
  });});
  var data=JSON.parse(document.getElementById('report-data').textContent);
  var counts=document.getElementById('counts');
  counts.textContent=Object.keys(data.counts).sort().map(function(k){return data.counts[k]+' '+k;}).join(', ');
  document.documentElement.setAttribute('data-report-ready','1');
})();
"""


def _json_for_script(value: Any) -> str:
    """JSON safe inside <script>: no `<` (so no `</script>`), no `&`."""
    return json.dumps(value, sort_keys=True).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def render_report(run_dir: Path, out: Path) -> str:
    """The report's HTML for the run in RUN_DIR, with links relative to OUT's folder."""
    manifest = json.loads((run_dir / "manifest.json").read_text())
    tasks = read_tasks(manifest)
    accounting = add_accounting(tasks, run_dir)
    workdir = Path(manifest.get("workdir") or run_dir.parents[2])
    counts: dict[str, int] = {}
    for task in tasks:
        counts[task.status] = counts.get(task.status, 0) + 1
    started = _time(manifest.get("started"))
    title = f"portaflow run {manifest.get('run_id', run_dir.name)}: {manifest.get('workflow', '?')}"
    status = manifest.get("status", "?")
    status_colour = {"succeeded": "#2e7d32", "failed": "#c62828", "interrupted": "#ef6c00"}.get(status, "#616161")
    p: list[str] = [
        f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{esc(title)}</title>",
        f"<meta name=viewport content='width=device-width'><style>{CSS}</style></head><body>",
        f"<h1>{esc(title)}</h1>",
        f'<p><span class="state" style="background:{status_colour}">{esc(status)}</span> site <b>{esc(manifest.get("site", "?"))}</b> '
        f'({esc(manifest.get("scheduler", "?"))}), engine <b>{esc(manifest.get("engine", "?"))}</b>, started '
        f'{esc(manifest.get("started", "?"))}, finished {esc(manifest.get("finished") or "-")}. Tasks: <span id="counts"></span></p>',
        f'<p class="note">work directory {esc(workdir)}; run record {esc(run_dir)}</p>',
        "<h2>Parameters</h2><table>" + "".join(f"<tr><th>{esc(k)}</th><td>{esc(json.dumps(v))}</td></tr>"
                                                for k, v in sorted(manifest.get("parameters", {}).items())) + "</table>",
        "<h2>Task graph</h2>" + _legend() + f'<div class="scroll">{dag_svg(tasks)}</div>',
        "<h2>Timeline</h2><p class='legend'><span><i style='background:#ffe082'></i>queue wait (ready to start, not yet running)"
        "</span><span><i style='background:#bdbdbd'></i>its job started, the step not yet (scheduler accounting)</span>"
        "<span><i style='background:#2e7d32'></i>ran</span><span><i style='background:#c62828'></i>failed try</span></p>"
        f'<div class="scroll">{timeline_svg(tasks, started)}</div>',
        _task_table(tasks, accounting),
        _failures(tasks, run_dir),
        _outputs(manifest, workdir, out.parent),
        f'<script type="application/json" id="report-data">{_json_for_script({"counts": counts, "run": manifest.get("run_id")})}</script>',
        f"<script>{SCRIPT}</script></body></html>",
    ]
    return "\n".join(p)


def _legend() -> str:
    return "<p class='legend'>" + "".join(f"<span><i style='background:{c}'></i>{esc(s)}</span>" for s, c in STATE_COLOURS.items()
                                           if s != "running") + "</p>"


def _duration(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.1f} s"


def _task_table(tasks: list[TaskView], accounting: str) -> str:
    states = sorted({t.status for t in tasks})
    rows = []
    ends = {t.id: t.tries[-1].ended for t in tasks if t.tries}
    for task in tasks:
        wait = run = None
        if task.tries:
            ready = [x for x in [task.submitted, *(ends[d] for d in task.depends if d in ends)] if x]
            first = task.tries[0].started
            wait = max(0.0, (first - max(ready)).total_seconds()) if ready else None
            run = sum((t.ended - t.started).total_seconds() for t in task.tries)
        if task.usage and task.usage.submitted and task.usage.started and task.job_shared_by == 1:  # its own job: the scheduler's queue
            wait = (dt.datetime.fromisoformat(task.usage.started) - dt.datetime.fromisoformat(task.usage.submitted)).total_seconds()
        cpu, mem, where = task.efficiency()
        colour = STATE_COLOURS.get(task.status, "#9e9e9e")
        rows.append(
            f'<tr id="task-{esc(task.id)}" data-state="{esc(task.status)}"><td>{esc(task.display)}</td>'
            f'<td><span class="state" style="background:{colour}">{esc(task.status)}</span></td><td>{len(task.tries)}</td>'
            f'<td>{esc(task.job or "-")}</td><td>{_duration(wait)}</td><td>{_duration(run)}</td><td>{esc(cpu)}</td><td>{esc(mem)}</td>'
            f'<td class="note">{esc(where)}</td><td>{esc(task.error)}</td></tr>')
    filters = "".join(f'<label><input type="checkbox" value="{esc(s)}" checked> {esc(s)}</label>' for s in states)
    return ("<h2>Tasks</h2>" + f'<p class="note">Efficiency: CPU time over (run time x cores asked for); memory: peak resident '
            f'memory over the memory asked for. Source: {esc(accounting)}.</p><p id="filter">{filters}</p>'
            '<table id="tasks"><thead><tr><th>task</th><th>state</th><th>tries</th><th>job</th><th>queue wait</th><th>run time</th>'
            "<th>CPU eff.</th><th>memory eff.</th><th>measured by</th><th>message</th></tr></thead><tbody>"
            + "".join(rows) + "</tbody></table>")


def _failures(tasks: list[TaskView], run_dir: Path) -> str:
    shown = [t for t in tasks if t.status == "failed" or len(t.tries) > 1]
    if not shown:
        return '<h2>Failures and retries</h2><p id="failures" class="note">None.</p>'
    parts = ['<h2>Failures and retries</h2><div id="failures">']
    for task in shown:
        tries = ", ".join(f"try {n}: exit {t.exit} after {(t.ended - t.started).total_seconds():.1f} s" for n, t in enumerate(task.tries, 1))
        tail = log_tail(run_dir / "logs" / f"{task.id}.log")
        parts.append(f'<h3>{esc(task.display)}: {esc(task.status)}</h3><p>{esc(task.error)}</p><p class="note">{esc(tries or "no try noted")}'
                     f'{"; job " + esc(task.job) if task.job else ""}</p>'
                     f'<p class="note">last {LOG_TAIL_LINES} lines of logs/{esc(task.id)}.log</p><pre>{esc(tail) or "(empty)"}</pre>')
    parts.append("</div>")
    return "".join(parts)


def _outputs(manifest: dict[str, Any], workdir: Path, report_dir: Path) -> str:
    outputs = manifest.get("outputs", {})
    if not outputs:
        return '<h2>Outputs</h2><p class="note">No outputs recorded.</p>'
    rows, previews = [], 0
    for path, info in sorted(outputs.items()):
        full = workdir / path
        href = os.path.relpath(full, report_dir)
        cells = []
        for file in output_files(workdir, path):
            if previews >= MAX_PREVIEWS:
                break
            image = preview(file)
            if image:
                previews += 1
                cells.append((f"<div class='note'>{esc(file.relative_to(workdir))}</div>" if file != full else "") + image)
        exists = "" if full.exists() else ' <span class="note">(no longer there)</span>'
        rows.append(f'<tr><td><a href="{esc(href)}">{esc(path)}</a>{exists}</td><td>{esc(info.get("task", ""))}</td>'
                    f'<td><code>{esc(str(info.get("sha256", ""))[:16])}</code></td><td>{"".join(cells)}</td></tr>')
    return ('<h2>Outputs</h2><table id="outputs"><thead><tr><th>output</th><th>task</th><th>sha256</th><th>preview</th></tr></thead>'
            "<tbody>" + "".join(rows) + "</tbody></table>")


def write_report(run_dir: Path, out: Path | None = None) -> Path:
    """Write the run's report (default `<run dir>/report.html`); returns its path."""
    out = (out or run_dir / "report.html").resolve()
    text = render_report(run_dir.resolve(), out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    log.info("report of run %s: %s", run_dir.name, out)
    return out
