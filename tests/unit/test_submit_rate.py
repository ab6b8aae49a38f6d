"""Issue 16: a submit rate limit (`polling.submit_rate`, ICR and wICE ask for one) honoured by both engines from one rule
(`schedulers.base.submit_rate`): Snakemake's --max-jobs-per-timespan, Parsl's executors through one shared window."""

from __future__ import annotations

import pytest

from portaflow.engines.parsl_engine import ParslEngine, paced_executor_class
from portaflow.engines.snakemake_engine import SnakemakeEngine
from portaflow.errors import SpecError
from portaflow.plan import make_plan
from portaflow.schedulers import adapter_for
from portaflow.schedulers.base import SubmitRate, SubmitWindow, submit_rate
from portaflow.schedulers.context import RunContext
from portaflow.spec.loading import load_site
from portaflow.spec.workflow import Workflow

from testlib import run_portaflow

SITE = """\
name: wice
scheduler: slurm
account: proj
partitions:
  batch: {max_walltime: 3d, cores_per_node: 72, memory_per_node: 240GB}
  gpu_a100: {max_walltime: 3d, cores_per_node: 64, memory_per_node: 480GB, gpus_per_node: 4}
polling: {interval: 60s, submit_rate: 10/1m}
"""


def _context(write, tmp_path, text: str = SITE) -> RunContext:
    loaded = load_site(str(write("site.yaml", text)), environ={})
    steps = {"cpu": {"command": "echo {i} > c{i}", "outputs": {"o": "c{i}"}, "scatter": {"i": [1, 2, 3]},
                     "resources": {"cores": 2, "walltime": "1h"}},
             "gpu": {"command": "echo {j} > g{j}", "outputs": {"o": "g{j}"}, "scatter": {"j": [1, 2]},
                     "resources": {"cores": 2, "walltime": "1h", "gpus": 1}}}
    plan = make_plan(Workflow.model_validate({"name": "w", "steps": steps}), loaded.site)
    return RunContext(plan, loaded, tmp_path / "work", tmp_path / "run", plan.tasks, adapter_for(loaded))


def test_window_grants_at_most_n_per_timespan():
    now = [100.0]
    window = SubmitWindow(SubmitRate(3, 60), clock=lambda: now[0])
    assert window.take(5) == 3
    assert window.take(1) == 0
    now[0] += 59.9
    assert window.take(1) == 0
    now[0] += 0.1  # a minute after the first three: room again
    assert window.take(2) == 2
    assert window.take(2) == 1


def test_both_engines_keep_the_same_rate(write, tmp_path, monkeypatch):
    ctx = _context(write, tmp_path)
    rate = submit_rate(ctx.site)
    assert rate == SubmitRate(10, 60)
    assert SnakemakeEngine().profile(ctx)["max-jobs-per-timespan"] == "10/60s"

    executors = ParslEngine().config(ctx, resolve_address=False).executors
    assert len(executors) == 2 and all(isinstance(e, paced_executor_class()) for e in executors)
    window = executors[0].submit_window
    assert window is executors[1].submit_window and window.rate == rate  # one window: the pace is per run, not per executor

    # Parsl's strategy asks for 8 blocks of each executor: together they get 10 now, nothing more within the minute
    from parsl.executors import HighThroughputExecutor

    launched: list[tuple[str, int]] = []
    monkeypatch.setattr(HighThroughputExecutor, "scale_out_facade", lambda self, n: launched.append((self.label, n)) or ["b"] * n)
    assert len(executors[0].scale_out_facade(8)) == 8
    assert len(executors[1].scale_out_facade(8)) == 2
    assert executors[1].scale_out_facade(8) == []
    assert [n for _, n in launched] == [8, 2]


def test_without_a_rate_nothing_changes(write, tmp_path):
    ctx = _context(write, tmp_path, SITE.replace(", submit_rate: 10/1m", ""))
    assert submit_rate(ctx.site) is None
    assert "max-jobs-per-timespan" not in SnakemakeEngine().profile(ctx)
    assert not any(isinstance(e, paced_executor_class()) for e in ParslEngine().config(ctx, resolve_address=False).executors)


@pytest.mark.parametrize("value", ["10 per minute", "0/1m", "10/0s", "10/1", "10/1.5m"])
def test_a_bad_rate_is_refused_with_its_line(write, value):
    with pytest.raises(SpecError, match=r"site.yaml:7:.*polling.submit_rate"):
        load_site(str(write("site.yaml", SITE.replace("submit_rate: 10/1m", f"submit_rate: '{value}'"))), environ={})


def test_validate_refuses_a_bad_rate_with_exit_2(write):
    site = write("site.yaml", SITE.replace("submit_rate: 10/1m", "submit_rate: '10 per minute'"))
    result = run_portaflow("validate", str(site))
    assert result.returncode == 2 and "site.yaml:7:" in result.stderr and "Traceback" not in result.stderr, result.stderr
