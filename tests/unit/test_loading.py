"""Loading workflows and site profiles: valid files load; invalid ones say where and what."""

from __future__ import annotations

import pytest

from portaflow.errors import InputError, SpecError
from portaflow.plan.model import TaskResources
from portaflow.schedulers import scheduler_for
from portaflow.spec.loading import load_site, load_workflow

from testlib import SITES, WORKFLOWS, run_portaflow

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
        slurm: {qos: high}
        dask: {worker_memory: 4GB}
        """)
    loaded = load_site(str(child), overrides={"account": "my-project"}, environ={"PORTAFLOW_SITE_DASK__MODE": "jobs"})
    site = loaded.site
    assert (site.name, site.account, site.slurm.qos) == ("child", "my-project", "high")
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


@pytest.mark.parametrize("key", ["gpu_syntax", "gpu_model_syntax"])
def test_gpu_syntax_must_have_n(write, key):
    path = write("s.yaml", f"name: s\nscheduler: slurm\nslurm:\n  {key}: --gres=gpu\n"
                           "partitions: {cpu: {max_walltime: 1h, cores_per_node: 4, memory_per_node: 8GB}}\n")
    with pytest.raises(SpecError) as err:
        load_site(str(path), environ={})
    assert problems(err.value) == [f"{path}:4:{len(key) + 5}: slurm.{key}: expected a template containing '{{n}}', found '--gres=gpu'"]


# -- SLURM-only keys live in the `slurm:` section; the old places say where they went -------------------------
SLURM_SITE = "name: s\nscheduler: slurm\npartitions:\n  cpu: {max_walltime: 1h, cores_per_node: 4, memory_per_node: 8GB}\n"
MOVED = [  # (text appended to SLURM_SITE, old key, line:column of the old key, new key)
    ("qos: normal\n", "qos", "5:1", "slurm.qos"),
    ("reservation: training\n", "reservation", "5:1", "slurm.reservation"),
    ("constraint: avx2\n", "constraint", "5:1", "slurm.constraint"),
    ("memory_rule: per_cpu\n", "memory_rule", "5:1", "slurm.memory_rule"),
    ('gpu_syntax: "--gpus={n}"\n', "gpu_syntax", "5:1", "slurm.gpu_syntax"),
    ('gpu_model_syntax: "--gpus={model}:{n}"\n', "gpu_model_syntax", "5:1", "slurm.gpu_model_syntax"),
    ("polling:\n  interval: 30s\n  status_command: squeue\n", "polling.status_command", "7:3", "slurm.status_command"),
    ("parsl:\n  max_blocks: 2\n  launcher: srun\n", "parsl.launcher", "7:3", "slurm.launcher"),
]


@pytest.mark.parametrize("text, old, where, new", MOVED, ids=[m[1] for m in MOVED])
def test_moved_slurm_key_says_where_it_went(write, text, old, where, new):
    path = write("s.yaml", SLURM_SITE + text)
    result = run_portaflow("validate", str(path))
    assert result.returncode == 2, result.stdout
    assert f"{path}:{where}: {old}: moved to {new} (write it under a 'slurm:' section)" in result.stderr.splitlines()
    assert "unknown key" not in result.stderr and "Traceback" not in result.stderr


def test_moved_key_in_a_parent_profile_is_located_there(write):
    write("base.yaml", SLURM_SITE + "account: a\nqos: normal\n")
    child = write("child.yaml", "name: child\nextends: base.yaml\nslurm: {reservation: r1}\n")
    with pytest.raises(SpecError) as err:
        load_site(str(child), environ={})
    assert problems(err.value) == [f"{child.parent / 'base.yaml'}:6:1: qos: moved to slurm.qos (write it under a 'slurm:' section)"]


def test_slurm_section_values_reach_the_job(write):
    path = write("s.yaml", SLURM_SITE + "slurm:\n" + "".join(f"  {line}\n" for line in [
        "qos: normal", "reservation: training", "constraint: avx2|amd", "memory_rule: per_cpu", 'gpu_syntax: "--gpus={n}"',
        "status_command: squeue", "launcher: srun",
    ]))
    loaded = load_site(str(path), environ={})
    assert (loaded.site.slurm.status_command, loaded.site.slurm.launcher) == ("squeue", "srun")
    request = TaskResources(cores=2, memory_mib=1000, walltime_s=600, gpus=1)
    assert scheduler_for("slurm")(loaded).directives(request, "cpu") == [
        "--partition=cpu", "--qos=normal", "--reservation=training", "--constraint=(avx2|amd)", "--time=00:10:00",
        "--nodes=1", "--ntasks=1", "--cpus-per-task=2", "--mem-per-cpu=500M", "--gpus=1", "--no-requeue",
    ]


def test_slurm_values_set_by_users(write):
    path = write("s.yaml", SLURM_SITE)
    site = load_site(str(path), overrides={"slurm.qos": "high"}, environ={"PORTAFLOW_SITE_SLURM__MEMORY_RULE": "none"}).site
    assert (site.slurm.qos, site.slurm.memory_rule) == ("high", "none")


def test_user_value_under_a_moved_key_says_where_it_went(write):
    path = write("s.yaml", SLURM_SITE)
    wordfreq = str(WORKFLOWS / "examples" / "wordfreq.yaml")
    result = run_portaflow("plan", wordfreq, "--site", str(path), "--site-set", "qos=high")
    assert result.returncode == 2, result.stdout
    assert "--site-set: qos: moved to slurm.qos (write --site-set slurm.qos=high)" in result.stderr
    result = run_portaflow("plan", wordfreq, "--site", str(path), env={"PORTAFLOW_SITE_PARSL__LAUNCHER": "srun"})
    assert result.returncode == 2, result.stdout
    assert ("PORTAFLOW_SITE_PARSL__LAUNCHER: parsl.launcher: moved to slurm.launcher "
            "(set PORTAFLOW_SITE_SLURM__LAUNCHER instead)") in result.stderr


def test_slurm_placement_on_kubernetes_is_refused():
    loaded = load_site("example-egi-cloud-k8s", overrides={"slurm.reservation": "training"}, environ={})
    with pytest.raises(SpecError) as err:
        scheduler_for("kubernetes")(loaded).check()
    [message] = problems(err.value)
    assert "slurm.reservation: slurm.reservation is a batch-scheduler setting with no Kubernetes equivalent" in message
