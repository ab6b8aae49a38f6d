"""Issue 16: a partition's per-user job limit (`max_jobs_per_user`) kept by both engines, and Parsl blocks sized for the
tasks they may run in sequence (`parsl_blocks.block_sizing`), bounded by the partition's limit.

Each test builds its site from a few lines of YAML; the Parsl side is the real Config (providers and executors as
Parsl gets them), the Snakemake side the real Snakefile and profile portaflow renders."""

from __future__ import annotations

import re

import pytest
import yaml

from portaflow.engines.parsl_engine import ParslEngine, classes
from portaflow.engines.snakemake_engine import SnakemakeEngine
from portaflow.plan import make_plan
from portaflow.schedulers import adapter_for
from portaflow.schedulers.context import RunContext
from portaflow.schedulers.parsl_blocks import BLOCK_MARGIN_S, WORKER_START_S, block_sizing, split_limit
from portaflow.spec.loading import load_site
from portaflow.spec.workflow import Workflow

# TACC Frontera as users met it: `development` allows one job per user, `normal` fifty, `rtx` (GPUs) fifteen
FRONTERA = """\
name: frontera
scheduler: slurm
account: proj
partitions:
  development: {max_walltime: 2h, cores_per_node: 56, memory_per_node: 180GB, max_jobs_per_user: 1, priority: -1}
  normal: {max_walltime: 2d, cores_per_node: 56, memory_per_node: 180GB, max_jobs_per_user: 3, default: true}
  rtx: {max_walltime: 2d, cores_per_node: 16, memory_per_node: 120GB, gpus_per_node: 4, max_jobs_per_user: 15}
parsl: {max_blocks: 10}
"""


def _context(write, tmp_path, site_text: str, steps: dict) -> RunContext:
    loaded = load_site(str(write("site.yaml", site_text)), environ={})
    workflow = Workflow.model_validate({"name": "w", "steps": steps})
    plan = make_plan(workflow, loaded.site)
    return RunContext(plan, loaded, tmp_path / "work", tmp_path / "run", plan.tasks, adapter_for(loaded))


def _step(walltime: str, cores: int, scatter: int, gpus: int = 0, name: str = "a") -> dict:
    """A step of `scatter` tasks, each of this size (`name`: its scatter variable and outputs differ from other steps')."""
    return {"command": f"echo {{{name}}} > {name}{{{name}}}", "outputs": {"o": f"{name}{{{name}}}"},
            "scatter": {name: list(range(scatter))},
            "resources": {"cores": cores, "memory": "4GB", "walltime": walltime, "gpus": gpus}}


def test_partition_job_limit_is_the_same_for_parsl_and_snakemake(write, tmp_path):
    """Three resource classes on `normal` (limit 3) and one on `rtx`: Parsl's executors of a partition together hold at most
    its limit of blocks, and Snakemake's rules take one slot each of a resource capped at the same number."""
    ctx = _context(write, tmp_path, FRONTERA, {
        "a": _step("1h", 1, 4), "b": _step("1h", 2, 4, name="b"), "c": _step("1h", 4, 4, name="c"),
        "g": _step("1h", 4, 2, gpus=1, name="g")})
    config = ParslEngine().config(ctx, resolve_address=False)
    by_partition: dict[str, int] = {}
    for executor in config.executors:
        partition = classes(ctx)[executor.label][0].partition
        by_partition[partition] = by_partition.get(partition, 0) + executor.provider.max_blocks
    assert by_partition == {"normal": 3, "rtx": 10}  # rtx: parsl.max_blocks (10) is the smaller limit

    profile = SnakemakeEngine().profile(ctx)
    assert profile["resources"] == ["portaflow_jobs_development=1", "portaflow_jobs_normal=3", "portaflow_jobs_rtx=15"]
    snakefile = SnakemakeEngine().snakefile(ctx)
    for task in ctx.tasks:
        rule = snakefile.split(f"rule {task.id}:")[1].split("\nrule ")[0]
        assert f"portaflow_jobs_{task.partition}=1," in rule
    limits = dict(item.split("=") for item in profile["resources"])
    assert by_partition["normal"] == int(limits["portaflow_jobs_normal"])


def test_job_limit_never_above_the_sites_polling_etiquette(write, tmp_path):
    text = FRONTERA + "polling: {max_queued_jobs: 2}\n"
    ctx = _context(write, tmp_path, text, {"a": _step("1h", 1, 6)})
    assert SnakemakeEngine().profile(ctx)["resources"] == ["portaflow_jobs_development=1", "portaflow_jobs_normal=2",
                                                           "portaflow_jobs_rtx=2"]
    assert block_sizing(ctx, ctx.tasks).max_blocks == 2


def test_a_site_without_limits_gets_no_slots(write, tmp_path):
    ctx = _context(write, tmp_path, re.sub(r", max_jobs_per_user: \d+", "", FRONTERA), {"a": _step("1h", 1, 2)})
    assert "resources" not in SnakemakeEngine().profile(ctx)
    assert "portaflow_jobs" not in SnakemakeEngine().snakefile(ctx)


@pytest.mark.parametrize(("limit", "parts", "shares"), [(3, 3, [1, 1, 1]), (7, 3, [3, 2, 2]), (2, 3, [1, 1, 1]), (15, 1, [15])])
def test_split_limit(limit, parts, shares):
    assert split_limit(limit, parts) == shares


def test_a_block_that_runs_tasks_in_sequence_is_sized_for_them(write, tmp_path):
    """Six 1-hour tasks, three blocks (normal's limit): each block may run two in sequence. It used to ask for one hour."""
    ctx = _context(write, tmp_path, FRONTERA, {"a": _step("1h", 1, 6)})
    sizing = block_sizing(ctx, ctx.tasks)
    assert sizing.max_blocks == 3
    assert sizing.walltime_s == 2 * 3600 + BLOCK_MARGIN_S
    assert sizing.drain_period_s == sizing.walltime_s - 3600 - WORKER_START_S
    [executor] = ParslEngine().config(ctx, resolve_address=False).executors
    assert executor.drain_period == sizing.drain_period_s
    assert executor.provider.walltime == "02:05:00" and executor.provider.max_blocks == 3


def test_a_block_is_bounded_by_its_partitions_limit_and_its_workers_drain(write, tmp_path):
    """Ten 20-hour tasks in three blocks would want 80 h: the block asks for the partition's 2 days, and its workers stop
    taking tasks once the longest could no longer finish."""
    ctx = _context(write, tmp_path, FRONTERA, {"a": _step("20h", 1, 10)})
    sizing = block_sizing(ctx, ctx.tasks)
    assert sizing.walltime_s == 48 * 3600
    assert sizing.drain_period_s == 48 * 3600 - 20 * 3600 - WORKER_START_S
    assert "capped at partition normal's limit" in sizing.note


def test_no_room_for_a_second_task_gives_one_task_per_block(write, tmp_path):
    ctx = _context(write, tmp_path, FRONTERA, {"a": _step("2d", 1, 5)})
    sizing = block_sizing(ctx, ctx.tasks)
    assert (sizing.walltime_s, sizing.drain_period_s) == (48 * 3600, None)
    assert "room for one task per block" in sizing.note
    [executor] = ParslEngine().config(ctx, resolve_address=False).executors
    assert executor.drain_period is None


def test_fewer_tasks_than_blocks_keep_the_tasks_walltime(write, tmp_path):
    """One task per block: the block asks for the longest task's walltime, as Snakemake's job does (no margin, no drain)."""
    ctx = _context(write, tmp_path, FRONTERA, {"a": _step("1h", 1, 2), "b": _step("3h", 1, 1, name="b")})
    sizing = block_sizing(ctx, ctx.tasks)
    assert (sizing.max_blocks, sizing.walltime_s, sizing.drain_period_s) == (3, 3 * 3600, None)


def test_render_says_how_blocks_are_sized(write, tmp_path):
    ctx = _context(write, tmp_path, FRONTERA, {"a": _step("1h", 1, 6)})
    ParslEngine().render(ctx, tmp_path / "out")
    header = (tmp_path / "out" / "parsl_config.txt").read_text()
    assert "#     blocks: 6 tasks, up to 3 block(s); 3 of partition normal's 3 jobs at once: a block may run 2 in sequence" in header
    script = next((tmp_path / "out" / "jobs").glob("*.sbatch")).read_text()
    assert "#SBATCH --time=125" in script  # Parsl writes minutes


def test_htcondor_block_runtime_covers_its_tasks(write, tmp_path):
    """HTCondor's runtime attribute of a Parsl block is the block's walltime (it was the first task's)."""
    text = """\
    name: pool
    scheduler: htcondor
    partitions:
      vanilla: {max_walltime: 2d, cores_per_node: 8, memory_per_node: 32GB}
    parsl: {max_blocks: 2}
    htcondor: {runtime_attribute: MaxRuntime}
    """
    ctx = _context(write, tmp_path, text, {"a": _step("1h", 1, 4)})
    [executor] = ParslEngine().config(ctx, resolve_address=False).executors
    assert f"+MaxRuntime = {2 * 3600 + BLOCK_MARGIN_S}" in executor.provider.scheduler_options


def test_profile_resources_are_valid_yaml_for_snakemake(write, tmp_path):
    ctx = _context(write, tmp_path, FRONTERA, {"a": _step("1h", 1, 2)})
    SnakemakeEngine().render(ctx, tmp_path / "sm", profile=SnakemakeEngine().profile(ctx))
    loaded = yaml.safe_load((tmp_path / "sm" / "profile" / "config.yaml").read_text())
    assert "portaflow_jobs_normal=3" in loaded["resources"]


def test_slot_names_are_identifiers_and_distinct():
    from portaflow.schedulers.base import job_slot_resource

    names = [job_slot_resource(p) for p in ("gpu-l40s", "gpu_l40s", "gpu.l40s", "normal")]
    assert all(n.isidentifier() for n in names) and len(set(names)) == 4 and names[3] == "portaflow_jobs_normal"


def _more_classes_than_the_limit(write, tmp_path) -> RunContext:
    """Three resource classes (steps a, b, c: 1, 2 and 4 cores) on `normal`, which allows two jobs per user."""
    text = FRONTERA.replace("max_jobs_per_user: 3", "max_jobs_per_user: 2")
    return _context(write, tmp_path, text, {"a": _step("1h", 1, 3), "b": _step("1h", 2, 2, name="b"), "c": _step("1h", 4, 1, name="c")})


def test_parsl_executors_beyond_the_limit_take_turns(write, tmp_path):
    """Each executor keeps one block, but all of a partition's executors share one gate: the third waits until a block
    ends (it used to queue a third job beside the two the site allows, with a warning in the log)."""
    from parsl.jobs.states import JobState, JobStatus

    ctx = _more_classes_than_the_limit(write, tmp_path)
    config = ParslEngine().config(ctx, resolve_address=False)
    executors = [e for e in config.executors if classes(ctx)[e.label][0].partition == "normal"]
    assert len(executors) == 3 and all(e.provider.max_blocks == 1 for e in executors)
    assert len({id(e.partition_gate) for e in executors}) == 1 and executors[0].partition_gate.limit == 2
    for executor in executors:  # the scheduler stand-in: a block's job id, nothing submitted
        executor._launch_block = lambda block_id, label=executor.label: f"{label}-{block_id}"
    first, second, third = executors
    assert len(first.scale_out_facade(1)) == 1 and len(second.scale_out_facade(1)) == 1
    assert third.scale_out_facade(1) == []  # the partition is full
    [block] = first.status_facade
    first._status[block] = JobStatus(JobState.COMPLETED)  # first's job ends
    assert len(third.scale_out_facade(1)) == 1
    assert first.scale_out_facade(1) == []


def test_plan_says_how_each_limited_partition_is_shared(write, tmp_path):
    """`portaflow plan` shows each used partition's per-user limit, what Snakemake and Parsl do under it, and which
    classes' tasks wait where Parsl has more executors than the limit."""
    from testlib import ROOT, run_portaflow

    site = write("site.yaml", FRONTERA.replace("max_jobs_per_user: 3", "max_jobs_per_user: 2"))
    workflow = write("w.yaml", yaml.safe_dump({"name": "w", "steps": {
        "a": _step("1h", 1, 3), "b": _step("1h", 2, 2, name="b"), "c": _step("1h", 4, 1, name="c"),
        "g": _step("1h", 4, 1, gpus=1, name="g")}}))
    result = run_portaflow("plan", str(workflow), "--site", str(site), cwd=ROOT, env={"COLUMNS": "300"})
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if line.startswith("partition ")]
    assert lines == [
        "partition normal: at most 2 of this run's jobs at once (max_jobs_per_user 2); 6 task(s) here. Snakemake: 2 at once, "
        "the other 4 wait for a job to end. Parsl: 3 executors (resource classes: a; b; c) for 2 job(s): they take turns, one "
        "block each, so the tasks of one class wait while the others' blocks hold the partition",
        "partition rtx: at most 15 of this run's jobs at once (max_jobs_per_user 15); 1 task(s) here. Snakemake: all at once. "
        "Parsl: 1 executor(s), up to 10 block(s) each",
    ]
