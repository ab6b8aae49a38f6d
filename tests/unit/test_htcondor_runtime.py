"""Issue 16: HTCondor pools that read the walltime from several job attributes (DESY NAF sets +RequestRuntime and
+MaxRuntime): `htcondor.runtime_attribute` takes a list, and both engines' jobs carry each."""

from __future__ import annotations

import pytest

from portaflow.engines.parsl_engine import ParslEngine
from portaflow.errors import SpecError
from portaflow.plan import make_plan
from portaflow.schedulers import adapter_for
from portaflow.schedulers.context import RunContext
from portaflow.schedulers.htcondor.engines import rule_resources
from portaflow.spec.loading import load_site
from portaflow.spec.workflow import Workflow

NAF = """\
name: naf
scheduler: htcondor
partitions:
  default: {max_walltime: 3d, cores_per_node: 8, memory_per_node: 32GB}
htcondor:
  runtime_attribute: [RequestRuntime, MaxRuntime]
"""


def _context(write, tmp_path, text: str = NAF) -> RunContext:
    loaded = load_site(str(write("site.yaml", text)), environ={})
    adapter = adapter_for(loaded)
    adapter.check()
    steps = {"s": {"command": "true", "outputs": {"o": "o"}, "resources": {"cores": 2, "walltime": "3h"}}}
    plan = make_plan(Workflow.model_validate({"name": "w", "steps": steps}), loaded.site)
    return RunContext(plan, loaded, tmp_path / "work", tmp_path / "run", plan.tasks, adapter)


def test_every_runtime_attribute_reaches_both_engines(write, tmp_path):
    ctx = _context(write, tmp_path)
    [task] = ctx.tasks
    commands = ctx.scheduler.commands(task.resources, task.partition)
    assert commands["+RequestRuntime"] == commands["+MaxRuntime"] == str(3 * 3600)
    res = rule_resources(ctx, task)  # Snakemake's htcondor plugin: job attributes as classad_<Name>
    assert res["classad_RequestRuntime"] == res["classad_MaxRuntime"] == 3 * 3600
    [executor] = ParslEngine().config(ctx, resolve_address=False).executors
    options = executor.provider.scheduler_options.splitlines()
    assert "+RequestRuntime = 10800" in options and "+MaxRuntime = 10800" in options


def test_one_name_and_null_still_work(write, tmp_path):
    one = _context(write, tmp_path, NAF.replace("[RequestRuntime, MaxRuntime]", "MaxRuntime"))
    assert one.scheduler.runtime_attributes() == ["MaxRuntime"]
    none = _context(write, tmp_path, NAF.replace("[RequestRuntime, MaxRuntime]", "null"))
    [task] = none.tasks
    assert not any(k.endswith("Runtime") for k in none.scheduler.commands(task.resources, task.partition))


def test_each_runtime_attribute_is_managed(write, tmp_path):
    with pytest.raises(SpecError, match="RequestRuntime"):
        _context(write, tmp_path, NAF + "extra_directives: ['+RequestRuntime = 60']\n")


def test_a_bad_name_in_the_list_is_refused_at_its_line(write, tmp_path):
    with pytest.raises(SpecError) as exc:
        _context(write, tmp_path, NAF.replace("[RequestRuntime, MaxRuntime]", "[RequestRuntime, 'Max Runtime']"))
    assert "site.yaml:6:" in str(exc.value)


@pytest.mark.parametrize(("value", "written"), [("[X509_USER_PROXY, BEARER_TOKEN_FILE]", "X509_USER_PROXY, BEARER_TOKEN_FILE"),
                                                ("true", "true")])
def test_getenv_reaches_both_engines(write, tmp_path, value, written):
    """DESY's pools copy some of the submitting shell's variables into jobs (getenv): a profile key now, not a refusal."""
    ctx = _context(write, tmp_path, NAF + f"  getenv: {value}\n")
    [task] = ctx.tasks
    assert ctx.scheduler.commands(task.resources, task.partition)["getenv"] == written
    assert rule_resources(ctx, task)["getenv"] == written  # the htcondor plugin writes its `getenv` resource as is
    [executor] = ParslEngine().config(ctx, resolve_address=False).executors
    assert f"getenv = {written}" in executor.provider.scheduler_options.splitlines()


def test_getenv_in_extra_directives_says_where_it_goes(write, tmp_path):
    with pytest.raises(SpecError, match=r"set htcondor.getenv: \[NAME, \.\.\.\]"):
        _context(write, tmp_path, NAF + "extra_directives: ['getenv = true']\n")
    with pytest.raises(SpecError, match=r"set environment.env"):
        _context(write, tmp_path, NAF + "extra_directives: ['environment = \"A=1\"']\n")
