"""The job shell every engine runs for a task (`RunContext.shell_line`): its exit status is the step's, however the
step's end and the shell's wait interleave."""

from __future__ import annotations

import subprocess

import pytest

from portaflow.plan import make_plan
from portaflow.schedulers import adapter_for
from portaflow.schedulers.context import RunContext
from portaflow.spec.loading import load_site
from portaflow.spec.workflow import Workflow


def shell_for(tmp_path, command: str) -> str:
    workflow = Workflow.model_validate({"name": "w", "steps": {"s": {"command": command, "outputs": {"o": "o.txt"}}}})
    loaded = load_site("local", environ={})
    plan = make_plan(workflow, loaded.site)
    ctx = RunContext(plan, loaded, tmp_path, tmp_path / "run", plan.tasks, adapter_for(loaded))
    return ctx.shell_line(plan.tasks[0])


@pytest.mark.parametrize("delay", ["", "sleep 1"], ids=["as written", "step ends before the shell waits"])
@pytest.mark.parametrize("status", [0, 7])
def test_exit_status_is_the_steps(tmp_path, delay, status):
    """`sleep 1` after the step starts stands for a loaded machine: the step (here instant) has ended and been reaped
    before the shell reaches its wait, which once made every such failure look like success."""
    script = shell_for(tmp_path, f"echo out; exit {status}")
    assert "pf_step=$!" in script
    script = script.replace("pf_step=$!", f"pf_step=$!\n{delay}", 1)
    result = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == status, result.stderr


def test_a_signal_to_the_shell_stops_the_step_and_fails(tmp_path):
    script = shell_for(tmp_path, "sleep 30")
    proc = subprocess.Popen(["bash", "-c", script], start_new_session=True)
    try:
        assert proc.wait(timeout=2) is None
    except subprocess.TimeoutExpired:
        pass
    proc.terminate()
    assert proc.wait(timeout=20) != 0
