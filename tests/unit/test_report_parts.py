"""The run report's parts that need no run: the job shell's note of each try, sacct's accounting, escaping, finding a run."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from portaflow.errors import InputError
from portaflow.report import find_run, render_report
from portaflow.schedulers.context import NOW, read_tries, usage_line, usage_path
from portaflow.schedulers.slurm import SACCT_FIELDS, parse_sacct


def test_the_job_shell_notes_each_try_with_its_cpu_time(tmp_path):
    """The lines shell_line ends with, run by bash twice (a failing try that burns CPU, then a quick one)."""
    note = usage_line(usage_path(tmp_path, "t"))
    (tmp_path / "logs").mkdir()
    for body in ("i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done; exit 3", "true"):
        script = (f"set -eo pipefail\npf_t0={NOW}\nbash -c '{body}' &\npf_step=$!\npf_status=0\n"
                  f"wait \"$pf_step\" || pf_status=$?\n{note}\ntest \"$pf_status\" -eq 0 || exit \"$pf_status\"\n")
        subprocess.run(["bash", "-c", script], check=False, timeout=60)
    first, second = read_tries(tmp_path, "t")
    assert (first["exit"], second["exit"]) == (3, 0)
    assert first["cpu_s"] > 0.1 and second["cpu_s"] < first["cpu_s"]  # the child's CPU time, counted by `times`
    assert first["started"] < first["ended"] <= second["started"] < second["ended"]


def test_a_note_that_cannot_be_written_does_not_fail_the_step(tmp_path):
    script = f"set -eo pipefail\npf_t0={NOW}\npf_status=0\n{usage_line(tmp_path / 'missing' / 'x.usage')}\necho fine"
    result = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=30)
    assert (result.returncode, result.stdout, result.stderr) == (0, "fine\n", "")


SACCT = """\
1024|COMPLETED|2026-12-03T19:51:30|2026-12-03T19:51:34|2026-12-03T19:51:46|12|00:10.444|2|1G|
1024.batch|COMPLETED|2026-12-03T19:51:30|2026-12-03T19:51:34|2026-12-03T19:51:46|12|00:03.439|2||381256K
1024.0|COMPLETED|2026-12-03T19:51:34|2026-12-03T19:51:34|2026-12-03T19:51:44|10|00:07.004|2||102400K
1025|CANCELLED by 0|2026-12-03T19:51:37|None|2026-12-03T19:51:43|0|00:00:00|1|2000Mc|
"""


def test_sacct_rows_become_one_usage_per_job():
    """Rows as Debian's slurm-wlm 22.05 prints them (`sacct --parsable2`, SACCT_FIELDS); ReqMem per CPU (`c`) as older
    versions print it."""
    assert SACCT_FIELDS[0] == "JobID" and len(SACCT.splitlines()[0].split("|")) == len(SACCT_FIELDS)
    usage = parse_sacct(SACCT)
    assert set(usage) == {"1024", "1025"}
    job = usage["1024"]
    assert (job.started, job.elapsed_s, job.cpu_s, job.cores, job.memory_mib) == ("2026-12-03T19:51:34", 12.0, 10.444, 2, 1024.0)
    assert job.max_rss_mib == pytest.approx(381256 / 1024)  # the largest of its steps
    assert job.cpu_efficiency == pytest.approx(10.444 / 24) and job.memory_efficiency == pytest.approx(381256 / 1024 / 1024)
    cancelled = usage["1025"]
    assert (cancelled.state, cancelled.started, cancelled.memory_mib, cancelled.cpu_efficiency) == ("CANCELLED", None, 2000.0, None)


def _run_dir(workdir: Path, run_id: str, **task: object) -> Path:
    run_dir = workdir / ".portaflow" / "runs" / run_id
    (run_dir / "logs").mkdir(parents=True)
    manifest = {"run_id": run_id, "status": "failed", "workflow": "w<b>f</b>", "site": "local", "scheduler": "local",
                "engine": "parsl", "workdir": str(workdir), "started": "2026-12-03T10:00:00", "finished": "2026-12-03T10:00:09",
                "parameters": {"msg": "<script>alert(1)</script>"}, "outputs": {},
                "tasks": {"t": {"step": "s", "display": "s[x=<img src=x onerror=alert(2)>]", "status": "failed", "depends": [],
                                "error": "the command failed: </pre><script>alert(3)</script>",
                                "tries": [{"started": "2026-12-03T10:00:01", "ended": "2026-12-03T10:00:02", "exit": 7, "cpu_s": 0.5}],
                                **task}}}
    (run_dir / "manifest.json").write_text(json.dumps(manifest))
    (run_dir / "logs" / "t.log").write_text("step said </pre><script>alert(4)</script>\n")
    return run_dir


def test_every_value_from_the_run_is_escaped(tmp_path):
    page = render_report(_run_dir(tmp_path, "20261203-100000-parsl-0001"), tmp_path / "r.html")
    assert page.count("<script") == 2 and "<img src=x" not in page and "<b>f</b>" not in page
    for n in (1, 3, 4):
        assert f"&lt;script&gt;alert({n})&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=alert(2)&gt;" in page


def test_the_newest_run_is_the_default_and_a_run_is_found_by_id(tmp_path):
    old = _run_dir(tmp_path, "20261203-100000-parsl-0001")
    new = _run_dir(tmp_path, "20261203-110000-snakemake-0002")
    assert find_run(tmp_path, None) == new and find_run(tmp_path, "20261203-10") == old and find_run(tmp_path, str(old)) == old
    with pytest.raises(InputError, match="no run of that id"):
        find_run(tmp_path, "2025")
    with pytest.raises(InputError, match="no runs in"):
        find_run(tmp_path / "elsewhere", None)
