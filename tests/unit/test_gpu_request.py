"""GPU requests on SLURM (issue 16): `{model}` in `slurm.gpu_syntax`, a partition's `default_gpu_model`, unknown
placeholders refused at validate with file:line, and the model reaching Snakemake's plugin as it reaches Parsl.
(tests/unit/test_engine_options.py compares both engines' sbatch lines with the real plugin on
tests/data/sites/slurm-partition-policy.yaml, which uses these fields.)"""

from __future__ import annotations

import pytest

from portaflow.errors import SpecError
from portaflow.plan import make_plan
from portaflow.schedulers import adapter_for
from portaflow.schedulers.slurm.snakemake import rule_resources
from portaflow.spec.loading import load_site
from portaflow.spec.workflow import Workflow

from testlib import run_portaflow

# UPPMAX Pelle as users met it: a T4 and an L40s partition, models requested with --gpus=MODEL:N
PELLE = """\
name: pelle
scheduler: slurm
partitions:
  cpu: {max_walltime: 10d, cores_per_node: 48, memory_per_node: 768GB}
  gpu-t4: {max_walltime: 2d, cores_per_node: 32, memory_per_node: 256GB, gpus_per_node: 4, gpu_models: [t4], default_gpu_model: t4}
  gpu-l40s: {max_walltime: 2d, cores_per_node: 64, memory_per_node: 512GB, gpus_per_node: 8, gpu_models: [l40s], default_gpu_model: l40s}
slurm:
  gpu_syntax: "--gpus={model}:{n}"
"""


def plan_for(write, text: str, resources: dict):
    loaded = load_site(str(write("site.yaml", text)), environ={})
    adapter = adapter_for(loaded)
    adapter.check()
    workflow = Workflow.model_validate({"name": "w", "steps": {"s": {"command": "true", "outputs": {"o": "o"}, "resources": resources}}})
    [task] = make_plan(workflow, loaded.site).tasks
    return adapter, task


@pytest.mark.parametrize(("resources", "partition", "gpus"), [
    ({"gpus": 2}, "gpu-t4", "--gpus=t4:2"),                       # no model named: the partition's default, not a fixed l40s
    ({"gpus": 2, "gpu_model": "l40s"}, "gpu-l40s", "--gpus=l40s:2"),
    ({"gpus": 6}, "gpu-l40s", "--gpus=l40s:6"),                   # only the L40s nodes have 6
])
def test_model_in_gpu_syntax_is_the_steps_or_the_partitions_default(write, resources, partition, gpus):
    adapter, task = plan_for(write, PELLE, {"cores": 4, "memory": "8GB", "walltime": "1h", **resources})
    assert task.partition == partition
    options = adapter.directives(task.resources, task.partition)
    assert gpus in options and sum(o.startswith("--gpus") for o in options) == 1
    # Snakemake's slurm plugin is given the same model and count (it writes --gpus=<gpu_model>:<gpu>)
    res = rule_resources(adapter, task)
    assert f"--gpus={res['gpu_model']}:{res['gpu']}" == gpus and "gres" not in res


def test_a_fixed_model_in_gpu_syntax_reaches_snakemake(write):
    """`--gpus=l40s:{n}` used to reach Parsl as written and Snakemake's plugin as --gpus=N."""
    text = PELLE.replace('"--gpus={model}:{n}"', '"--gpus=l40s:{n}"').replace(", default_gpu_model: t4", "")
    text = text.replace(", default_gpu_model: l40s", "")
    adapter, task = plan_for(write, text, {"cores": 4, "memory": "8GB", "walltime": "1h", "gpus": 6})
    assert "--gpus=l40s:6" in adapter.directives(task.resources, task.partition)
    res = rule_resources(adapter, task)
    assert (res["gpu"], res["gpu_model"]) == (6, "l40s")


def test_default_gpu_model_without_model_in_gpu_syntax_uses_gpu_model_syntax(write):
    text = PELLE.replace('  gpu_syntax: "--gpus={model}:{n}"', '  gpu_syntax: "--gres=gpu:{n}"')
    adapter, task = plan_for(write, text, {"cores": 4, "memory": "8GB", "walltime": "1h", "gpus": 1})
    assert task.resources.gpu_model == "t4"
    assert "--gres=gpu:t4:1" in adapter.directives(task.resources, task.partition)
    assert rule_resources(adapter, task)["gres"] == "gpu:t4:1"


def test_model_in_gpu_syntax_needs_a_default_on_every_gpu_partition(write):
    path = write("site.yaml", PELLE.replace(", default_gpu_model: t4", "") + '  gpu_model_syntax: "--gres=gpu:{model}:{n}"\n')
    loaded = load_site(str(path), environ={})
    with pytest.raises(SpecError) as err:
        adapter_for(loaded).check()
    messages = [str(p) for p in err.value.problems]
    assert messages[0].startswith(f"{path}:5:") and "partitions.gpu-t4" in messages[0] and "default_gpu_model: one of t4" in messages[0]
    assert messages[1].startswith(f"{path}:9:") and "slurm.gpu_model_syntax" in messages[1] and "not used" in messages[1]


@pytest.mark.parametrize(("syntax", "expected"), [
    ("--gpus={gpu_model}:{n}", "unknown field {gpu_model}"),
    ("--gpus={model}:{count}", "unknown field {count}"),
    ("--gpus={n", "never closed"),
])
def test_unknown_placeholder_is_refused_when_the_profile_loads_with_its_line(write, syntax, expected):
    path = write("site.yaml", PELLE.replace('"--gpus={model}:{n}"', f'"{syntax}"'))
    with pytest.raises(SpecError) as err:
        load_site(str(path), environ={})
    [problem] = [str(p) for p in err.value.problems]
    assert problem.startswith(f"{path}:8:") and "slurm.gpu_syntax" in problem and expected in problem


def test_validate_reports_an_unknown_placeholder_with_exit_2(write):
    path = write("site.yaml", PELLE.replace('"--gpus={model}:{n}"', '"--gpus={type}:{n}"'))
    result = run_portaflow("validate", str(path))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"{path}:8:" in result.stderr and "unknown field {type}" in result.stderr, result.stderr


def test_default_gpu_model_must_be_offered(write):
    path = write("site.yaml", PELLE.replace("default_gpu_model: t4", "default_gpu_model: a100"))
    with pytest.raises(SpecError, match=r"default_gpu_model 'a100' is not one of this partition's gpu_models \(t4\)") as err:
        load_site(str(path), environ={})
    assert str(err.value.problems[0]).startswith(f"{path}:5:")
