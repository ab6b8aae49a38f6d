"""Partition choice that fits real queues (issue 16), each case a few lines modelled on a centre's published
configuration: preference (`priority`), `auto: false`, minimum job sizes, whole-node (`exclusive`) partitions charged
as such, per-partition account, QOS, modules, worker_init and extra directives, and the one line `plan` prints for
why a partition won."""

from __future__ import annotations

import pytest

from portaflow.errors import PlanError, SpecError
from portaflow.plan import make_plan
from portaflow.schedulers import adapter_for
from portaflow.schedulers.context import RunContext
from portaflow.schedulers.slurm.snakemake import rule_resources
from portaflow.spec.loading import load_site
from portaflow.spec.workflow import Workflow

from testlib import run_portaflow


def plan_one(write, profile: str, resources: dict, overrides: dict | None = None):
    loaded = load_site(str(write("site.yaml", profile)), overrides, environ={})
    adapter_for(loaded).check()
    workflow = Workflow.model_validate({"name": "w", "steps": {"s": {"command": "true", "outputs": {"o": "o"}, "resources": resources}}})
    [task] = make_plan(workflow, loaded.site).tasks
    return loaded, task


# PDC Dardel: `main` gives whole 256-core nodes (charged as such), `shared` shares them
DARDEL = """\
name: dardel
scheduler: slurm
partitions:
  main: {max_walltime: 1d, cores_per_node: 256, memory_per_node: 220GB, max_nodes: 100, exclusive: true}
  shared: {max_walltime: 1d, cores_per_node: 256, memory_per_node: 220GB}
  long: {max_walltime: 7d, cores_per_node: 256, memory_per_node: 220GB, exclusive: true}
"""


def test_small_tasks_go_to_the_shared_partition_not_whole_nodes(write):
    _, task = plan_one(write, DARDEL, {"cores": 4, "memory": "8GB", "walltime": "2h"})
    assert task.partition == "shared"
    assert task.partition_reason == "shared wins; main: charged 256 cores (whole nodes); long: charged 256 cores (whole nodes)"
    _, task = plan_one(write, DARDEL, {"cores": 4, "memory": "8GB", "walltime": "2h", "nodes": 4})  # shared has max_nodes 1
    assert task.partition == "main" and "shared: needs 4 nodes, allows at most 1" in task.partition_reason


# Purdue Gautschi: `highmem` refuses jobs under 49 cores
GAUTSCHI = """\
name: gautschi
scheduler: slurm
partitions:
  cpu: {max_walltime: 14d, cores_per_node: 192, memory_per_node: 384GB, max_nodes: 16}
  highmem: {max_walltime: 1d, cores_per_node: 192, memory_per_node: 1500GB, min_cores: 49}
"""


def test_a_partition_with_a_minimum_takes_only_jobs_that_reach_it(write):
    _, task = plan_one(write, GAUTSCHI, {"cores": 8, "memory": "16GB", "walltime": "1h"})
    assert task.partition == "cpu" and task.partition_reason == "cpu the only one that fits; highmem: needs 8 cores, takes jobs of at least 49"
    _, task = plan_one(write, GAUTSCHI, {"cores": 64, "memory": "1000GB", "walltime": "1h"})
    assert task.partition == "highmem"
    with pytest.raises(PlanError, match="step s needs 8 cores; partition highmem takes jobs of at least 49"):
        plan_one(write, GAUTSCHI, {"cores": 8, "memory": "1000GB", "walltime": "1h"})
    with pytest.raises(SpecError, match="min_cores 400 is more than cores_per_node 192"):
        plan_one(write, GAUTSCHI.replace("min_cores: 49", "min_cores: 400"), {})


# TACC Frontera: `development` (2 h, one job per user) is for trying things, not for a workflow's tasks
FRONTERA = """\
name: frontera
scheduler: slurm
partitions:
  development: {max_walltime: 2h, cores_per_node: 56, memory_per_node: 192GB, max_nodes: 40, auto: false}
  normal: {max_walltime: 2d, cores_per_node: 56, memory_per_node: 192GB, max_nodes: 512, default: true}
"""


def test_auto_false_keeps_a_partition_out_of_automatic_choice_until_a_user_turns_it_on(write):
    _, task = plan_one(write, FRONTERA, {"cores": 4, "memory": "8GB", "walltime": "30m"})
    assert task.partition == "normal" and "development: not chosen automatically (auto: false)" in task.partition_reason
    _, task = plan_one(write, FRONTERA, {"cores": 4, "memory": "8GB", "walltime": "30m"}, {"partitions.development.auto": "true"})
    assert task.partition == "development"
    with pytest.raises(PlanError, match=r"fits only partition\(s\) development, which the plan does not choose by itself \(auto: false\); "
                                        r"turn one on with --site-set partitions.development.auto=true"):
        plan_one(write, FRONTERA.replace("max_nodes: 512", "max_nodes: 10"), {"cores": 4, "memory": "8GB", "walltime": "30m", "nodes": 20})


# KU Leuven wICE: GPU steps to the A100 nodes unless they ask for an H100
WICE = """\
name: wice
scheduler: slurm
partitions:
  batch: {max_walltime: 3d, cores_per_node: 72, memory_per_node: 240GB, default: true}
  gpu_h100: {max_walltime: 3d, cores_per_node: 64, memory_per_node: 720GB, gpus_per_node: 4, gpu_models: [h100]}
  gpu_a100: {max_walltime: 3d, cores_per_node: 64, memory_per_node: 480GB, gpus_per_node: 4, gpu_models: [a100], priority: 10}
"""


def test_priority_prefers_a_partition_among_those_that_fit(write):
    _, task = plan_one(write, WICE, {"cores": 8, "memory": "32GB", "walltime": "1h", "gpus": 1})
    assert task.partition == "gpu_a100"  # fewest-cores-then-memory alone chose gpu_h100's twin before
    assert "gpu_h100: lower priority (0 < 10)" in task.partition_reason and "batch: needs 1 GPUs, has no GPUs" in task.partition_reason
    _, task = plan_one(write, WICE, {"cores": 8, "memory": "32GB", "walltime": "1h", "gpus": 1, "gpu_model": "h100"})
    assert task.partition == "gpu_h100"
    _, task = plan_one(write, WICE, {"cores": 8, "memory": "32GB", "walltime": "1h"})
    assert task.partition == "batch"  # a priority never sends a CPU step to GPU nodes


# NCSA Delta / Purdue Anvil: CPU and GPU jobs are charged to different accounts; Anvil loads modtree/gpu for GPU jobs
ANVIL = """\
name: anvil
scheduler: slurm
account: x-abc123
partitions:
  wholenode: {max_walltime: 4d, cores_per_node: 128, memory_per_node: 256GB, exclusive: true}
  shared: {max_walltime: 4d, cores_per_node: 128, memory_per_node: 256GB, qos: cpu}
  gpu:
    max_walltime: 2d
    cores_per_node: 128
    memory_per_node: 512GB
    gpus_per_node: 4
    account: x-abc123-gpu
    qos: gpu
    modules: [modtree/gpu]
    worker_init: ["export ANVIL_GPU=1"]
    extra_directives: ["--gpu-bind=closest"]
slurm: {qos: cpu-default, gpu_syntax: "--gpus-per-node={n}"}
extra_directives: ["--hint=nomultithread"]
"""


def test_per_partition_account_qos_modules_init_and_directives_reach_both_engines(write, tmp_path):
    loaded, task = plan_one(write, ANVIL, {"cores": 8, "memory": "32GB", "walltime": "1h", "gpus": 1})
    adapter = adapter_for(loaded)
    options = adapter.directives(task.resources, task.partition)
    assert "--account=x-abc123-gpu" in options and "--qos=gpu" in options
    assert options[-2:] == ["--hint=nomultithread", "--gpu-bind=closest"]
    res = rule_resources(adapter, task)
    assert (res["slurm_account"], res["qos"]) == ("x-abc123-gpu", "gpu")
    assert res["slurm_extra"] == "--gpus-per-node=1 --hint=nomultithread --gpu-bind=closest"
    ctx = RunContext(None, loaded, tmp_path, tmp_path, [task], adapter)  # shell_line reads the site and the task
    shell = ctx.shell_line(task)
    assert "module load modtree/gpu" in shell and shell.index("module load modtree/gpu") < shell.index("export ANVIL_GPU=1")
    from portaflow.schedulers.parsl_blocks import worker_init
    assert "module load modtree/gpu\nexport ANVIL_GPU=1" in worker_init(ctx, partition="gpu")
    # a CPU step: the shared partition's QOS, the site's account, no GPU set-up
    _, cpu = plan_one(write, ANVIL, {"cores": 8, "memory": "32GB", "walltime": "1h"})
    options = adapter.directives(cpu.resources, cpu.partition)
    assert cpu.partition == "shared" and "--account=x-abc123" in options and "--qos=cpu" in options
    assert "modtree/gpu" not in ctx.shell_line(cpu) and "--gpu-bind=closest" not in options


def test_a_managed_flag_in_a_partitions_extra_directives_is_refused_at_its_line(write):
    path = write("site.yaml", ANVIL.replace('"--gpu-bind=closest"', '"--gpu-bind=closest", "--qos=high"'))
    with pytest.raises(SpecError) as err:
        adapter_for(load_site(str(path), environ={})).check()
    [problem] = [str(p) for p in err.value.problems]
    assert problem.startswith(f"{path}:16:") and "partitions.gpu.extra_directives[1]" in problem and "--qos" in problem


def test_per_partition_job_settings_are_refused_where_the_scheduler_would_ignore_them(write):
    path = write("pool.yaml", """\
        name: pool
        scheduler: htcondor
        partitions:
          vanilla: {max_walltime: 1d, cores_per_node: 8, memory_per_node: 16GB, account: group_u_cms}
    """)
    with pytest.raises(SpecError) as err:
        adapter_for(load_site(str(path), environ={})).check()
    [problem] = [str(p) for p in err.value.problems]
    assert problem.startswith(f"{path}:4:") and "partitions.vanilla.account" in problem and "do not apply" in problem


def test_plan_prints_one_line_per_step_saying_why(write):
    site = write("site.yaml", DARDEL)
    wf = write("wf.yaml", """\
        name: w
        parameters: {xs: [1, 2, 3]}
        steps:
          s:
            command: echo {x} > {outputs.o}
            scatter: {x: "{xs}"}
            outputs: {o: "o{x}.txt"}
            resources: {cores: 2, memory: 1GB, walltime: 10m}
    """)
    result = run_portaflow("plan", str(wf), "--site", str(site))
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if "wins" in line]
    assert lines == ["s: shared wins; main: charged 256 cores (whole nodes); long: charged 256 cores (whole nodes)"]


# UPPMAX: one partition `fat` with two node kinds told apart by constraint; CBE Vienna: QOS by job length;
# a site that accepts either of two partitions; a memory-per-core limit
UPPMAX = """\
name: uppmax
scheduler: slurm
partitions:
  core: {max_walltime: 10d, cores_per_node: 20, memory_per_node: 128GB, max_memory_per_core: 6400MB, slurm_partition: "core,node"}
  fat-2tb:
    {max_walltime: 10d, cores_per_node: 20, memory_per_node: 2TB, slurm_partition: fat, constraint: 2TB,
     qos_by_walltime: {rapid: 1h, short: 8h, long: 10d}}
  fat-3tb: {max_walltime: 10d, cores_per_node: 20, memory_per_node: 3TB, slurm_partition: fat, constraint: 3TB}
"""


@pytest.mark.parametrize(("resources", "partition", "sent"), [
    ({"cores": 4, "memory": "16GB", "walltime": "2h"}, "core", ["--partition=core,node"]),
    ({"cores": 4, "memory": "64GB", "walltime": "30m"}, "fat-2tb", ["--partition=fat", "--qos=rapid", "--constraint=2TB"]),  # > 6400 MB/core
    ({"cores": 4, "memory": "1500GB", "walltime": "2h"}, "fat-2tb", ["--partition=fat", "--qos=short", "--constraint=2TB"]),
    ({"cores": 4, "memory": "2500GB", "walltime": "2d"}, "fat-3tb", ["--partition=fat", "--constraint=3TB"]),
])
def test_alias_partitions_lists_qos_by_walltime_and_memory_per_core(write, resources, partition, sent):
    loaded, task = plan_one(write, UPPMAX, resources)
    adapter = adapter_for(loaded)
    options = adapter.directives(task.resources, task.partition)
    assert task.partition == partition and all(o in options for o in sent), options
    res = rule_resources(adapter, task)
    assert f"--partition={res['slurm_partition']}" == sent[0] and res.get("qos") == next((o[6:] for o in options if o.startswith("--qos=")), None)
    if partition == "fat-2tb" and resources["memory"] == "64GB":
        assert "core: needs 59.6 GiB for 4 cores, allows at most 6 GiB per core" in task.partition_reason


def test_qos_by_walltime_must_cover_the_partitions_limit(write):
    with pytest.raises(SpecError, match="qos_by_walltime covers at most 8h, less than max_walltime"):
        plan_one(write, UPPMAX.replace("long: 10d", "long: 8h"), {})


def test_a_user_profile_that_extends_the_admins_can_drop_a_partition(write):
    write("frontera.yaml", FRONTERA.replace("auto: false", "auto: true"))
    user = write("mine.yaml", """\
        name: mine
        extends: frontera.yaml
        partitions:
          development: null
    """)
    loaded = load_site(str(user), environ={})
    assert list(loaded.site.partitions) == ["normal"]


@pytest.mark.parametrize(("walltime", "time_min"), [("20m", "--time-min=15"), ("1m", "--time-min=1"), ("2d", "--time-min=2160")])
def test_time_min_is_a_share_of_each_jobs_walltime(write, walltime, time_min):
    """A constant --time-min in extra_directives exceeded short jobs' --time; a share of the walltime cannot."""
    loaded, task = plan_one(write, FRONTERA + "slurm: {time_min: 75%}\n", {"cores": 1, "memory": "1GB", "walltime": walltime})
    adapter = adapter_for(loaded)
    assert time_min in adapter.directives(task.resources, task.partition)
    assert time_min in rule_resources(adapter, task)["slurm_extra"].split()
    with pytest.raises(SpecError, match="expected a share of the job's walltime"):
        plan_one(write, FRONTERA + "slurm: {time_min: 2h}\n", {})
    with pytest.raises(SpecError, match="--time-min"):
        plan_one(write, FRONTERA + "extra_directives: [--time-min=60]\n", {})
