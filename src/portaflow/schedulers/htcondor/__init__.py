"""HTCondor: a task's request as submit-description commands, following the profile's `htcondor:` section.

The engines put these commands into what they hand to HTCondor (Parsl: the CondorProvider's
`scheduler_options`; Snakemake: the htcondor plugin's per-rule resources), so the submit
descriptions come from the engines' own code. This module also checks, before anything is
submitted, that the profile asks only for what a submit description can express.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from portaflow.commands import CommandError, run_command
from portaflow.errors import InputError, PlanError, PortaflowError, Problem, SpecError
from portaflow.plan.model import Task, TaskResources
from portaflow.schedulers.base import PASSED, UNCHECKED, WRONG, JobUsage, Scheduler, SiteFinding, common_rule_resources
from portaflow.schedulers.htcondor.commands import is_documented_command
from portaflow.units import describe_walltime

if TYPE_CHECKING:
    from portaflow.schedulers.context import RunContext

log = logging.getLogger(__name__)

RUN_ATTRIBUTE = "PortaflowRun"
"""Job attribute carrying the run id: an interrupted run removes its jobs by it (condor_rm -constraint)."""


def classad_string(text: str) -> str:
    """A ClassAd string literal: quotes and backslashes escaped (by HTCondor's own classad2 where it is installed)."""
    try:
        from classad2 import quote
    except ImportError:
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return quote(text)


def run_constraint(run_id: str) -> str:
    """The ClassAd expression true for exactly the jobs of one run: `PortaflowRun == "<run id>"`, the id a string
    literal (quoted by classad2), so that no run id can widen it to other jobs."""
    return f"{RUN_ATTRIBUTE} == {classad_string(run_id)}"


def job_executable(program: str, arguments: str, wrapper: str | None) -> dict[str, str]:
    """The submit commands that run a job's command `program arguments` (both engines: Parsl's CondorProvider through
    `HTCondorScheduler.job_executable`, the portaflow-htcondor Snakemake plugin directly).

    Why one rule: the job's program is always a path on the execute node (Parsl's /bin/bash; Snakemake's Python,
    the driver's where the filesystem is shared, else `/usr/bin/env python`), so it is never transferred: a copy of
    the driver's venv Python alone cannot run on a node without its venv. With the profile's `htcondor.job_wrapper`,
    the wrapper is the executable (transferred from the submitting host, as condor_submit does by default) and the
    command its arguments, so the site's set-up runs first in every job of either engine.
    """
    if wrapper:
        return {"executable": wrapper, "arguments": f"{program} {arguments}".strip(), "transfer_executable": "true"}
    return {"executable": program, "arguments": arguments, "transfer_executable": "false"}


def split_command(line: str) -> tuple[str, str]:
    """'request_memory = 4GB' -> ('request_memory', '4GB'); 'MY.Foo = 1' -> ('+Foo', '1')."""
    key, sep, value = line.partition("=")
    key = key.strip()
    if key[:3].lower() == "my.":
        key = "+" + key[3:]
    return key, value.strip() if sep else ""


class HTCondorScheduler(Scheduler):
    name = "htcondor"
    snakemake_executor = "portaflow-htcondor"
    """portaflow's executor plugin (src/snakemake_executor_plugin_portaflow_htcondor): the upstream htcondor plugin,
    without its per-job pip install of storage plugins, and able to capture what it would submit (render)."""
    snakemake_submission = re.compile(r"^Job (?P<job>\d+) submitted to HTCondor Cluster ID (?P<id>\d+)")
    """snakemake-executor-plugin-htcondor 0.3.0: "Job 4 submitted to HTCondor Cluster ID 17 with batch name ..."."""
    managed_flags = frozenset({
        "universe", "executable", "arguments", "transfer_executable", "input", "output", "error", "log",
        "request_cpus", "request_memory", "request_disk", "request_gpus", "require_gpus", "requirements",
        "accounting_group", "accounting_group_user", "should_transfer_files", "when_to_transfer_output",
        "transfer_input_files", "transfer_output_files", "transfer_output_remaps", "container_image",
        "environment", "getenv", "batch_name", "queue", "machine_count", "use_oauth_services",
        "+acctgroup", "+acctgroupuser", "+accountinggroup", f"+{RUN_ATTRIBUTE.lower()}",
    })
    """Commands (lower case; attributes as '+name') set from the plan, the profile's own keys or the engines."""

    # -- engines (schedulers/htcondor/engines.py) ------------------------------------------------
    def parsl_provider(self, ctx: RunContext, label: str, tasks: list[Task], offline: bool = False) -> Any:
        from portaflow.schedulers.htcondor.engines import condor_provider

        return condor_provider(ctx, label, tasks, offline=offline)

    def render_parsl_blocks(self, ctx: RunContext, groups: dict[str, list[Task]], out_dir: Path) -> list[Path]:
        from portaflow.schedulers.htcondor.engines import render_condor_blocks

        return render_condor_blocks(ctx, groups, out_dir / "jobs")

    def snakemake_resources(self, ctx: RunContext, task: Task) -> dict[str, Any]:
        from portaflow.schedulers.htcondor.engines import rule_resources

        return {**common_rule_resources(task), **rule_resources(ctx, task)}

    def snakemake_profile(self, ctx: RunContext) -> dict[str, Any]:
        from portaflow.schedulers.htcondor.engines import executor_profile

        return executor_profile(ctx)

    def render_snakemake_submissions(self, ctx: RunContext, out_dir: Path, profile: dict[str, Any], command: Any,
                                     env: dict[str, str], capture: bool = True) -> list[Path]:
        from portaflow.schedulers.htcondor.engines import capture_htcondor_submits

        return capture_htcondor_submits(ctx, out_dir, command, env) if capture else []

    def jobs_see_driver_filesystem(self) -> bool:
        """Not on a pool without a shared filesystem (HTCondor transfers each rule's files)."""
        return not self.transfers_files()

    def remote_job_script(self, ctx: RunContext, task: Task) -> str:
        from portaflow.schedulers.htcondor.engines import transfer_script

        return transfer_script(ctx, task)

    @classmethod
    def flag_name(cls, directive: str) -> str:
        """'Request_Memory = 4GB' -> 'request_memory'; 'MY.JobFlavour = "x"' -> '+jobflavour'."""
        return split_command(directive)[0].lower()

    @property
    def settings(self):
        return self.site.htcondor

    def managed_keys(self) -> frozenset[str]:
        """The fixed managed commands plus the attributes this profile names (runtime, flavour, image)."""
        h = self.settings
        named = [*self.runtime_attributes(), h.flavour_attribute if h.flavours else None,
                 h.image_attribute if h.container_mode == "attribute" else None]
        return self.managed_flags | {f"+{a.lower()}" for a in named if a}

    # -- what a job asks for -------------------------------------------------------------------
    def commands(self, request: TaskResources, partition: str, run_id: str | None = None, image: str | None = None) -> dict[str, str]:
        """Submit commands in a stable order: who pays, how big, how long, where, container, credentials, tags, extras.

        Values are written as condor_submit reads them: sizes in MiB, attributes as ClassAd literals.
        """
        h = self.settings
        out: dict[str, str] = {}
        if h.accounting_group:
            out["accounting_group"] = h.accounting_group
        if h.accounting_group_user:
            out["accounting_group_user"] = h.accounting_group_user
        out["request_cpus"] = str(request.cores)
        out["request_memory"] = str(request.memory_mib)
        if h.request_disk:
            out["request_disk"] = f"{h.request_disk}MB"
        if request.gpus:
            out["request_gpus"] = str(request.gpus)
            if request.gpu_model:
                out["require_gpus"] = self.gpu_requirement(request.gpu_model)
        out.update(self.runtime_commands(request.walltime_s))
        if h.requirements:
            out["requirements"] = h.requirements
        if h.getenv:
            out["getenv"] = "true" if h.getenv is True else ", ".join(h.getenv)
        out.update(self.container_commands(image))
        if h.credentials.oauth_services:
            out["use_oauth_services"] = ", ".join(h.credentials.oauth_services)
        if run_id is not None:
            out[f"+{RUN_ATTRIBUTE}"] = classad_string(run_id)
        for line in self.site.extra_directives:
            key, value = split_command(line)
            out[key] = value
        return out

    def directives(self, request: TaskResources, partition: str) -> list[str]:
        """The commands as submit-description lines (what `portaflow plan` shows)."""
        return [f"{key} = {value}" for key, value in self.commands(request, partition).items()]

    def runtime_commands(self, walltime_s: int) -> dict[str, str]:
        """The step's walltime as the pool reads it: a flavour from the profile's table and/or a runtime attribute."""
        h = self.settings
        out: dict[str, str] = {}
        if h.flavours:
            out[f"+{h.flavour_attribute}"] = classad_string(self.flavour_for(walltime_s))
        for attribute in self.runtime_attributes():
            out[f"+{attribute}"] = str(walltime_s)
        return out

    def runtime_attributes(self) -> list[str]:
        """The job attributes that carry the walltime (`htcondor.runtime_attribute`: none, one, or several; DESY's pool
        reads +RequestRuntime for matching and +MaxRuntime for removal)."""
        value = self.settings.runtime_attribute
        return [] if value is None else [value] if isinstance(value, str) else list(dict.fromkeys(value))

    def flavour_for(self, walltime_s: int) -> str:
        """The shortest flavour that allows `walltime_s` (the plan already keeps steps within the table)."""
        fitting = sorted((limit, name) for name, limit in self.settings.flavours.items() if limit >= walltime_s)
        if not fitting:
            longest = max(self.settings.flavours.items(), key=lambda item: item[1])
            raise PlanError(f"site {self.site.name}: a walltime of {describe_walltime(walltime_s)} is longer than the longest "
                            f"flavour in htcondor.flavours ({longest[0]}: {describe_walltime(longest[1])})")
        return fitting[0][1]

    def gpu_requirement(self, model: str) -> str:
        """The require_gpus expression for a GPU model (check() makes sure every offered model has one)."""
        try:
            return self.settings.gpu_requirements[model]
        except KeyError:
            raise PlanError(f"site {self.site.name}: no require_gpus expression for GPU model {model} in htcondor.gpu_requirements") from None

    def container_commands(self, image: str | None) -> dict[str, str]:
        """The image as the pool starts it: a job attribute (e.g. +SingularityImage) or the container universe."""
        h = self.settings
        if image is None or h.container_mode == "wrap":
            return {}
        if h.container_mode == "attribute":
            return {f"+{h.image_attribute}": classad_string(image)}
        return {"universe": "container", "container_image": image}

    def job_executable(self, program: str, arguments: str) -> dict[str, str]:
        """`job_executable` with this profile's `htcondor.job_wrapper`."""
        return job_executable(program, arguments, self.settings.job_wrapper)

    def runs_containers(self) -> bool:
        return self.settings.container_mode != "wrap"

    def transfers_files(self) -> bool:
        """Without a shared filesystem, HTCondor moves each job's inputs and outputs (file transfer)."""
        return not self.site.storage.shared_filesystem

    # -- the submitting side -------------------------------------------------------------------
    def client_environment(self, resolve: bool = True) -> dict[str, str]:
        """Environment for condor_submit, condor_q, condor_rm and the bindings: which schedd, how to authenticate.

        The token file is named by an environment variable of the user's; its path is read when a run
        starts (`resolve`), never stored. Rendering shows the variable's name instead.
        """
        h = self.settings
        env: dict[str, str] = {}
        if h.schedd:
            env["_CONDOR_SCHEDD_HOST"] = h.schedd
        if h.collector:
            env["_CONDOR_COLLECTOR_HOST"] = h.collector
        creds = h.credentials
        if creds.auth_methods:
            env["_CONDOR_SEC_CLIENT_AUTHENTICATION_METHODS"] = ",".join(creds.auth_methods)
        if creds.token_file_env:
            if not resolve:
                env["_CONDOR_SCITOKENS_FILE"] = f"${creds.token_file_env}"
            elif os.environ.get(creds.token_file_env):
                env["_CONDOR_SCITOKENS_FILE"] = os.environ[creds.token_file_env]
            else:
                raise InputError(f"site {self.site.name} authenticates with the token file named by ${creds.token_file_env}, "
                                 f"which is not set: export {creds.token_file_env}=/path/to/your/token (as the site's docs say)")
        return env

    def connection_problems(self) -> list[str]:
        """The job wrapper an executable file here, condor_submit and condor_q on PATH, and the schedule daemon answering
        condor_q (with the profile's schedd, collector and credentials, as the engines will use them)."""
        wrapper = self.settings.job_wrapper
        if wrapper and not (os.path.isfile(wrapper) and os.access(wrapper, os.X_OK)):
            return [f"site {self.site.name}: htcondor.job_wrapper {wrapper} is not an executable file on this host (condor_submit "
                    "transfers it from here as every job's executable)"]
        missing = [tool for tool in ("condor_submit", "condor_q") if shutil.which(tool) is None]
        if missing:
            return [f"site {self.site.name} uses HTCondor but {' and '.join(missing)} {'are' if len(missing) > 1 else 'is'} not on PATH"]
        try:
            run_command(["condor_q", "-totals"], env={**os.environ, **self.client_environment()})
        except InputError as exc:
            return [f"site {self.site.name}: HTCondor does not answer ({exc})"]
        except CommandError as exc:
            return [f"site {self.site.name}: HTCondor does not answer (condor_q: {(exc.stderr.strip() or exc.reason)[:300]})"]
        return []

    def compare_profile(self, partitions: list[str]) -> list[SiteFinding]:
        """The pool against the profile: the schedd answers (`condor_q -totals`, with the profile's schedd, collector and
        credentials), the collector answers (`condor_status -collector`), and each runtime attribute the profile sets
        is read by the pool (named in some slot's START expression, `condor_status -af START`). Without condor_q and
        condor_status here (not a submit node of the pool), each is "could not check". A runtime attribute no START
        names may still be read by the schedd's job transforms, which condor_status does not show: "could not check"
        then, never "wrong"."""
        h = self.settings
        attributes = [h.runtime_attribute] if isinstance(h.runtime_attribute, str) else list(h.runtime_attribute or [])
        checks = [("the schedd answers", "htcondor.schedd", h.schedd or "the local schedd"),
                  ("the collector answers", "htcondor.collector", h.collector or "the configured collector")]
        checks += [(f"runtime attribute {a} is read by the pool", "htcondor.runtime_attribute", a) for a in attributes]
        missing = [tool for tool in ("condor_q", "condor_status") if shutil.which(tool) is None]
        if missing:
            why = f"{' and '.join(missing)} not on PATH here (run site check on a submit node of the pool)"
            return [SiteFinding(what, UNCHECKED, key, value, why=why) for what, key, value in checks]
        try:
            env = {**os.environ, **self.client_environment()}
        except InputError as exc:
            return [SiteFinding(what, UNCHECKED, key, value, why=str(exc)) for what, key, value in checks]
        found = []
        for (what, key, value), argv in zip(checks[:2], (["condor_q", "-totals"], ["condor_status", "-collector", "-af", "Name"]), strict=True):
            try:
                run_command(argv, env=env, timeout=60)
                found.append(SiteFinding(what, PASSED, key, value, f"{argv[0]} answers"))
            except CommandError as exc:
                reason = (exc.stderr.strip().splitlines() or [exc.reason])[-1][:300]
                found.append(SiteFinding(what, WRONG, key, value, f"no answer ({argv[0]}: {reason})"))
        if not attributes:
            return found
        try:
            starts = run_command(["condor_status", "-af", "START"], env=env, timeout=60).stdout
        except CommandError as exc:
            return found + [SiteFinding(what, UNCHECKED, key, value, why=f"condor_status -af START: {exc.reason}")
                            for what, key, value in checks[2:]]
        for what, key, value in checks[2:]:
            if re.search(rf"\b{re.escape(value)}\b", starts, re.IGNORECASE):
                found.append(SiteFinding(what, PASSED, key, value, "named in the slots' START expressions"))
            else:
                found.append(SiteFinding(what, UNCHECKED, key, value, why=f"no slot's START names {value}; the schedd's job transforms "
                                         "may still read it (condor_status cannot show them): ask the pool's admins"))
        return found

    def check_rendered(self, files: list[Path]) -> list[str]:
        """Each rendered submit description (`*.sub`) parsed by HTCondor's own parser (htcondor2.Submit), and
        its keys checked against the documented submit commands (the parser accepts any key)."""
        try:
            import htcondor2
        except ImportError:  # the `htcondor` extra is not installed: nothing to parse with
            return []
        problems = []
        for path in (f for f in files if f.suffix == ".sub"):
            try:
                parsed = htcondor2.Submit(path.read_text())
            except Exception as exc:  # the bindings raise their own error types
                problems.append(f"{path.name}: HTCondor's parser rejects it: {exc}")
                continue
            unknown = sorted(key for key in parsed.keys() if not is_documented_command(key))
            if unknown:
                problems.append(f"{path.name}: not documented submit commands: {', '.join(unknown)}")
        return problems

    def cancel_run(self, run_id: str, known_jobs: list[str]) -> list[str]:
        """condor_rm the run's jobs: those recorded and those carrying +PortaflowRun (one condor_q, one condor_rm).

        Why both: a Parsl block may be queued before Parsl reports it; the Snakemake plugin's cluster
        ids come from its log. Only runs where a pool answers; elsewhere there is nothing to remove.
        """
        env = self._cancel_environment()
        mine: list[str] = []
        try:
            mine = self._queued(run_id, env)
        except CommandError as exc:
            log.error("could not list the jobs of run %s in the queue (only the recorded ones are removed): %s", run_id, exc)
        mine += [j for j in known_jobs if j not in mine and f"{j}.0" not in mine]  # the plugin records cluster ids
        if mine:
            try:
                run_command(["condor_rm", *mine], env=env)
            except CommandError as exc:
                log.error("condor_rm could not remove every job of run %s (%s): %s", run_id, " ".join(mine), exc)
        return mine

    def accounting(self, job_ids: list[str]) -> dict[str, JobUsage]:
        """One `condor_history -json` for all the run's jobs (by ClusterId: the Snakemake plugin records cluster ids,
        Parsl's provider `cluster.proc`): the job ClassAd's own record of what each used (`parse_condor_history`).
        Jobs still in the queue are not in the history, and are left out; nothing (logged) when the schedd does not
        answer."""
        clusters = sorted({j.split(".")[0] for j in job_ids if j and j.split(".")[0].isdigit()}, key=int)
        if not clusters:
            return {}
        constraint = " || ".join(f"ClusterId == {c}" for c in clusters)
        try:
            result = run_command(["condor_history", "-json", "-attributes", ",".join(CONDOR_HISTORY_ATTRIBUTES),
                                  "-constraint", constraint], env=self._cancel_environment(), timeout=120)
        except CommandError as exc:
            log.warning("condor_history does not answer, so the report has no accounting for job(s) %s: %s", ", ".join(job_ids), exc)
            return {}
        return parse_condor_history(result.stdout, job_ids)

    def jobs_of_run(self, run_id: str) -> list[str]:
        """The run's jobs still in the queue (idle, running or held), by the +PortaflowRun attribute every job of the
        run carries, both engines alike (`commands`). A queue that does not answer is an error: a rerun must not
        submit beside jobs it cannot see."""
        try:
            return self._queued(run_id, self._cancel_environment())
        except CommandError as exc:
            raise PortaflowError(f"could not list the HTCondor queue to find the jobs of the killed run {run_id}: {exc}") from None

    def _queued(self, run_id: str, env: dict[str, str]) -> list[str]:
        """`cluster.proc` of each job condor_q lists for the run (one condor_q call)."""
        # condor_q lists the submitting user's jobs only (its default without -allusers): never another user's
        queue = run_command(["condor_q", "-constraint", run_constraint(run_id), "-af", "ClusterId", "ProcId"], env=env)
        return [".".join(line.split()) for line in queue.stdout.splitlines() if line.strip()]

    def _cancel_environment(self) -> dict[str, str]:
        """The condor tools' environment for listing and removing jobs: the pool's settings, and the token file only
        when its variable is set (a cancel never fails for want of it)."""
        client = {k: v for k, v in self.client_environment(resolve=False).items() if k != "_CONDOR_SCITOKENS_FILE"}
        return {**os.environ, **client, **_resolved_token(self)}

    # -- checks before anything is submitted ---------------------------------------------------
    def check(self) -> None:
        """Refuse what a submit description cannot express, each problem at its line in the profile."""
        problems: list[Problem] = []
        for index, line in enumerate(self.site.extra_directives):
            problems += self._extra_directive_problems(index, line)
        problems += self._partition_problems()
        problems += self.partition_setting_problems()
        problems += self._gpu_model_problems()
        h = self.settings
        if h.container_mode != "wrap":
            problems += self.image_variable_problems(
                f"HTCondor (container_mode {h.container_mode}: the pool reads the image name)",
                "write the image's full location, or use htcondor.container_mode: wrap (the job's shell expands it)")
        if h.container_mode != "wrap" and self.site.container.runtime == "none":
            problems.append(self._problem(("htcondor", "container_mode"), f"container_mode {h.container_mode} needs images, but "
                                                                          f"container.runtime is none",
                                          "expected container.runtime: apptainer (or singularity) with images or image_dir, or container_mode: wrap"))
        if self.site.dask.mode == "jobs":
            problems.append(self._problem(("dask", "mode"), "Dask workers as jobs of their own (dask-jobqueue) are implemented for SLURM only",
                                          "expected dask.mode: in_allocation (workers inside the step's own job)"))
        if problems:
            raise SpecError(problems)

    def _extra_directive_problems(self, index: int, line: str) -> list[Problem]:
        key, value = split_command(line)
        where = ("extra_directives", index)
        if "=" not in line or not key or not value:
            return [self._problem(where, f"{line!r} is not a submit command", "expected 'command = value', e.g. '+WantOS = \"el9\"'")]
        if key.lower() in self.managed_keys():
            hint = {"getenv": "set htcondor.getenv: [NAME, ...] (variables of the submitting shell copied into each job), or true for all",
                    "environment": "set environment.env: {NAME: value} (every step, both engines), or container.env_passthrough for names"
                    }.get(key.lower(), "set it through the profile's own key (partitions, htcondor.*, storage.shared_filesystem) or the step's "
                                       "resources")
            return [self._problem(where, f"{line!r} sets {key}, which portaflow manages from the plan", hint)]
        if not is_documented_command(key):
            return [self._problem(where, f"{key} is not a documented HTCondor submit command",
                                  "expected a command from condor_submit's manual, or a job attribute written +Name")]
        return []

    def _partition_problems(self) -> list[Problem]:
        h = self.settings
        problems = []
        longest = max(h.flavours.items(), key=lambda item: item[1]) if h.flavours else None
        for name, part in self.site.partitions.items():
            if longest and part.max_walltime > longest[1]:
                problems.append(self._problem(
                    ("partitions", name, "max_walltime"),
                    f"partition {name} allows {describe_walltime(part.max_walltime)}, longer than the longest flavour in htcondor.flavours "
                    f"({longest[0]}: {describe_walltime(longest[1])})",
                    f"expected at most {describe_walltime(longest[1])}, or a longer flavour"))
            if part.max_nodes > 1:
                problems.append(self._problem(("partitions", name, "max_nodes"), f"an HTCondor job runs in one slot, found max_nodes "
                                                                                 f"{part.max_nodes}", "expected max_nodes: 1"))
        return problems

    def _gpu_model_problems(self) -> list[Problem]:
        """A GPU model HTCondor cannot select: offered where there are no GPUs, or with no require_gpus expression."""
        h = self.settings
        problems = []
        offered: set[str] = set()
        for name, part in self.site.partitions.items():
            offered |= set(part.gpu_models)
            if part.gpu_models and not part.gpus_per_node:
                problems.append(self._problem(("partitions", name, "gpu_models"), f"partition {name} offers GPU models but has no GPUs",
                                              "expected gpus_per_node of 1 or more, or no gpu_models"))
            for index, model in enumerate(part.gpu_models):
                if model not in h.gpu_requirements:
                    problems.append(self._problem(("partitions", name, "gpu_models", index),
                                                  f"HTCondor cannot select GPU model {model}: "
                                                  "htcondor.gpu_requirements has no require_gpus expression for it",
                                                  f"expected htcondor.gpu_requirements.{model}, e.g. 'Capability >= 8.0' or 'DeviceName == "
                                                  f"\"NVIDIA A100-SXM4-40GB\"'"))
        for model in h.gpu_requirements:
            if model not in offered:
                problems.append(self._problem(("htcondor", "gpu_requirements", model), f"no partition offers GPU model {model}",
                                              f"expected {model} in the gpu_models of a partition with GPUs, or no entry"))
        return problems

    def _problem(self, path: tuple[Any, ...], message: str, hint: str) -> Problem:
        return self.loaded.problem(path, message, hint)


def _resolved_token(scheduler: HTCondorScheduler) -> dict[str, str]:
    """The token file for cancelling, when its variable is set (a cancel never fails for want of it)."""
    name = scheduler.settings.credentials.token_file_env
    return {"_CONDOR_SCITOKENS_FILE": os.environ[name]} if name and os.environ.get(name) else {}


CONDOR_HISTORY_ATTRIBUTES = ("ClusterId", "ProcId", "JobStatus", "QDate", "JobCurrentStartDate", "JobStartDate", "CompletionDate",
                             "EnteredCurrentStatus", "RemoteWallClockTime", "RemoteUserCpu", "RemoteSysCpu", "RequestCpus",
                             "RequestMemory", "ResidentSetSize_RAW")
"""The job ClassAd attributes `accounting` asks condor_history for (HTCondor manual, "Job ClassAd Attributes"): times
are seconds since the epoch; RemoteUserCpu and RemoteSysCpu CPU seconds; RemoteWallClockTime the wall seconds of all
its runs; RequestMemory MiB; ResidentSetSize_RAW the largest resident memory observed, in KiB."""
CONDOR_JOB_STATUS = {1: "IDLE", 2: "RUNNING", 3: "REMOVED", 4: "COMPLETED", 5: "HELD", 6: "TRANSFERRING_OUTPUT", 7: "SUSPENDED"}


def parse_condor_history(text: str, job_ids: list[str]) -> dict[str, JobUsage]:
    """`condor_history -json` (a JSON array of job ClassAds; an empty answer when no job matched) -> one JobUsage per
    recorded id: `cluster.proc` is that job; a bare cluster id (the Snakemake plugin's) is its cluster's jobs together
    (their CPU and wall time summed, the largest memory). A value that is an expression, not a number (RequestMemory
    may be one), is left out."""
    import datetime as dt
    import json

    try:
        ads = json.loads(text) if text.strip() else []
    except ValueError as exc:
        log.warning("condor_history -json printed what is not JSON (%s); no accounting", exc)
        return {}
    by_job: dict[str, dict[str, Any]] = {}
    for ad in ads if isinstance(ads, list) else []:
        if isinstance(ad, dict) and isinstance(ad.get("ClusterId"), int):
            by_job[f"{ad['ClusterId']}.{ad.get('ProcId', 0)}"] = ad

    def number(ad: dict[str, Any], key: str) -> float | None:
        value = ad.get(key)
        return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None

    def when(ad: dict[str, Any], *keys: str) -> str | None:
        for key in keys:
            value = number(ad, key)
            if value:  # 0: not (yet) happened
                return dt.datetime.fromtimestamp(value).isoformat(timespec="seconds")
        return None

    def total(ads: list[dict[str, Any]], *keys: str) -> float | None:
        values = [number(ad, key) for ad in ads for key in keys]
        return sum(v for v in values if v is not None) if any(v is not None for v in values) else None

    out = {}
    for job in dict.fromkeys(j for j in job_ids if j):
        ads = [by_job[job]] if job in by_job else [ad for key, ad in sorted(by_job.items()) if key.split(".")[0] == job]
        if not ads:
            continue
        first, last = ads[0], ads[-1]
        rss = [v for v in (number(ad, "ResidentSetSize_RAW") for ad in ads) if v is not None]
        cores = number(first, "RequestCpus")
        out[job] = JobUsage(
            job_id=job, state=CONDOR_JOB_STATUS.get(int(number(last, "JobStatus") or 0)),
            submitted=when(first, "QDate"), started=when(first, "JobCurrentStartDate", "JobStartDate"),
            ended=when(last, "CompletionDate", "EnteredCurrentStatus"), elapsed_s=total(ads, "RemoteWallClockTime"),
            cpu_s=total(ads, "RemoteUserCpu", "RemoteSysCpu"), cores=int(cores) if cores else None,
            max_rss_mib=max(rss) / 1024 if rss else None, memory_mib=number(first, "RequestMemory"))
    return out
