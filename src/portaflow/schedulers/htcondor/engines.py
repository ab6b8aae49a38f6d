"""Parsl and Snakemake on HTCondor: a CondorProvider whose blocks are one resource class's size, the htcondor executor
plugin's resources and settings, the shell of jobs on pools without a shared filesystem, and render's captures."""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from portaflow.commands import run_command
from portaflow.containers import container_call
from portaflow.errors import InputError
from portaflow.plan.model import Task
from portaflow.schedulers import parsl_blocks
from portaflow.schedulers.parsl_blocks import block_sizing, recorded_submissions, stable_job_names, worker_init
from portaflow.units import format_walltime

if TYPE_CHECKING:
    from portaflow.schedulers.context import RunContext

PLUGIN_RAW = frozenset({"request_memory", "request_disk", "request_gpus", "require_gpus", "requirements", "universe", "container_image",
                        "getenv"})
"""Submit commands the htcondor plugin takes from resources of the same name and writes unchanged."""


PARSL_JOB_COMMAND = ("/bin/bash", "$Fnx(transfer_input_files)")
"""What CondorProvider's template runs (`executable = /bin/bash`, `arguments = <block script's name>`, untransferred): the
script's name is the file name of its one transfer input (`$Fnx`, condor_submit's macro), known only when Parsl submits."""


def condor_provider(ctx: RunContext, label: str, tasks: list[Task], offline: bool = False, recording: bool = False) -> Any:
    """A CondorProvider whose blocks are jobs of exactly this resource class's size.

    Parsl's template writes the universe, its own script as executable and input file, and an empty
    +projectname; the commands from `schedulers.htcondor` go into scheduler_options, which the template
    puts after its own, so condor_submit uses them. Parsl writes no walltime: the profile's runtime
    attribute or flavour carries it.
    """
    from parsl.providers import CondorProvider

    site, scheduler = ctx.site, ctx.scheduler
    if scheduler.transfers_files():
        raise InputError(
            f"site {site.name} has no shared filesystem (storage.shared_filesystem: false), which the Parsl engine cannot use "
            "with HTCondor: Parsl's CondorProvider submits pilot jobs (blocks) that run many tasks, while HTCondor's file "
            "transfer moves files per job, so task inputs and outputs would never reach the work directory. "
            "Use --engine snakemake (its htcondor plugin transfers each rule's files), or a site with a shared filesystem")
    # the block's runtime attribute or flavour covers the tasks it may run in sequence (parsl_blocks.block_sizing)
    sizing = block_sizing(ctx, tasks)
    request, walltime = dataclasses.replace(tasks[0].resources, walltime_s=sizing.walltime_s), sizing.walltime_s
    call = container_call(site, tasks[0].container) if scheduler.runs_containers() else None
    commands = scheduler.commands(request, tasks[0].partition, run_id=ctx.run_id, image=call.image if call else None)
    if site.htcondor.job_wrapper:
        # Parsl's template runs `/bin/bash <block script>` (its script travels in transfer_input_files, alone: this provider
        # adds none); the same commands after it, through the wrapper (later commands win in a submit description)
        commands.update(scheduler.job_executable(*PARSL_JOB_COMMAND))
    if recording:
        cls = parsl_blocks.recording(CondorProvider, "condor_submit", reply="1 job(s) submitted to cluster 0.")
    else:
        cls = _with_client_environment(CondorProvider)
    provider = cls(
        nodes_per_block=1,
        init_blocks=site.parsl.init_blocks,
        min_blocks=0,
        max_blocks=sizing.max_blocks,
        requirements=commands.pop("requirements", ""),
        scheduler_options="\n".join(f"{key} = {value}" for key, value in commands.items()),
        worker_init=worker_init(ctx),
        walltime=format_walltime(walltime),
    )
    provider.client_environment = scheduler.client_environment(resolve=not (offline or recording))
    return provider


def _with_client_environment(provider_class: type) -> type:
    """CondorProvider whose condor_submit, condor_q and condor_rm run with the schedd's client settings
    (`client_environment`), leaving the driver's own environment as it is."""

    class WithClientEnvironment(provider_class):  # type: ignore[misc, valid-type]
        client_environment: dict[str, str] = {}

        def execute_wait(self, cmd: str, timeout: int | None = None) -> tuple[int, str, str]:
            result = run_command(["/bin/bash", "-c", cmd], check=False, timeout=timeout or self.cmd_timeout,
                                 env={**os.environ, **self.client_environment})
            return result.returncode, result.stdout, result.stderr

    WithClientEnvironment.__name__ = WithClientEnvironment.__qualname__ = f"Portaflow{provider_class.__name__}"
    return WithClientEnvironment


def render_condor_blocks(ctx: RunContext, groups: dict[str, list[Task]], jobs_dir: Path) -> list[Path]:
    """Each block's submit description and script, from CondorProvider.submit() with a recording `condor_submit`."""
    submissions = recorded_submissions(ctx, groups, jobs_dir, condor_provider)
    written = []
    environment = " ".join(f"{k}={v}" for k, v in ctx.scheduler.client_environment(resolve=False).items()) or "(the local schedd)"
    for label, submitted in submissions:
        made = {p.suffix: p for p in Path(jobs_dir).glob(f"parsl.parsl.{label}.*")}
        finals = {made[".submit"]: jobs_dir / f"{label}.sub", made[".script"]: jobs_dir / f"{label}.sh"}
        for made_path, final in finals.items():
            text = made_path.read_text()
            if made_path.suffix == ".submit":
                text += f"\n# submitted with: {submitted}\n# condor_submit environment: {environment}\n"
            for old, new in finals.items():  # the files keep the names they are rendered under
                text = text.replace(str(old), str(new)).replace(old.name, new.name)
            final.write_text(stable_job_names(text))
            made_path.unlink()
            written.append(final)
    return written


def rule_resources(ctx: RunContext, task: Task) -> dict[str, Any]:
    """The htcondor plugin's resources for the submit commands `schedulers.htcondor` computes.

    The plugin writes `request_*`, `require_gpus`, `requirements`, `universe` and `container_image`
    unchanged, and job attributes from `classad_<Name>` (a string becomes a ClassAd string). Other
    commands go through `htcondor_submit_<key>`, which puts quotes around string values (0.3.0):
    accounting_group is therefore sent as the three job attributes condor_submit itself sets, and a
    command the quoting would change is refused here rather than submitted wrong.
    """
    scheduler = ctx.scheduler
    call = container_call(ctx.site, task.container) if scheduler.runs_containers() else None
    commands = scheduler.commands(task.resources, task.partition, run_id=ctx.run_id, image=call.image if call else None)
    commands.pop("request_cpus")  # the plugin asks for the rule's threads
    res: dict[str, Any] = {}
    group, user = commands.pop("accounting_group", None), commands.pop("accounting_group_user", None)
    if group:
        user = user or "$ENV(USER)"  # condor_submit's default: the submitting user (expanded when submitting)
        res.update({"classad_AcctGroup": group, "classad_AcctGroupUser": user, "classad_AccountingGroup": f"{group}.{user}"})
    for key, value in commands.items():
        if key in PLUGIN_RAW:
            res[key] = int(value) if value.isdigit() else value
        elif key.startswith("+") and (value.isdigit() or re.fullmatch(r'"[^"\\]*"', value)):
            res[f"classad_{key[1:]}"] = int(value) if value.isdigit() else value[1:-1]
        elif not key.startswith("+") and value.isdigit():
            res[f"htcondor_submit_{key}"] = int(value)
        else:
            raise InputError(
                f"site {ctx.site.name}: '{key} = {value}' cannot be handed to Snakemake's htcondor plugin unchanged "
                "(it writes job attributes only as plain strings or integers, and quotes every other string value it passes on); "
                "use --engine parsl on this site, or drop the setting")
    return res


def executor_profile(ctx: RunContext) -> dict[str, Any]:
    """The htcondor plugin's settings: its job logs go with the run's record; file transfer where nothing is shared; the
    site's job wrapper; no storage plugin settings in jobs where the pool has no object store."""
    cfg = ctx.scheduler.plugin_settings(ctx)
    cfg[f"{ctx.scheduler.snakemake_executor}-jobdir"] = str(ctx.run_dir / "htcondor")  # job logs go with the run's record
    if ctx.scheduler.transfers_files():
        cfg["shared-fs-usage"] = "none"  # the plugin then transfers each rule's inputs and outputs
    if ctx.site.htcondor.job_wrapper:
        cfg[f"{ctx.scheduler.snakemake_executor}-job-wrapper"] = ctx.site.htcondor.job_wrapper
    if not ctx.scheduler.uses_object_store():
        cfg[f"{ctx.scheduler.snakemake_executor}-drop-storage-settings"] = True  # no --storage-s3-*, no SNAKEMAKE_STORAGE_*
    return cfg


def transfer_script(ctx: RunContext, task: Task) -> str:
    """A job's shell on an HTCondor pool without a shared filesystem: HTCondor brings the inputs into the
    job's directory and takes the outputs back, so the step runs where the job starts and writes no log
    or marker on the driver's paths (its output comes back in the job's output file)."""
    return dataclasses.replace(ctx, workdir=Path(".")).shell_line(task)


def capture_htcondor_submits(ctx: RunContext, out_dir: Path, snakemake_command: Callable[[list[str]], list[str]], env: dict[str, str]) -> list[Path]:
    """Each rule's submit description as the htcondor plugin would hand it to the bindings: the real Snakemake command
    line, with portaflow's plugin told to write each description to a file instead (`--portaflow-htcondor-capture`),
    in Snakemake's own `--immediate-submit` mode (every job is handed to the executor at once, without waiting for
    upstream jobs).

    Snakemake runs in a scratch work directory, so rendering writes nothing in the real one and
    inputs from outside the workflow can be stood in by empty files; the scratch path is then
    written back as the work directory in the captured descriptions. `env` is the environment
    Snakemake runs in; the schedd's client settings are added to it.
    """
    import tempfile

    jobs_dir = out_dir / "jobs"
    with tempfile.TemporaryDirectory(prefix="portaflow-render-") as scratch:
        for path in ctx.plan.external_inputs:
            if not Path(path).is_absolute():
                (Path(scratch) / path).parent.mkdir(parents=True, exist_ok=True)
                (Path(scratch) / path).touch()
        # Status checks are not needed here (nothing runs); without them Snakemake stops at once.
        args = snakemake_command(["--immediate-submit", "--notemp", "--quiet", "--seconds-between-status-checks", "0",
                                  f"--{ctx.scheduler.snakemake_executor}-capture", str(jobs_dir.absolute())])
        args[args.index("--directory") + 1] = scratch
        # A fixed hash seed: Snakemake writes some option sets (--rerun-triggers...) in set order.
        env = {**env, **ctx.scheduler.client_environment(resolve=False), "PYTHONHASHSEED": "0"}
        run_command(args, env=env, cwd=scratch, timeout=600)
        written = []
        for path in sorted(jobs_dir.glob("*.sub")):
            text = path.read_text()
            # Without a shared filesystem Snakemake names the Snakefile relative to the work directory.
            snakefile = out_dir.resolve() / "Snakefile"
            text = text.replace(os.path.relpath(snakefile, os.path.realpath(scratch)), os.path.relpath(snakefile, ctx.workdir))
            text = text.replace(os.path.realpath(scratch), str(ctx.workdir)).replace(scratch, str(ctx.workdir))
            # Snakemake's per-run temporary names (e.g. .snakemake/tmp.0z1w7wdi) vary: replaced so golden files stay stable.
            path.write_text(re.sub(r"\btmp[._]?[a-z0-9_]{8}\b", "tmp<random>", text))
            written.append(path)
    return written
