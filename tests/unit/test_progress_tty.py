"""The live progress bar: drawn when stderr is a terminal (a pseudo-terminal here), never into a log or a pipe, where the
one line per task stays."""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys
import textwrap

from testlib import ROOT

SCRIPT = textwrap.dedent(f"""
    import time
    from portaflow.engines.base import TaskOutcome
    from portaflow.plan import make_plan
    from portaflow.progress import Progress
    from portaflow.spec.loading import load_site, load_workflow

    plan = make_plan(load_workflow({str(ROOT / 'tests/data/workflows/chain.yaml')!r}).workflow, load_site("local", environ={{}}).site)
    progress = Progress(len(plan.tasks), ids={{t.id for t in plan.tasks}})
    for task in plan.tasks:
        progress.event("submitted", task, None)
    first, middle = plan.by_id["first"], plan.by_id["middle"]
    progress.event("finished", first, TaskOutcome(first.id, True, 0))
    print("COUNTS", progress.counts(), flush=True)
    time.sleep(0.3)
    for task in plan.tasks[1:]:
        progress.event("finished", task, TaskOutcome(task.id, task.id != "last", 1, message="boom"))
    progress.stop()
""")


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]),
            "COLUMNS": "160", "TERM": "xterm-256color"}


def test_the_bar_is_drawn_on_a_terminal():
    """stderr (and stdout) on a pseudo-terminal, as in an interactive shell."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: its stdin, stdout and stderr are the terminal
        os.execve(sys.executable, [sys.executable, "-c", SCRIPT], _env())
    out = b""
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        out += chunk
    _, status = os.waitpid(pid, 0)
    text = out.decode(errors="replace")
    assert os.waitstatus_to_exitcode(status) == 0, text
    # Counts while it ran: `first` done; `middle` (its dependency done) and `alone` running; `last` queued behind them.
    assert "COUNTS {'done': 1, 'running': 2, 'queued': 1, 'failed': 0}" in text
    assert "done 1 · running 2 · queued 1 · failed 0" in text  # the live bar, with those counts
    assert "\x1b[?25l" in text  # rich's live display hides the cursor while it draws...
    assert "━" in text  # ... a bar
    assert "done 3 · running 0 · queued 0 · failed 1" in text and "4/4" in text  # its last state, left on screen
    assert "[1/4] done first" in re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)  # the lines stay above it


def test_no_bar_into_a_pipe():
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=_env(), timeout=120)
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert lines[0].startswith("[1/4] done first") and len(lines) == 4 and "FAILED last" in result.stderr
    assert "running 2" not in result.stderr and "━" not in result.stderr and "\x1b[" not in result.stderr
