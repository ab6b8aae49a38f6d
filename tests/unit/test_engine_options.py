"""Both engines ask SLURM for the same job: for every SLURM profile, shipped or test, the sbatch options of the
Parsl block that runs a task equal those Snakemake's slurm plugin submits for the same task.

Parsl's side is `portaflow render` (SlurmProvider's own job script). Snakemake's side is the real plugin, run by
Snakemake on the rendered Snakefile and profile with `--immediate-submit`, with a recording `sbatch` first on
PATH (and silent stand-ins for the tools it probes: sacct, squeue, sacctmgr, sshare, sinfo, scontrol): the plugin
composes its own sbatch line from the rule's resources, and that line is what is compared (checked to hold every
task of the plan). Options that name the
job rather than size it (job name, output file, comment, --export, the wrapped command) are left out; task counts
(--ntasks vs --ntasks-per-node) both mean one task per job here.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from portaflow.spec.loading import load_site

from testlib import ROOT, run_portaflow

RESOURCES = ROOT / "tests" / "data" / "workflows" / "resources.yaml"
WORDFREQ = ROOT / "workflows" / "examples" / "wordfreq.yaml"
SITES = sorted(
    str(p) for folder in (ROOT / "site_profiles", ROOT / "tests" / "data" / "sites") for p in folder.glob("*.yaml")
    if load_site(str(p), environ={}).site.scheduler == "slurm"
)

_IGNORED = {"--job-name", "-J", "--output", "-o", "--error", "-e", "--comment", "--export", "--parsable", "-D", "--chdir",
            "--wrap", "--ntasks", "-n", "--ntasks-per-node"}
_ALIASES = {"-p": "--partition", "-A": "--account", "-q": "--qos", "-C": "--constraint", "-t": "--time", "-N": "--nodes",
            "-c": "--cpus-per-task", "-G": "--gpus", "-M": "--clusters"}
_TAKES_VALUE = {"--job-name", "-J", "--output", "-o", "--error", "-e", "--comment", "-D", "--chdir", "-p", "--partition", "-A",
                "--account", "-q", "--qos", "-C", "--constraint", "-t", "--time", "-N", "--nodes", "-c", "--cpus-per-task",
                "-G", "--gpus", "--mem", "--mem-per-cpu", "--gres", "--reservation", "--ntasks", "-n", "--clusters", "-M"}


def _minutes(value: str) -> int:
    """sbatch --time: minutes, or [D-]HH:MM:SS / MM:SS."""
    if ":" not in value and "-" not in value:
        return int(value)
    days, _, clock = value.rpartition("-")
    parts = [int(p) for p in clock.split(":")]
    while len(parts) < 3:
        parts.insert(0, 0)
    hours, minutes, seconds = parts
    return (int(days or 0) * 24 + hours) * 60 + minutes + (1 if seconds else 0)


def normalise(words: list[str]) -> dict[str, str]:
    """sbatch words -> {long option: value}, sizes in one unit, naming options dropped."""
    out: dict[str, str] = {}
    i = 0
    while i < len(words):
        word = words[i]
        if "=" in word and word.startswith("--"):
            flag, value = word.split("=", 1)
        elif word in _TAKES_VALUE:
            flag, value = word, words[i + 1]
            i += 1
        else:
            flag, value = word, ""
        i += 1
        flag = _ALIASES.get(flag, flag)
        if flag in _IGNORED:
            continue
        if flag == "--time":
            value = str(_minutes(value))
        elif flag in ("--mem", "--mem-per-cpu"):
            value = value.removesuffix("M")  # sbatch's default unit is M
        assert flag not in out, f"{flag} given twice: {words}"
        out[flag] = value
    return out


def parsl_options(render_dir: Path, tasks: dict[str, str]) -> dict[str, dict[str, str]]:
    """Task -> the #SBATCH options of the block of its executor (the config header names each executor's tasks)."""
    scripts = {p.stem: p for p in (render_dir / "jobs").glob("*.sbatch")}
    out = {}
    for task, label in tasks.items():
        lines = scripts[label].read_text().splitlines()
        out[task] = normalise([w for line in lines if line.startswith("#SBATCH") for w in shlex.split(line[len("#SBATCH"):])])
    return out


def snakemake_options(render_dir: Path, workdir: Path, bin_dir: Path, record: Path,
                      expected: set[str]) -> tuple[dict[str, dict[str, str]], str]:
    """Rule -> the plugin's sbatch options, from Snakemake runs on the rendered files with a recording sbatch.

    Why several passes: Snakemake 9.27 with --immediate-submit sometimes ends, without an error, before it submits
    the last rule (wordfreq's `merge`; seen under load, with --jobs 1 too). A pass resubmits every rule, so passes
    go on (at most 4) until every expected rule was submitted; a rule submitted twice must get the same options."""
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "PF_SBATCH_RECORD": str(record)}
    workdir.mkdir(parents=True, exist_ok=True)
    out: dict[str, dict[str, str]] = {}
    outputs = []
    for _ in range(4):
        record.unlink(missing_ok=True)
        result = subprocess.run(
            [sys.executable, "-m", "snakemake", "--snakefile", str(render_dir / "Snakefile"), "--profile", str(render_dir / "profile"),
             "--directory", str(workdir), "--forceall", "--immediate-submit", "--notemp", "--quiet",
             "--seconds-between-status-checks", "0", "--slurm-init-seconds-before-status-checks", "1", "--jobs", "1"],
            env=env, capture_output=True, text=True, timeout=300)
        outputs.append(f"Snakemake's output:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
        assert record.exists(), f"the plugin submitted nothing:\n{outputs[-1]}"
        for line in record.read_text().splitlines():
            words = json.loads(line)
            rule = words[words.index("--comment") + 1].removeprefix("rule_")
            options = normalise(words)
            assert out.get(rule, options) == options, f"rule {rule} submitted with other options in another pass"
            out[rule] = options
        if expected <= set(out):
            break
    return out, "\n".join(outputs)


@pytest.fixture(scope="module")
def slurm_stand_ins(tmp_path_factory) -> Path:
    """A recording sbatch (appends its arguments as a JSON line, prints a job id) and silent probes."""
    bin_dir = tmp_path_factory.mktemp("slurm-bin")
    (bin_dir / "sbatch").write_text(
        f"#!{sys.executable}\nimport json, os, sys\n"
        "with open(os.environ['PF_SBATCH_RECORD'], 'a') as f:\n    f.write(json.dumps(sys.argv[1:]) + '\\n')\n"
        "print(sum(1 for _ in open(os.environ['PF_SBATCH_RECORD'])))\n")
    for tool in ("sacct", "squeue", "sacctmgr", "sshare", "sinfo", "scontrol"):
        (bin_dir / tool).write_text("#!/bin/sh\nexit 0\n")
    for path in bin_dir.iterdir():
        path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return bin_dir


def _has_gpus(site: str) -> bool:
    return any(p.gpus_per_node for p in load_site(site, environ={}).site.partitions.values())


# resources.yaml has a GPU step: it goes to every profile with GPUs (slurm-multinode, a CPU-only test cluster, has none)
CASES = [(site, workflow) for site in SITES for workflow in (RESOURCES, WORDFREQ) if workflow == WORDFREQ or _has_gpus(site)]


@pytest.mark.slow
@pytest.mark.parametrize(("site", "workflow"), CASES, ids=lambda v: Path(v).stem)
def test_parsl_and_snakemake_submit_the_same_sbatch_options(tmp_path, slurm_stand_ins, site, workflow):
    from portaflow.driver import load_plan
    from portaflow.engines.parsl_engine import resource_classes
    from portaflow.schedulers import adapter_for
    from portaflow.schedulers.context import RunContext
    from portaflow.schedulers.parsl_blocks import block_sizing
    from portaflow.spec.loading import load_workflow
    from portaflow.units import walltime_minutes

    args = ["--site", site, "--site-set", "account=proj123", "--workdir", str(tmp_path / "work")]
    args += ["--param", "shards=2"] if workflow == WORDFREQ else []
    for engine in ("parsl", "snakemake"):
        result = run_portaflow("render", str(workflow), "--engine", engine, "-o", str(tmp_path / engine), *args)
        assert result.returncode == 0, result.stderr
    _, loaded, plan = load_plan(load_workflow(str(workflow)), site, {"account": "proj123"}, {"shards": 2} if workflow == WORDFREQ else {})
    label_of = {t.id: label for label, tasks in resource_classes(plan.tasks).items() for t in tasks}
    ctx = RunContext(plan, loaded, tmp_path / "work", tmp_path / "run", plan.tasks, adapter_for(loaded))
    parsl = parsl_options(tmp_path / "parsl", label_of)
    snakemake, output = snakemake_options(tmp_path / "snakemake", tmp_path / "work", slurm_stand_ins, tmp_path / "sbatch.jsonl", set(parsl))
    assert sorted(snakemake) == sorted(parsl), f"both engines submit one job per task\n{output}"
    sized_for_several = 0
    for task in parsl:
        # A Parsl block is sized for the tasks it may run in sequence (parsl_blocks.block_sizing): its --time (and the
        # --time-min relative to it) are the block's, from the one rule; with a block per task they are the task's,
        # as Snakemake's. Every other option is the same.
        tasks = resource_classes(plan.tasks)[label_of[task]]
        block = dataclasses.replace(tasks[0].resources, walltime_s=block_sizing(ctx, tasks).walltime_s)
        expected = dict(snakemake[task])
        if block_sizing(ctx, tasks).drain_period_s is not None:
            sized_for_several += 1
            expected["--time"] = str(walltime_minutes(block.walltime_s))
            for directive in ctx.scheduler.time_min_directives(block):
                expected["--time-min"] = directive.split("=", 1)[1]
        else:
            assert block.walltime_s == max(t.resources.walltime_s for t in tasks)
        assert parsl[task] == expected, f"{Path(site).stem}, task {task}: Parsl {parsl[task]} vs Snakemake {snakemake[task]}"
    if workflow == WORDFREQ and Path(site).stem == "slurm-local":
        assert sized_for_several, "wordfreq's five small tasks share a class of 4 blocks: a block may run two in sequence"
