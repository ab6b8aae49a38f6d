"""Snakemake: the plan becomes a Snakefile (one rule per task) plus a profile, run by Snakemake's CLI.

Why one rule per task: portaflow has already decided which tasks are stale and filled every value
(quoted) into each command, so the Snakefile holds exactly those jobs and `--forceall` runs them;
Snakemake's dry-run job list is the plan's task list. Per-rule resources carry the site's request
(for SLURM: slurm_partition, slurm_account, runtime, mem_mb or mem_mb_per_cpu, gres...).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import shlex
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from portaflow.containers import container_call
from portaflow.errors import InputError
from portaflow.engines.base import Engine, RunContext, TaskOutcome, failure_message
from portaflow.gctools import paused_gc
from portaflow.plan.model import Task

_PROGRESS = re.compile(r"(\d+) of (\d+) steps \(\d+%\) done")
_EXIT_STATUS = re.compile(r"returned non-zero exit status (\d+)")
_ERROR_IN_RULE = re.compile(r"^Error in rule (\w+):")
_RULE_START = re.compile(r"^(?:local)?rule (\w+):")
_SLURM_JOBID = re.compile(r"Job \d+ has been submitted with SLURM jobid (\d+)")
_SUBMITTED_AS = re.compile(r"Job (\d+) has been submitted with SLURM jobid (\d+)")
_SNAKEMAKE_JOBID = re.compile(r"^\s+jobid: (\d+)$")
_HTCONDOR_JOBID = re.compile(r"Job \d+ submitted to HTCondor Cluster ID (\d+)")
_HTCONDOR_PLUGIN_RAW = frozenset({"request_memory", "request_disk", "request_gpus", "require_gpus", "requirements", "universe", "container_image"})
"""Submit commands the htcondor plugin takes from resources of the same name and writes unchanged."""
_K8S_JOB = re.compile(r"Get status with: kubectl describe job (snakejob-[0-9a-f-]+)")
_FINISHED = re.compile(r"Finished jobid: \d+ \(Rule: (\w+)\)")


def _escape_braces(text: str) -> str:
    """Snakemake formats shell strings with str.format: double every brace so none is a field."""
    return text.replace("{", "{{").replace("}", "}}")


class SnakemakeEngine(Engine):
    name = "snakemake"

    # -- compiling -----------------------------------------------------------------------------
    def snakefile(self, ctx: RunContext) -> str:
        lines = [
            "# Snakefile compiled by portaflow: one rule per task; do not edit (re-render instead).",
            f"# workflow: {ctx.plan.workflow}   site: {ctx.site.name} ({ctx.site.scheduler})",
            'shell.executable("/bin/bash")',
            'shell.prefix("")  # portaflow writes its own strict-mode line into every rule',
            "",
            "localrules: portaflow_all",
            "",
            "rule portaflow_all:",
            "    input:",
        ]
        lines += [f"        {p!r}," for t in ctx.tasks for p in t.output_paths()]
        lines.append("")
        with paused_gc():
            for task in ctx.tasks:
                lines += self._rule(ctx, task)
        return "\n".join(lines) + "\n"

    def _rule(self, ctx: RunContext, task: Task) -> list[str]:
        out = [f"rule {task.id}:", f"    # {task.display}"]
        if task.input_paths():
            out.append("    input:")
            out += [f"        {p!r}," for p in task.input_paths()]
        out.append("    output:")
        for o in task.outputs.values():
            out.append(f"        directory({o.path!r})," if o.directory else f"        {o.path!r},")
        # No `log:` directive: the rule redirects its own output (below), and Snakemake's log handling
        # cost ~20 ms per job here (benchmarks/overhead.py).
        out.append(f"    threads: {task.resources.cores}")
        resources = self.rule_resources(ctx, task)
        if resources:
            out.append("    resources:")
            out += [f"        {k}={v!r}," for k, v in resources.items()]
        if task.retries:
            out.append(f"    retries: {task.retries}")
        script = self._kubernetes_script(ctx, task) if ctx.site.scheduler == "kubernetes" else self._transfer_script(ctx, task) if _no_shared_htcondor(ctx) else "\n".join([
            f"exec >>{shlex.quote(str(ctx.log_path(task)))} 2>&1",
            # The exit status survives wherever the job ran (on SLURM, Snakemake's log does not carry it).
            f"trap 'echo $? > {shlex.quote(str(ctx.exit_code_path(task)))}' EXIT",
            ctx.shell_line(task),
            f"touch {shlex.quote(str(ctx.marker_path(task)))}",
        ])
        out.append(f"    shell: {_escape_braces(script)!r}")
        out.append("")
        return out

    def _transfer_script(self, ctx: RunContext, task: Task) -> str:
        """A job's shell on an HTCondor pool without a shared filesystem: HTCondor brings the inputs into the
        job's directory and takes the outputs back, so the step runs where the job starts and writes no log
        or marker on the driver's paths (its output comes back in the job's output file)."""
        return dataclasses.replace(ctx, workdir=Path(".")).shell_line(task)

    def _kubernetes_script(self, ctx: RunContext, task: Task) -> str:
        """A job's shell on Kubernetes: no shared filesystem, so no log or marker files on the driver's paths.

        Snakemake stages the default storage prefix under `.snakemake/storage/<provider>/<bucket>/<key>`
        in the job's directory; the step runs there, so its relative paths name the staged files.
        Output goes to the pod's log (the plugin saves failed jobs' logs under .snakemake/kubernetes-logs).
        """
        store = _object_store(ctx)
        staged = Path(".snakemake/storage") / store.provider / _storage_prefix(ctx).split("://", 1)[1]
        return dataclasses.replace(ctx, workdir=staged).shell_line(task)

    def rule_resources(self, ctx: RunContext, task: Task) -> dict[str, Any]:
        """Per-rule resources in the names Snakemake and its executor plugins read."""
        r = task.resources
        res: dict[str, Any] = {"mem_mb": r.memory_mib, "runtime": max(1, -(-r.walltime_s // 60))}
        if ctx.site.scheduler == "slurm":
            res.update(self._slurm_resources(ctx, task))
            if "mem_mb_per_cpu" in res:
                del res["mem_mb"]
        elif ctx.site.scheduler == "htcondor":
            res.update(self._htcondor_resources(ctx, task))
        elif ctx.site.scheduler == "kubernetes":
            # The plugin writes memory as '{mem_mb}M' (10^6 bytes): rounded up so a pod never gets less
            # than the MiB the plan checked. scale=0 makes it set limits equal to requests.
            res["mem_mb"] = math.ceil(r.memory_mib * 1.048576)
            res["scale"] = 0
            if r.gpus:
                res["gpu"] = r.gpus
                res["gpu_manufacturer"] = _gpu_manufacturer(ctx)
        elif r.gpus:
            res["gpu"] = r.gpus
        return res

    def _slurm_resources(self, ctx: RunContext, task: Task) -> dict[str, Any]:
        """The SLURM plugin's resource names; what it has no name for goes into slurm_extra.

        The plugin refuses managed flags in slurm_extra (--gres, --gpus, --qos, --mem...), so each
        of the site's rules maps onto the plugin's own resource where one exists.
        """
        site = ctx.site
        r = task.resources
        res: dict[str, Any] = {"slurm_partition": task.partition, "cpus_per_task": r.cores, "nodes": r.nodes}
        if site.account:
            res["slurm_account"] = site.account
        if site.qos:
            res["qos"] = site.qos
        if site.memory_rule == "per_cpu":
            res["mem_mb_per_cpu"] = -(-r.memory_mib // r.cores)
        part_constraint = site.partitions[task.partition].constraint
        constraints = [c for c in (site.constraint, part_constraint) if c]
        if constraints:
            res["constraint"] = "&".join(constraints)
        extra: list[str] = []
        if r.gpus:
            directive = ctx.scheduler.gpu_directives(r)[0]
            flag, _, value = directive.partition("=")
            if flag == "--gres":
                res["gres"] = value
            elif flag == "--gpus":
                res["gpu"] = r.gpus
                if r.gpu_model:
                    res["gpu_model"] = r.gpu_model
            else:
                extra.append(directive)
        else:
            res["tasks"] = 1
        if site.reservation:
            extra.append(f"--reservation={site.reservation}")
        extra += site.extra_directives
        if extra:
            res["slurm_extra"] = " ".join(extra)
        return res

    def _htcondor_resources(self, ctx: RunContext, task: Task) -> dict[str, Any]:
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
            if key in _HTCONDOR_PLUGIN_RAW:
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

    def profile(self, ctx: RunContext) -> dict[str, Any]:
        """The Snakemake profile (config.yaml): executor, limits and polling etiquette from the site."""
        site = ctx.site
        cfg: dict[str, Any] = {
            "keep-going": True,
            "rerun-incomplete": True,
            "latency-wait": site.snakemake.latency_wait,
            "printshellcmds": False,
            "show-failed-logs": False,
        }
        if site.scheduler == "local":
            part = site.partitions[site.default_partition]
            cfg["cores"] = part.cores_per_node
            cfg["resources"] = [f"mem_mb={part.memory_per_node}"]
        elif site.scheduler == "slurm":
            cfg["executor"] = "slurm"
            cfg["jobs"] = min(site.snakemake.jobs, site.polling.max_queued_jobs)
            cfg["seconds-between-status-checks"] = site.polling.interval
            # The plugin's own first wait and the interval it backs off from (+10 s each round in which no
            # job ended), else a fixed 40 s: the profile's polling interval decides, as for Parsl.
            cfg["slurm-init-seconds-before-status-checks"] = max(1, site.polling.interval)
            if not site.account:
                cfg["slurm-no-account"] = True
            if site.polling.status_command != "auto":
                cfg["slurm-status-command"] = site.polling.status_command
        elif site.scheduler == "htcondor":
            cfg["executor"] = "htcondor"
            cfg["jobs"] = min(site.snakemake.jobs, site.polling.max_queued_jobs)
            cfg["seconds-between-status-checks"] = site.polling.interval
            cfg["htcondor-jobdir"] = str(ctx.run_dir / "htcondor")  # job logs go with the run's record
            if ctx.scheduler.transfers_files():
                cfg["shared-fs-usage"] = "none"  # the plugin then transfers each rule's inputs and outputs
        elif site.scheduler == "kubernetes":
            cfg.update(self._kubernetes_profile(ctx))
        else:
            raise NotImplementedError(f"Snakemake engine: scheduler {site.scheduler} is not supported yet")
        return cfg

    def _kubernetes_profile(self, ctx: RunContext) -> dict[str, Any]:
        """The kubernetes plugin's settings; what it has no setting for is added at its API call
        (engines.snakemake_kubernetes)."""
        from portaflow.schedulers.kubernetes import image_reference

        site, k8s = ctx.site, ctx.site.kubernetes
        images = sorted({image_reference(site, t.container or k8s.default_container) for t in ctx.tasks})
        if len(images) > 1:
            raise InputError(f"Snakemake's kubernetes plugin runs every job in one image (--container-image); "
                             f"these steps need {len(images)}: {', '.join(images)}. Use --engine parsl, or one container for every step")
        store = _object_store(ctx)
        cfg: dict[str, Any] = {
            "executor": "kubernetes",
            "jobs": min(site.snakemake.jobs, site.polling.max_queued_jobs),
            "seconds-between-status-checks": site.polling.interval,
            "kubernetes-namespace": k8s.namespace,
            "kubernetes-cpu-scalar": 1.0,  # requests = the cores the plan checked against the node pool
            "container-image": images[0] if images else image_reference(site, k8s.default_container),
            "default-storage-provider": store.provider,
            "default-storage-prefix": _storage_prefix(ctx),
        }
        if k8s.service_account:
            cfg["kubernetes-service-account-name"] = k8s.service_account
        if k8s.volume_claims:
            cfg["kubernetes-persistent-volumes"] = [f"{v.claim}:{v.mount_path}" for v in k8s.volume_claims]
        return cfg

    # -- rendering and running -----------------------------------------------------------------
    def render(self, ctx: RunContext, out_dir: Path, profile: dict[str, Any] | None = None) -> list[Path]:
        out_dir.mkdir(parents=True, exist_ok=True)
        snakefile = out_dir / "Snakefile"
        snakefile.write_text(self.snakefile(ctx))
        profile_dir = out_dir / "profile"
        profile_dir.mkdir(exist_ok=True)
        config = profile_dir / "config.yaml"
        capture = profile is None  # rendering rather than running: capture what the plugin would submit
        profile = profile or self.profile(ctx)
        config.write_text(yaml.safe_dump(profile, sort_keys=True))
        written = [snakefile, config]
        if ctx.site.scheduler == "htcondor" and capture:
            written += self._capture_htcondor_submits(ctx, out_dir)
        if ctx.site.scheduler == "kubernetes":
            written.append(self._render_kubernetes_jobs(ctx, out_dir / "jobs", profile))
        return written

    def _capture_htcondor_submits(self, ctx: RunContext, out_dir: Path) -> list[Path]:
        """Each rule's submit description as the htcondor plugin hands it to the bindings (engines.htcondor_capture).

        Snakemake runs in a scratch work directory, so rendering writes nothing in the real one and
        inputs from outside the workflow can be stood in by empty files; the scratch path is then
        written back as the work directory in the captured descriptions.
        """
        import tempfile

        jobs_dir = out_dir / "jobs"
        with tempfile.TemporaryDirectory(prefix="portaflow-render-") as scratch:
            for path in ctx.plan.external_inputs:
                if not Path(path).is_absolute():
                    (Path(scratch) / path).parent.mkdir(parents=True, exist_ok=True)
                    (Path(scratch) / path).touch()
            # Status checks are not needed here (nothing runs); without them Snakemake stops at once.
            args = self.command(ctx, out_dir, ["--immediate-submit", "--notemp", "--quiet", "--seconds-between-status-checks", "0"])
            args[args.index("--directory") + 1] = scratch
            # A fixed hash seed: Snakemake writes some option sets (--rerun-triggers...) in set order.
            env = {**_env(), **ctx.scheduler.client_environment(resolve=False), "PYTHONHASHSEED": "0"}
            result = subprocess.run([sys.executable, "-m", "portaflow.engines.htcondor_capture", str(jobs_dir), *args[3:]],
                                    capture_output=True, text=True, env=env, cwd=scratch)
            if result.returncode != 0:
                raise RuntimeError(f"capturing the htcondor plugin's submit descriptions failed:\n{result.stdout}\n{result.stderr}")
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

    def _render_kubernetes_jobs(self, ctx: RunContext, jobs_dir: Path, profile: dict[str, Any]) -> Path:
        """Every task's Job as the plugin's run_job builds it, completed from the profile and checked."""
        from portaflow.engines.snakemake_kubernetes import render_jobs
        from portaflow.schedulers.kubernetes import write_manifests

        jobs_dir.mkdir(parents=True, exist_ok=True)
        bodies = render_jobs(ctx, profile, lambda task: self.rule_resources(ctx, task))
        path = jobs_dir / "jobs.yaml"
        write_manifests(path, bodies, (
            f"The Jobs snakemake-executor-plugin-kubernetes creates (its own run_job, a recording BatchV1Api), completed from site "
            f"{ctx.site.name}.\nThe container's command line is a placeholder: Snakemake writes it at run time (it needs the object store)."))
        return path

    def run_profile(self, ctx: RunContext) -> dict[str, Any]:
        """The profile, with `status_command: auto` decided against this cluster: squeue when sacct
        does not answer (the plugin would otherwise wait forever for accounting records)."""
        profile = self.profile(ctx)
        site = ctx.site
        if site.scheduler == "slurm" and site.polling.status_command == "auto" and not ctx.scheduler.accounting_available():
            profile["slurm-status-command"] = "squeue"
        return profile

    def command(self, ctx: RunContext, out_dir: Path, extra: list[str] | None = None) -> list[str]:
        if ctx.site.scheduler == "kubernetes" and "--dry-run" not in (extra or []):
            # Snakemake through portaflow's launcher, which completes each Job at the plugin's API call.
            from portaflow.engines.snakemake_kubernetes import launch_file

            launch = out_dir / "launch.json"
            launch.write_text(json.dumps(launch_file(ctx), indent=1, sort_keys=True))
            return [sys.executable, "-m", "portaflow.engines.snakemake_kubernetes", str(launch), "--", "--snakefile",
                    str(out_dir / "Snakefile"), "--profile", str(out_dir / "profile"), "--directory", str(ctx.workdir), "--forceall", *(extra or [])]
        return [
            sys.executable, "-m", "snakemake", "--snakefile", str(out_dir / "Snakefile"),
            "--profile", str(out_dir / "profile"), "--directory", str(ctx.workdir), "--forceall", *(extra or []),
        ]

    def dry_run_jobs(self, ctx: RunContext, out_dir: Path) -> dict[str, int]:
        """Snakemake's own dry-run job counts per rule (a test compares them with the plan)."""
        self.render(ctx, out_dir)
        result = subprocess.run(self.command(ctx, out_dir, ["--dry-run", "--quiet", "rules"]), capture_output=True, text=True, env=_env())
        if result.returncode != 0:
            raise RuntimeError(f"snakemake dry-run failed:\n{result.stdout}\n{result.stderr}")
        counts: dict[str, int] = {}
        for line in result.stdout.splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[1].isdigit() and parts[0] not in ("job", "total"):
                counts[parts[0]] = int(parts[1])
        return counts

    def execute(self, ctx: RunContext) -> dict[str, TaskOutcome]:
        out_dir = ctx.run_dir / "snakemake"
        self.render(ctx, out_dir, self.run_profile(ctx))
        (ctx.run_dir / "done").mkdir(parents=True, exist_ok=True)
        (ctx.run_dir / "exit").mkdir(parents=True, exist_ok=True)
        (ctx.run_dir / "logs").mkdir(parents=True, exist_ok=True)
        log_path = ctx.run_dir / "snakemake.log"
        by_id = {t.id: t for t in ctx.tasks}
        reported: set[str] = set()
        with open(log_path, "w") as log:
            env = {**_env(), **ctx.scheduler.client_environment()} if ctx.site.scheduler == "htcondor" else _env()
            proc = subprocess.Popen(self.command(ctx, out_dir), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True)
            try:
                assert proc.stdout is not None
                for line in proc.stdout:
                    log.write(line)
                    log.flush()
                    if _PROGRESS.search(line):
                        self._report_new(ctx, by_id, reported)
                    job = _SLURM_JOBID.search(line) or _K8S_JOB.search(line) or _HTCONDOR_JOBID.search(line)
                    if job:
                        ctx.jobs.append(job.group(1))
                proc.wait()
            except KeyboardInterrupt:
                # The SLURM plugin ignores SIGTERM; SIGINT makes Snakemake cancel its jobs and stop.
                os.killpg(proc.pid, signal.SIGINT)
                try:
                    proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                raise
        self._report_new(ctx, by_id, reported)
        log_text = log_path.read_text(errors="replace")
        failures = _failures(log_text)
        job_of_rule = _slurm_jobs_by_rule(log_text)
        # Without a shared filesystem no marker reaches the driver: Snakemake's own word is used.
        finished = set(_FINISHED.findall(log_text)) if ctx.site.scheduler == "kubernetes" or _no_shared_htcondor(ctx) else set()
        outcomes = {}
        for task in ctx.tasks:
            if ctx.marker_path(task).exists() or task.id in finished:
                outcomes[task.id] = TaskOutcome(task.id, True, 0)
                continue
            if task.id in failures:
                code = _read_exit_code(ctx.exit_code_path(task), failures[task.id])
                outcome = TaskOutcome(task.id, False, code, job_id=job_of_rule.get(task.id), message=failure_message(code, task))
            else:
                outcome = TaskOutcome(task.id, False, None, message=f"not run: a task it depends on failed (see {log_path})")
            outcomes[task.id] = outcome
            ctx.on_event("finished", task, outcome)
        return outcomes

    def _report_new(self, ctx: RunContext, by_id: dict[str, Task], reported: set[str]) -> None:
        for task_id, task in by_id.items():
            if task_id not in reported and ctx.marker_path(task).exists():
                reported.add(task_id)
                ctx.on_event("finished", task, TaskOutcome(task_id, True, 0))


def _no_shared_htcondor(ctx: RunContext) -> bool:
    """An HTCondor pool whose jobs see no shared filesystem (HTCondor transfers each rule's files)."""
    return ctx.site.scheduler == "htcondor" and ctx.scheduler.transfers_files()


def _object_store(ctx: RunContext) -> Any:
    """The profile's object store, or InputError: the plugin cannot run without a remote default storage."""
    store = ctx.site.kubernetes.object_store
    if store is None:
        raise InputError(
            f"site {ctx.site.name} with --engine snakemake is not supported: Snakemake's kubernetes executor plugin assumes "
            "no shared filesystem and needs a remote default storage (--default-storage-provider), and the profile gives none. "
            "Add kubernetes.object_store: {provider: s3, prefix: s3://BUCKET/PATH}, or use --engine parsl (which uses the volume claims)")
    return store


def _storage_prefix(ctx: RunContext) -> str:
    """One prefix per workflow under the profile's, so runs of different workflows never share files."""
    return f"{_object_store(ctx).prefix.rstrip('/')}/{ctx.plan.workflow}"


def _gpu_manufacturer(ctx: RunContext) -> str:
    """The plugin names GPUs by manufacturer (nvidia.com/gpu or amd.com/gpu) and knows no other resource."""
    resource = ctx.site.kubernetes.gpu_resource
    if resource not in ("nvidia.com/gpu", "amd.com/gpu"):
        raise InputError(f"site {ctx.site.name}: Snakemake's kubernetes plugin requests GPUs only as nvidia.com/gpu or amd.com/gpu, "
                         f"not kubernetes.gpu_resource {resource!r}; use --engine parsl")
    return resource.split(".", 1)[0]


def _failures(log: str) -> dict[str, int | None]:
    """Rules Snakemake reports as failed, with the exit status of their command when it says."""
    failures: dict[str, int | None] = {}
    status: int | None = None
    for line in log.splitlines():
        found = _EXIT_STATUS.search(line)
        if found:
            status = int(found.group(1))
        rule = _ERROR_IN_RULE.match(line)
        if rule:
            failures[rule.group(1)] = status
            status = None
    return failures


def _read_exit_code(path: Path, fallback: int | None) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return fallback


def _slurm_jobs_by_rule(log: str) -> dict[str, str]:
    """Rule -> the SLURM job id the plugin submitted it as (its last try).

    Why through Snakemake's own job numbers ('rule X:' ... 'jobid: N', then 'Job N has been submitted with
    SLURM jobid M'): when several jobs are ready at once, Snakemake prints all their rule blocks before the
    plugin's submission lines, so the rule printed last is not the one each line is about.
    """
    rule_of_job: dict[str, str] = {}
    out: dict[str, str] = {}
    rule: str | None = None
    for line in log.splitlines():
        found = _RULE_START.match(line)
        if found:
            rule = found.group(1)
            continue
        number = _SNAKEMAKE_JOBID.match(line)
        if number and rule:
            rule_of_job[number.group(1)] = rule
            rule = None
        submitted = _SUBMITTED_AS.search(line)
        if submitted and submitted.group(1) in rule_of_job:
            out[rule_of_job[submitted.group(1)]] = submitted.group(2)
    return out


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env
