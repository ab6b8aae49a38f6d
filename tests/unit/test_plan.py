"""The plan: partitions, rejections, scatter/gather, DAG errors, GPU and memory rules, quoting."""

from __future__ import annotations

import subprocess

import pytest

from portaflow.errors import InputError, PlanError
from portaflow.plan import make_plan
from portaflow.schedulers.slurm import SlurmScheduler
from portaflow.spec.loading import LoadedSite
from portaflow.spec.site import SiteProfile
from portaflow.spec.slurm import SlurmSettings
from portaflow.spec.workflow import Workflow

SITE = SiteProfile.model_validate({
    "name": "hpc", "scheduler": "slurm", "account": "proj1",
    "partitions": {
        "gpu": {"max_walltime": "2d", "cores_per_node": 64, "memory_per_node": "512GB", "gpus_per_node": 4, "gpu_models": ["a100", "h100"]},
        "long": {"max_walltime": "3d", "cores_per_node": 128, "memory_per_node": "256GB"},
        "short": {"max_walltime": "4h", "cores_per_node": 128, "memory_per_node": "256GB", "default": True},
        "bigmem": {"max_walltime": "1d", "cores_per_node": 64, "memory_per_node": "2TB"},
    },
})


def workflow(steps: dict, parameters: dict | None = None) -> Workflow:
    return Workflow.model_validate({"name": "wf", "parameters": parameters or {}, "steps": steps})


def one_step(**resources) -> Workflow:
    return workflow({"s": {"command": "true > {outputs.o}", "outputs": {"o": "o.txt"}, "resources": resources}})


@pytest.mark.parametrize("resources, partition", [
    ({}, "short"),
    ({"walltime": "5h"}, "bigmem"),           # the shortest partition allowing 5 h
    ({"walltime": "2d"}, "long"),
    ({"memory": "1TB"}, "bigmem"),
    ({"gpus": 1}, "gpu"),
    ({"gpus": 2, "gpu_model": "h100"}, "gpu"),
    ({"cores": 100}, "short"),
])
def test_smallest_partition_that_fits(resources, partition):
    assert make_plan(one_step(**resources), SITE).tasks[0].partition == partition


def test_walltime_rejection_names_step_request_and_limit():
    wf = workflow({"image": {"command": "true", "outputs": {"o": "o.txt"}, "resources": {"walltime": "3d", "gpus": 1}}})
    with pytest.raises(PlanError) as err:
        make_plan(wf, SITE)
    assert "step image needs 3 days; partition gpu allows at most 2 days" in str(err.value)


@pytest.mark.parametrize("resources, words", [
    ({"cores": 256}, "needs 256 cores; partition"),
    ({"memory": "4TB"}, "needs 3.6 TiB of memory; partition bigmem has 1.8 TiB per node"),
    ({"gpus": 8}, "needs 8 GPUs; partition gpu has 4 GPUs per node"),
    ({"gpus": 1, "gpu_model": "v100"}, "needs GPU model v100; partition gpu offers: a100, h100"),
    ({"nodes": 4}, "needs 4 nodes; partition"),
])
def test_rejections(resources, words):
    with pytest.raises(PlanError, match="step s cannot run on site hpc") as err:
        make_plan(one_step(**resources), SITE)
    assert words in str(err.value)


def test_scatter_and_gather():
    wf = workflow({
        "make": {"scatter": {"i": {"range": "{n}"}}, "command": "echo {i} > {outputs.o}", "outputs": {"o": "d/{i}.txt"}},
        "sum": {"command": "cat {inputs.parts} > {outputs.o}", "inputs": {"parts": "d/{i}.txt"}, "outputs": {"o": "sum.txt"}},
    }, {"n": 3})
    plan = make_plan(wf, SITE, {"n": "4"})
    assert [t.display for t in plan.tasks] == ["make[i=0]", "make[i=1]", "make[i=2]", "make[i=3]", "sum"]
    total = plan.tasks[-1]
    assert total.inputs["parts"] == ("d/0.txt", "d/1.txt", "d/2.txt", "d/3.txt")
    assert set(total.depends) == {"make__i_0", "make__i_1", "make__i_2", "make__i_3"}
    assert total.command == "cat d/0.txt d/1.txt d/2.txt d/3.txt > sum.txt"


def test_scatter_over_list_parameter_and_product():
    wf = workflow({"s": {"scatter": {"a": "{samples}", "b": [1, 2]}, "command": "true", "outputs": {"o": "{a}_{b}.txt"}}},
                  {"samples": ["x", "y"]})
    assert [t.display for t in make_plan(wf, SITE).tasks] == ["s[a=x,b=1]", "s[a=x,b=2]", "s[a=y,b=1]", "s[a=y,b=2]"]


def test_data_dependent_fanout_is_refused():
    wf = workflow({"s": {"scatter": {"f": "data/*.root"}, "command": "true", "outputs": {"o": "{f}.out"}}})
    with pytest.raises(PlanError, match="fan-out that depends on data"):
        make_plan(wf, SITE)


def test_cycle_is_named():
    wf = workflow({
        "a": {"command": "true", "inputs": {"i": "c.txt"}, "outputs": {"o": "a.txt"}},
        "b": {"command": "true", "inputs": {"i": "a.txt"}, "outputs": {"o": "b.txt"}},
        "c": {"command": "true", "inputs": {"i": "b.txt"}, "outputs": {"o": "c.txt"}},
    })
    with pytest.raises(PlanError) as err:
        make_plan(wf, SITE)
    message = str(err.value)
    assert "cycle" in message
    assert any(chain in message for chain in ("a -> b -> c -> a", "b -> c -> a -> b", "c -> a -> b -> c"))


def test_two_steps_writing_one_output():
    wf = workflow({"a": {"command": "true", "outputs": {"o": "x.txt"}}, "b": {"command": "true", "outputs": {"o": "./x.txt"}}})
    with pytest.raises(PlanError, match="steps a and b both write x.txt"):
        make_plan(wf, SITE)


def test_scattered_output_without_variable():
    wf = workflow({"a": {"scatter": {"i": [1, 2]}, "command": "true", "outputs": {"o": "same.txt"}}})
    with pytest.raises(PlanError, match="both write same.txt; put the scatter variable in the output path"):
        make_plan(wf, SITE)


def test_unknown_template_field_suggests():
    wf = workflow({"a": {"command": "echo {sead} > {outputs.o}", "outputs": {"o": "x"}}}, {"seed": 1})
    with pytest.raises(PlanError, match="did you mean 'seed'"):
        make_plan(wf, SITE)


def test_unknown_and_mistyped_parameters():
    wf = one_step()
    with pytest.raises(InputError, match="unknown parameter 'nope'"):
        make_plan(wf, SITE, {"nope": 1})
    wf = workflow({"s": {"command": "true", "outputs": {"o": "o.txt"}}}, {"n": 3})
    with pytest.raises(InputError, match="parameter 'n' expects int"):
        make_plan(wf, SITE, {"n": "three"})


def test_external_inputs_are_listed_not_checked():
    wf = workflow({"a": {"command": "cat {inputs.i}", "inputs": {"i": "raw/data.txt"}, "outputs": {"o": "x"}}})
    plan = make_plan(wf, SITE)
    assert plan.external_inputs == {"raw/data.txt": ["a"]}


@pytest.mark.parametrize("evil", ["$(touch pwned)", "a; rm -rf x", "`id`", "it's", "two words", "$HOME", "a\"b"])
def test_values_are_quoted_into_commands(evil, tmp_path):
    wf = workflow({"a": {"command": "printf %s {v} > {outputs.o}", "outputs": {"o": "out {name}.txt"}}}, {"v": "x", "name": "n"})
    task = make_plan(wf, SITE, {"v": evil, "name": evil.replace("/", "_")}).tasks[0]
    result = subprocess.run(["bash", "-c", task.command], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / task.outputs["o"].path).read_text() == evil
    assert not (tmp_path / "pwned").exists()


def test_in_allocation_dask_step_holds_its_workers():
    site = SITE.model_copy(update={"dask": SITE.dask.model_copy(update={"mode": "in_allocation", "worker_memory": 4096})})
    wf = workflow({"d": {"dask": "m:f", "outputs": {"o": "o.txt"}, "resources": {"cores": 1, "dask_workers": {"cpu": 3, "gpu": 1, "threads": 2}}}})
    task = make_plan(wf, site).tasks[0]
    assert (task.resources.cores, task.resources.memory_mib, task.resources.gpus) == (8, 16384, 1)
    assert task.partition == "gpu"


def test_in_allocation_dask_step_on_several_nodes_holds_its_share_per_node_and_starts_workers_there(tmp_path):
    """Cores, memory and GPUs are per node: 3 workers on 2 nodes need 2 workers' worth on each (4 cores, not 6, per node),
    the job asks for one task per node (SLURM shrinks `--nodes=2 --ntasks=1` to one node), and the step's Dask settings
    name the SLURM adapter's way to start workers on the other nodes."""
    from portaflow.plan.model import TaskResources
    from portaflow.schedulers.context import RunContext
    from portaflow.schedulers.slurm.snakemake import rule_resources

    site = SITE.model_copy(update={
        "dask": SITE.dask.model_copy(update={"mode": "in_allocation", "worker_memory": 4096}),
        "partitions": {**SITE.partitions, "short": SITE.partitions["short"].model_copy(update={"max_nodes": 4})}})
    wf = workflow({"d": {"dask": "m:f", "outputs": {"o": "o.txt"},
                         "resources": {"cores": 1, "nodes": 2, "dask_workers": {"cpu": 3, "threads": 2}}}})
    plan = make_plan(wf, site)
    task = plan.tasks[0]
    assert (task.resources.cores, task.resources.memory_mib, task.resources.nodes, task.partition) == (4, 8192, 2, "short")
    scheduler = slurm(site)
    assert ["--nodes=2", "--ntasks=2", "--cpus-per-task=4"] == [d for d in scheduler.directives(task.resources, "short")
                                                                  if d.startswith(("--nodes", "--ntasks", "--cpus"))]
    assert rule_resources(scheduler, task)["tasks"] == 2
    ctx = RunContext(plan, LoadedSite(site, []), tmp_path, tmp_path, plan.tasks, scheduler)
    assert ctx.dask_settings(task)["cluster"] == "portaflow.runtime.dask_srun:srun_cluster"
    one_node = make_plan(workflow({"d": {"dask": "m:f", "outputs": {"o": "o.txt"}, "resources": {"dask_workers": {"cpu": 3}}}}), site)
    assert "cluster" not in ctx.dask_settings(one_node.tasks[0])  # one node: workers beside the scheduler, as before
    assert {"--nodes=1", "--ntasks=1"} <= set(scheduler.directives(TaskResources(1, 100, 60), "short"))


def test_dask_worker_jobs_get_their_own_partitions():
    site = SITE.model_copy(update={"dask": SITE.dask.model_copy(update={"mode": "jobs"})})
    wf = workflow({"d": {"dask": "m:f", "outputs": {"o": "o.txt"}, "resources": {"dask_workers": {"cpu": 2, "gpu": 1}}}})
    task = make_plan(wf, site).tasks[0]
    assert (task.dask.cpu_worker_partition, task.dask.gpu_worker_partition) == ("short", "gpu")
    assert task.resources.gpus == 0


def slurm(site: SiteProfile) -> SlurmScheduler:
    return SlurmScheduler(LoadedSite(site, []))


def test_slurm_directives_memory_per_node_and_gres():
    task = make_plan(one_step(cores=4, memory="8GiB", walltime="90m", gpus=2), SITE).tasks[0]
    assert slurm(SITE).directives(task.resources, task.partition) == [
        "--partition=gpu", "--account=proj1", "--time=01:30:00", "--nodes=1", "--ntasks=1",
        "--cpus-per-task=4", "--mem=8192M", "--gres=gpu:2", "--no-requeue",
    ]


@pytest.mark.parametrize("syntax, model_syntax, expected", [
    ("--gpus={n}", "--gpus={model}:{n}", "--gpus=a100:2"),
    ("--gpus-per-node={n}", "--gpus-per-node={model}:{n}", "--gpus-per-node=a100:2"),
    ("--gres=gpu:{n}", "--gres=gpu:{model}:{n}", "--gres=gpu:a100:2"),
])
def test_slurm_gpu_syntax_and_mem_per_cpu(syntax, model_syntax, expected):
    rules = {"memory_rule": "per_cpu", "gpu_syntax": syntax, "gpu_model_syntax": model_syntax, "qos": "normal"}
    site = SITE.model_copy(update={"slurm": SlurmSettings.model_validate(rules)})
    task = make_plan(one_step(cores=3, memory="10GiB", gpus=2, gpu_model="a100"), site).tasks[0]
    directives = slurm(site).directives(task.resources, task.partition)
    assert "--mem-per-cpu=3414M" in directives  # ceil(10240 / 3): never less than asked
    assert expected in directives and "--qos=normal" in directives
    assert not any(d.startswith("--mem=") for d in directives)
