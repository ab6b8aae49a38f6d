"""Loading workflows and site profiles: valid files load; invalid ones say where and what."""

from __future__ import annotations

import pytest

from portaflow.errors import InputError, SpecError
from portaflow.schedulers import scheduler_for
from portaflow.spec.loading import load_site, load_workflow

from testlib import SITES, WORKFLOWS

GOOD_WORKFLOW = """
name: demo
parameters: {n: 2}
steps:
  a:
    command: echo hi > {outputs.x}
    outputs: {x: out/a.txt}
"""


def problems(exc: SpecError) -> list[str]:
    return [str(p) for p in exc.problems]


@pytest.mark.parametrize("path", sorted(WORKFLOWS.rglob("*.yaml")), ids=lambda p: p.name)
def test_shipped_workflows_load(path):
    assert load_workflow(path).workflow.steps


@pytest.mark.parametrize("path", sorted(SITES.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_sites_load(path):
    loaded = load_site(str(path), environ={})
    scheduler_for(loaded.site.scheduler)(loaded).check()
    assert loaded.site.partitions


def test_yaml_syntax_error_has_line_and_column(write):
    path = write("wf.yaml", "name: x\nsteps:\n  a: {command: [unclosed\n")
    with pytest.raises(SpecError) as err:
        load_workflow(path)
    [message] = problems(err.value)
    assert message.startswith(f"{path}:")
    assert "YAML syntax error" in message
    line = int(message.split(":")[1])
    assert line >= 3


def test_unknown_key_is_located_with_did_you_mean(write):
    path = write("wf.yaml", """
        name: demo
        steps:
          a:
            command: echo hi > {outputs.x}
            outputs: {x: out/a.txt}
            resources:
              cores: 2
              memmory: 4GB
        """)
    with pytest.raises(SpecError) as err:
        load_workflow(path)
    [message] = problems(err.value)
    assert message == f"{path}:8:7: steps.a.resources.memmory: unknown key (did you mean 'memory'?)"


def test_bad_unit_names_key_expected_and_found(write):
    path = write("wf.yaml", GOOD_WORKFLOW + "    resources: {walltime: 3 fortnights}\n")
    with pytest.raises(SpecError) as err:
        load_workflow(path)
    [message] = problems(err.value)
    assert "steps.a.resources.walltime" in message
    assert "expected a duration like '90m'" in message and "'3 fortnights'" in message
    assert message.startswith(f"{path}:7:27:")  # the value itself, inside the flow mapping


def test_wrong_type(write):
    path = write("wf.yaml", GOOD_WORKFLOW + "    resources: {cores: many}\n")
    with pytest.raises(SpecError) as err:
        load_workflow(path)
    [message] = problems(err.value)
    assert "steps.a.resources.cores" in message and "expected a valid integer" in message and "'many'" in message


def test_two_actions_in_a_step(write):
    path = write("wf.yaml", GOOD_WORKFLOW + "    python: mod:func\n")
    with pytest.raises(SpecError) as err:
        load_workflow(path)
    assert "exactly one of 'command', 'python' or 'dask', found command, python" in problems(err.value)[0]


def test_missing_key_and_several_problems_reported_together(write):
    path = write("wf.yaml", """
        steps:
          a:
            command: echo
            retries: -1
            outputs: {x: {pth: a.txt}}
        """)
    with pytest.raises(SpecError) as err:
        load_workflow(path)
    text = "\n".join(problems(err.value))
    assert "name: required key is missing" in text
    assert "steps.a.retries" in text and "greater than or equal to 0" in text
    assert "steps.a.outputs.x.pth: unknown key (did you mean 'path'?)" in text


def test_duplicate_keys_are_errors(write):
    path = write("wf.yaml", "name: a\nname: b\nsteps: {}\n")
    with pytest.raises(SpecError) as err:
        load_workflow(path)
    assert "duplicate key" in problems(err.value)[0]


def test_unknown_comparator(write):
    path = write("wf.yaml", GOOD_WORKFLOW.replace("{x: out/a.txt}", "{x: {path: a, compare: md5}}"))
    with pytest.raises(SpecError) as err:
        load_workflow(path)
    assert "steps.a.outputs.x.compare.method" in problems(err.value)[0]


def test_site_extends_and_user_overrides(write):
    write("base.yaml", """
        name: base
        scheduler: slurm
        partitions:
          cpu: {max_walltime: 1h, cores_per_node: 4, memory_per_node: 8GB}
        account: admin-default
        dask: {worker_cores: 2}
        """)
    child = write("child.yaml", """
        name: child
        extends: base.yaml
        qos: high
        dask: {worker_memory: 4GB}
        """)
    loaded = load_site(str(child), overrides={"account": "my-project"}, environ={"PORTAFLOW_SITE_DASK__MODE": "jobs"})
    site = loaded.site
    assert (site.name, site.account, site.qos) == ("child", "my-project", "high")
    assert (site.dask.worker_cores, site.dask.worker_memory, site.dask.mode) == (2, 3815, "jobs")  # GB is decimal: 4e9 bytes
    assert site.partitions["cpu"].cores_per_node == 4


def test_env_override_of_account(write):
    path = write("s.yaml", "name: s\nscheduler: slurm\npartitions: {cpu: {max_walltime: 1h, cores_per_node: 4, memory_per_node: 8GB}}\n")
    assert load_site(str(path), environ={"PORTAFLOW_SITE_ACCOUNT": "from-env"}).site.account == "from-env"


def test_extends_cycle(write):
    write("a.yaml", "name: a\nextends: b.yaml\n")
    b = write("b.yaml", "name: b\nextends: a.yaml\n")
    with pytest.raises(SpecError, match="cycle"):
        load_site(str(b), environ={})


def test_site_error_located_in_parent_file(write):
    write("base.yaml", "name: base\nscheduler: slurm\npartitions:\n  cpu: {max_walltime: forever, cores_per_node: 4, memory_per_node: 8GB}\n")
    child = write("child.yaml", "name: child\nextends: base.yaml\n")
    with pytest.raises(SpecError) as err:
        load_site(str(child), environ={})
    [message] = problems(err.value)
    assert "base.yaml:4:" in message and "partitions.cpu.max_walltime" in message


def test_extra_directive_may_not_override_managed_flag(write):
    path = write("s.yaml", """
        name: s
        scheduler: slurm
        partitions: {cpu: {max_walltime: 1h, cores_per_node: 4, memory_per_node: 8GB}}
        extra_directives:
          - --hint=nomultithread
          - --time=99:00:00
        """)
    loaded = load_site(str(path), environ={})
    with pytest.raises(SpecError) as err:
        scheduler_for("slurm")(loaded).check()
    [message] = problems(err.value)
    assert message.startswith(f"{path}:6:")
    assert "extra_directives[1]" in message and "--time" in message and "manages" in message


def test_unknown_site_name_suggests():
    with pytest.raises(InputError, match="did you mean 'slurm-local'"):
        load_site("slurm-locl", environ={})


def test_gpu_syntax_must_have_n(write):
    path = write("s.yaml", "name: s\nscheduler: slurm\ngpu_syntax: --gres=gpu\n"
                           "partitions: {cpu: {max_walltime: 1h, cores_per_node: 4, memory_per_node: 8GB}}\n")
    with pytest.raises(SpecError, match="gpu_syntax: expected a template containing"):
        load_site(str(path), environ={})
