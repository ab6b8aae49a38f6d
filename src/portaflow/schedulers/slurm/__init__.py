"""SLURM: a task's request as sbatch options, following the profile's memory and GPU rules; SlurmProvider for
Parsl (schedulers/slurm/parsl.py), the slurm executor plugin for Snakemake (schedulers/slurm/snakemake.py),
dask-jobqueue's SLURMJob for Dask workers (runtime/dask_jobs.py), squeue/scancel/sacct for the rest.

Each rule (constraint, memory rounding, GPU request, walltime) is one method here that both engines call,
so Parsl's job scripts and the Snakemake plugin's sbatch line ask for the same job.
"""

from __future__ import annotations

import getpass
import logging
import math
import re
import shlex
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from portaflow.commands import CommandError, run_command
from portaflow.errors import InputError, PortaflowError, SpecError
from portaflow.plan.model import Task, TaskResources
from portaflow.schedulers.base import (
    PARTITION_SETTINGS,
    PASSED,
    UNCHECKED,
    WRONG,
    JobUsage,
    ProbeJob,
    Scheduler,
    SiteFinding,
    run_tag,
    snakemake_jobname_prefix,
)
from portaflow.spec.slurm import gpu_template_fields
from portaflow.units import format_walltime, walltime_minutes

if TYPE_CHECKING:
    from portaflow.schedulers.context import RunContext

log = logging.getLogger(__name__)

ONE_OPTION = re.compile(r"(--[A-Za-z][A-Za-z0-9-]*(=[^\s'\"\\]+| [^\s'\"\\-][^\s'\"\\]*)?|-[A-Za-z]( ?[^\s'\"\\-][^\s'\"\\]*)?)")
"""One sbatch option as an extra directive: `--name`, `--name=value`, `--name value`, `-x`, `-x value` or `-xvalue`, with no
quote or backslash (which `#SBATCH` lines and a shell read differently) and no second option after it."""


NO_REQUEUE = "--no-requeue"
"""On every job: a job whose node fails ends NODE_FAIL and portaflow retries the task as the step's `retries` allow, at
once and on another node. SLURM's own requeue (the default where JobRequeue=1) reran it outside that count, after
a fixed 2-minute delay, and Snakemake's SLURM plugin 2.8.0 then reads the requeued job's node list as "None assigned"
and submits every later job with `--exclude=None assigned`, which sbatch refuses (tests/slurm/test_multinode.py)."""


class SlurmScheduler(Scheduler):
    name = "slurm"
    snakemake_executor = "slurm"
    snakemake_submission = re.compile(r"^Job (?P<job>\d+) has been submitted with SLURM jobid (?P<id>\d+)")
    """snakemake-executor-plugin-slurm 2.8.0: "Job 4 has been submitted with SLURM jobid 543 (log: ...)." (array jobs,
    which portaflow does not use, are reported in another message)."""
    snakemake_failure_names_job = True
    partition_settings = PARTITION_SETTINGS
    managed_flags = frozenset({
        "--partition", "-p", "--account", "-A", "--qos", "-q", "--time", "-t", "--mem", "--mem-per-cpu",
        "--mem-per-gpu", "--gres", "--gpus", "-G", "--gpus-per-node", "--gpus-per-task", "--cpus-per-task", "-c",
        "--nodes", "-N", "--ntasks", "-n", "--job-name", "-J", "--output", "-o", "--error", "-e",
        "--constraint", "-C", "--reservation", "--comment", "--export", "--parsable", "--time-min", "--clusters", "-M",
        "--requeue", NO_REQUEUE,
    })

    def directives(self, request: TaskResources, partition: str) -> list[str]:
        """sbatch options in a stable order: where, who, how long, how big, then the admin's extras."""
        site = self.site
        out = [f"--partition={self.partition_name(partition)}"]
        clusters = self.clusters(partition)
        if clusters:
            out.append(f"--clusters={clusters}")
        account = self.account(partition)
        if account:
            out.append(f"--account={account}")
        qos = self.qos(partition, request)
        if qos:
            out.append(f"--qos={qos}")
        if site.slurm.reservation:
            out.append(f"--reservation={site.slurm.reservation}")
        constraint = self.constraint(partition)
        if constraint:
            out.append(f"--constraint={constraint}")
        out.append(f"--time={format_walltime(request.walltime_s)}")
        out.extend(self.time_min_directives(request))
        out.append(f"--nodes={request.nodes}")
        # One task per node: with fewer tasks than nodes SLURM shrinks the job ("can't run 1 processes on 2 nodes,
        # setting nnodes to 1"); cores and memory are per node, as the partitions count them.
        out.append(f"--ntasks={request.nodes}")
        out.append(f"--cpus-per-task={request.cores}")
        out.extend(self.memory_directives(request))
        out.extend(self.gpu_directives(request))
        out.append(NO_REQUEUE)
        out.extend(self.extra_directives(partition))
        return out

    def time_min_directives(self, request: TaskResources) -> list[str]:
        """`--time-min` in whole minutes: `slurm.time_min` of the job's walltime (as both engines round it), rounded up,
        so it never exceeds the job's own --time whatever its length."""
        if not self.site.slurm.time_min:
            return []
        minutes = walltime_minutes(request.walltime_s)
        return [f"--time-min={max(1, math.ceil(minutes * int(self.site.slurm.time_min[:-1]) / 100))}"]

    def account(self, partition: str) -> str | None:
        """The partition's account, else the site's (Delta and Anvil charge CPU and GPU jobs to different accounts)."""
        return self.site.partitions[partition].account or self.site.account

    def qos(self, partition: str, request: TaskResources) -> str | None:
        """The partition's QOS: the shortest of its `qos_by_walltime` that covers the job's walltime (CBE's rapid <= 1 h,
        short <= 8 h, ...), else its `qos`, else `slurm.qos`."""
        part = self.site.partitions[partition]
        covering = sorted((limit, name) for name, limit in part.qos_by_walltime.items() if limit >= request.walltime_s)
        if covering:
            return covering[0][1]
        return part.qos or self.site.slurm.qos

    def partition_name(self, partition: str) -> str:
        """What --partition says: the partition's `slurm_partition` when its key is an alias, else the key."""
        return self.site.partitions[partition].slurm_partition or partition

    def clusters(self, partition: str) -> str | None:
        """The partition's cluster(s) on a multi-cluster site (`--clusters`; KU Leuven's wICE beside Genius, UPPMAX Snowy):
        submit, poll and cancel all name them (Parsl's SlurmProvider does for its sbatch, squeue, sacct and scancel;
        Snakemake's plugin submits with them and polls with sacct over all clusters; `cancel_run` asks each)."""
        return self.site.partitions[partition].clusters

    def all_clusters(self) -> list[str]:
        """Every cluster the profile's partitions name (empty: a single-cluster site)."""
        return sorted({c for part in self.site.partitions.values() if part.clusters for c in part.clusters.split(",")})

    def extra_directives(self, partition: str) -> list[str]:
        """The site's `extra_directives`, then the partition's."""
        return [*self.site.extra_directives, *self.site.partitions[partition].extra_directives]

    def memory_directives(self, request: TaskResources) -> list[str]:
        """--mem (per node) or --mem-per-cpu, rounded up so the job never gets less than asked."""
        rule = self.site.slurm.memory_rule
        if rule == "per_node":
            return [f"--mem={request.memory_mib}M"]
        if rule == "per_cpu":
            return [f"--mem-per-cpu={self.memory_per_cpu_mib(request)}M"]
        return []

    @staticmethod
    def memory_per_cpu_mib(request: TaskResources) -> int:
        """--mem-per-cpu for a request: rounded up, so cores x this is never less than the memory asked for."""
        return math.ceil(request.memory_mib / request.cores)

    def constraint(self, partition: str) -> str | None:
        """The site's and the partition's --constraint, combined with AND; a part with OR is parenthesised
        (`(intel|amd)&ib`), since in SLURM's syntax AND binds tighter than OR."""
        parts = [c for c in (self.site.slurm.constraint, self.site.partitions[partition].constraint) if c]
        if not parts:
            return None
        return "&".join(f"({c})" if "|" in c else c for c in parts)

    def gpu_directives(self, request: TaskResources) -> list[str]:
        """The GPU request: `gpu_syntax` when it names `{model}` (then for every GPU job) or the job names no model,
        else `gpu_model_syntax`. The model is the step's, or its partition's `default_gpu_model` (filled in by the plan)."""
        if not request.gpus:
            return []
        slurm = self.site.slurm
        template = slurm.gpu_syntax if self.gpu_syntax_names_model() or not request.gpu_model else slurm.gpu_model_syntax
        if "model" in gpu_template_fields(template) and not request.gpu_model:
            # check() refuses such a profile at validate; this covers a site object nobody checked
            raise InputError(f"site {self.site.name}: slurm.gpu_syntax {template!r} names {{model}}, and a job for {request.gpus} GPU(s) "
                             "names no model: give each GPU partition a default_gpu_model")
        return [template.format(n=request.gpus, model=request.gpu_model)]

    def gpu_syntax_names_model(self) -> bool:
        """Whether every GPU request names its model (`{model}` in `slurm.gpu_syntax`)."""
        return "model" in gpu_template_fields(self.site.slurm.gpu_syntax)

    def _one_option_problems(self) -> list:
        """Each extra directive (the site's and each partition's) is exactly one sbatch option, so that no second option
        (`--comment=x --account=other`) or shell text rides along inside it."""
        where = [(("extra_directives", i), d) for i, d in enumerate(self.site.extra_directives)]
        where += [(("partitions", name, "extra_directives", i), d) for name, part in self.site.partitions.items()
                  for i, d in enumerate(part.extra_directives)]
        return [self.loaded.problem(keypath, f"{directive!r} is not one sbatch option",
                                    "expected '--name=value', '--name value', '-x value' or '--flag', one per list entry, "
                                    "without quotes or backslashes")
                for keypath, directive in where if not ONE_OPTION.fullmatch(directive.strip())]

    def check(self) -> None:
        """Besides managed flags (Scheduler.check): each extra directive is one option; with `{model}` in
        `slurm.gpu_syntax`, every GPU partition must say which model a step that names none gets (`default_gpu_model`),
        and `gpu_model_syntax` (then unused) must not be set."""
        problems = self._one_option_problems()
        try:
            super().check()
        except SpecError as exc:
            problems += exc.problems
        for index, option in enumerate(self.site.slurm.spank_options):
            if self.flag_name(option) in self.managed_flags:
                problems.append(self.loaded.problem(("slurm", "spank_options", index), f"{option} is sbatch's own option, which portaflow "
                                                    "manages from the plan", "list only the options the site's SPANK plugins add"))
        if self.all_clusters() and self.site.slurm.status_command == "squeue":
            problems.append(self.loaded.problem(
                ("slurm", "status_command"), "squeue as Snakemake's status command sees only the local cluster, and partitions "
                f"here name clusters ({', '.join(self.all_clusters())})",
                "use status_command: sacct (or auto): Snakemake's SLURM plugin asks sacct over all clusters"))
        if self.gpu_syntax_names_model():
            syntax = self.site.slurm.gpu_syntax
            for name, part in self.site.partitions.items():
                if part.gpus_per_node and not part.default_gpu_model:
                    problems.append(self.loaded.problem(
                        ("partitions", name), f"slurm.gpu_syntax {syntax!r} names {{model}}, and partition {name} has GPUs but no default_gpu_model",
                        f"add default_gpu_model: one of {', '.join(part.gpu_models)}" if part.gpu_models else "add default_gpu_model: MODEL"))
            if "gpu_model_syntax" in self.site.slurm.model_fields_set:
                problems.append(self.loaded.problem(
                    ("slurm", "gpu_model_syntax"), f"not used: slurm.gpu_syntax {syntax!r} names {{model}}, so it serves every GPU request",
                    "remove slurm.gpu_model_syntax, or {model} from slurm.gpu_syntax"))
        if problems:
            raise SpecError(problems)

    @classmethod
    def flag_name(cls, directive: str) -> str:
        """'#SBATCH --mem=4G' and '--mem=4G' -> '--mem'; '-p gpu' and '-pgpu' -> '-p'; '--acc=x' -> '--account' (sbatch takes
        any unambiguous prefix of a long option, so a prefix of a managed flag is that flag)."""
        text = directive.strip()
        text = text[len("#SBATCH"):].strip() if text.startswith("#SBATCH") else text
        flag = super().flag_name(text)
        if flag.startswith("-") and not flag.startswith("--"):
            return flag[:2]
        if flag.startswith("--") and len(flag) > 2 and flag not in cls.managed_flags:
            longer = sorted(f for f in cls.managed_flags if f.startswith(flag))
            if longer:
                return longer[0]
        return flag

    @staticmethod
    def shell_words(directives: list[str]) -> str:
        """Directives as words of a shell command line, each quoted: Snakemake's SLURM plugin pastes `slurm_extra` into the
        sbatch command it runs through a shell."""
        return " ".join(shlex.quote(word) for directive in directives for word in directive.split())

    # -- engines -----------------------------------------------------------------------------------
    def parsl_provider(self, ctx: RunContext, label: str, tasks: list[Task], offline: bool = False) -> Any:
        from portaflow.schedulers.slurm.parsl import slurm_provider

        return slurm_provider(ctx, label, tasks)

    def render_parsl_blocks(self, ctx: RunContext, groups: dict[str, list[Task]], out_dir: Path) -> list[Path]:
        from portaflow.schedulers.slurm.parsl import render_blocks

        return render_blocks(ctx, groups, out_dir / "jobs")

    def snakemake_resources(self, ctx: RunContext, task: Task) -> dict[str, Any]:
        from portaflow.schedulers.slurm.snakemake import rule_resources

        return rule_resources(self, task)

    def snakemake_profile(self, ctx: RunContext) -> dict[str, Any]:
        from portaflow.schedulers.slurm.snakemake import executor_profile

        return executor_profile(self, ctx)

    def snakemake_run_profile(self, ctx: RunContext, profile: dict[str, Any]) -> dict[str, Any]:
        """`status_command: auto` decided against this cluster: squeue when sacct does not answer (the plugin
        would otherwise wait forever for accounting records)."""
        if self.site.slurm.status_command == "auto" and not self.accounting_available():
            if self.all_clusters():
                raise InputError(f"site {self.site.name}: its partitions name clusters ({', '.join(self.all_clusters())}) and sacct does "
                                 "not answer here: Snakemake's SLURM plugin can follow jobs on other clusters only through sacct "
                                 "(use --engine parsl, whose squeue names the clusters)")
            return {**profile, "slurm-status-command": "squeue"}
        return profile

    def dask_worker_settings(self, ctx: RunContext, task: Task) -> dict[str, Any]:
        """Each worker kind's request as sbatch options (the same directives as every job), for dask-jobqueue's
        SLURMJob in runtime/dask_jobs.py, started from inside the step's job."""
        dask = task.dask
        assert dask is not None
        # The Dask scheduler runs in the step's job, on a compute node: `network.address` (the driver's) does not
        # apply there. It listens on the node's address toward the host the job was submitted from (expanded in
        # the job), or on `network.interface`'s (addresses.choose_address).
        settings: dict[str, Any] = {"cluster": "portaflow.runtime.dask_jobs:slurm_cluster",
                                    "interface": self.site.network.interface, "peers": ["$SLURM_SUBMIT_HOST"]}
        for kind in ("cpu", "gpu"):
            request, partition = getattr(dask, f"{kind}_worker"), getattr(dask, f"{kind}_worker_partition")
            settings[f"{kind}_worker"] = request.__dict__ if request else None
            settings[f"{kind}_worker_directives"] = (
                self.directives(request, partition) + [f"--comment={run_tag(ctx.run_id)}"] if request else [])
        return settings

    def dask_allocation_settings(self, ctx: RunContext, task: Task) -> dict[str, Any]:
        """Workers on every node of the step's allocation, each started with `srun --overlap` on one node in turn
        (runtime/dask_srun.py); the scheduler, in the step's process on the first node, listens on its address toward
        the others (or on `network.interface`'s)."""
        return {"cluster": "portaflow.runtime.dask_srun:srun_cluster", "interface": self.site.network.interface}

    def partition_hosts(self, partitions: list[str]) -> list[str]:
        """The NodeAddr of the first few nodes of these partitions (`sinfo`): the driver's route toward them gives the
        address they reach it at. Empty (logged) when sinfo does not answer."""
        partitions = ",".join(sorted({self.partition_name(p) for p in partitions}))
        try:
            listing = run_command(["sinfo", "--noheader", "--Node", f"--partition={partitions}", "--format=%o"], timeout=30)
        except CommandError as exc:
            log.warning("could not list the nodes of partition(s) %s to choose the driver's address: %s", partitions, exc)
            return []
        return list(dict.fromkeys(listing.stdout.split()))[:3]

    # -- the world ---------------------------------------------------------------------------------
    def cancel_run(self, run_id: str, known_jobs: list[str]) -> list[str]:
        """scancel the run's jobs: those portaflow recorded, and those carrying the run's tag (`_run_queue`).

        Why both: a job the engine reported is cancelled even if its tag could not be read, and Parsl may have a
        block queued that it has not reported yet (found by the tag). One squeue call lists the queue; one scancel
        call cancels — per cluster where the profile's partitions name clusters (`--clusters`: a job on another
        cluster is invisible to a plain squeue, and its id may repeat there). A failure of either is logged with what
        could not be cancelled, and the ids that were cancelled are returned.
        """
        cancelled = []
        for cluster in self.all_clusters() or [None]:
            where = [f"--clusters={cluster}"] if cluster else []
            try:
                tagged = self._run_queue(run_id, where)
            except CommandError as exc:
                log.error("could not list the queue%s to cancel run %s (jobs %s may still run): %s", f" of cluster {cluster}" if cluster else "",
                          run_id, " ".join(known_jobs) or "-", exc)
                continue
            mine = list(dict.fromkeys(job_id for job_id, is_tagged in tagged if is_tagged or job_id in known_jobs))
            if not mine:
                continue
            try:
                run_command(["scancel", *where, *mine])
            except CommandError as exc:
                log.error("scancel could not cancel every job of run %s (%s): %s", run_id, " ".join(mine), exc)
            cancelled += mine
        return cancelled

    def jobs_of_run(self, run_id: str) -> list[str]:
        """The run's jobs squeue still lists (pending, running or completing), by the run's tag. A squeue that does
        not answer is an error (PortaflowError): a rerun must not submit beside jobs it cannot see."""
        try:
            return [job_id for cluster in self.all_clusters() or [None]
                    for job_id, tagged in self._run_queue(run_id, [f"--clusters={cluster}"] if cluster else []) if tagged]
        except CommandError as exc:
            raise PortaflowError(f"could not list the SLURM queue to find the jobs of the killed run {run_id}: {exc}") from None

    def _run_queue(self, run_id: str, where: list[str]) -> list[tuple[str, bool]]:
        """Every job of the user's that squeue lists (its id), each with whether it carries the run's tag: Parsl blocks and Dask worker
        jobs carry it as their comment (`--comment=portaflow:<run id>`); the Snakemake plugin writes its own comment
        and names its jobs `<jobname prefix>_<uuid>`, the prefix being `snakemake_jobname_prefix(run_id)`."""
        tag, prefix = run_tag(run_id), snakemake_jobname_prefix(run_id) + "_"
        # --me: only the user's own jobs (another user's job can never be cancelled by a tag or id that looks like ours)
        queue = run_command(["squeue", *where, "--me", "--noheader", "--format=%i|%j|%k"])
        out = []
        for line in queue.stdout.splitlines():  # with --clusters, squeue heads each cluster's list with "CLUSTER: name"
            job_id, _, rest = line.strip().partition("|")
            name, _, comment = rest.partition("|")
            if job_id and rest:
                out.append((job_id, comment == tag or name.startswith(prefix)))
        return out

    def connection_problems(self) -> list[str]:
        if shutil.which("sbatch") is None:
            return [f"site {self.site.name} uses SLURM but sbatch is not on PATH"]
        try:
            run_command(["sinfo", "--noheader", "--format=%P"], timeout=30)
        except CommandError as exc:
            return [f"site {self.site.name}: SLURM does not answer (sinfo: {exc.stderr.strip() or exc.reason})"]
        return []

    def probe_unavailable(self) -> str | None:
        return None

    def compare_profile(self, partitions: list[str]) -> list[SiteFinding]:
        """The profile's partitions, limits, accounts and QOS against SLURM's own answers: `sinfo --clusters` for each
        cluster the profile names, `scontrol show partition -o` and `scontrol show node -o` (per cluster), `sacctmgr show
        assoc` for the user. The rules are in schedulers/slurm/compare.py; a command that does not answer makes its
        findings "could not check" with its message."""
        from portaflow.schedulers.slurm import compare

        found: list[SiteFinding] = []
        silent: set[str] = set()
        groups: dict[str | None, list[str]] = {}
        for name in partitions:
            for cluster in (self.clusters(name) or "").split(",") if self.clusters(name) else [None]:
                groups.setdefault(cluster, []).append(name)
        for cluster, names in groups.items():
            where = [f"--clusters={cluster}"] if cluster else []
            if cluster:
                try:
                    run_command(["sinfo", *where, "--noheader", "--format=%P"], timeout=30)
                    found.append(SiteFinding(f"cluster {cluster} answers", PASSED, f"partitions.{names[0]}.clusters", cluster, "sinfo answers"))
                except CommandError as exc:
                    found.append(SiteFinding(f"cluster {cluster} answers", WRONG, f"partitions.{names[0]}.clusters", f"cluster {cluster}",
                                             f"it does not answer (sinfo --clusters={cluster}: {_last_line(exc)})"))
                    silent.add(cluster)
                    found += [SiteFinding(f"partition {n} on cluster {cluster}", UNCHECKED, f"partitions.{n}",
                                          why=f"cluster {cluster} does not answer") for n in names]
                    continue
            try:
                part_text = run_command(["scontrol", *where, "show", "partition", "-o"], timeout=30).stdout
                node_text = run_command(["scontrol", *where, "show", "node", "-o"], timeout=30).stdout
            except CommandError as exc:
                found += [SiteFinding(f"partition {n}", UNCHECKED, f"partitions.{n}", why=f"scontrol does not answer: {_last_line(exc)}")
                          for n in names]
                continue
            records = {r["PartitionName"]: r for r in compare.parse_records(part_text) if "PartitionName" in r}
            nodes = [r for r in compare.parse_records(node_text) if "NodeName" in r]
            for name in names:
                slurm_names = self.partition_name(name).split(",")
                found += compare.compare_partition(name, self.site.partitions[name], slurm_names, records, nodes)
                for use in compare.account_uses(self.site, [name], None):
                    found += compare.compare_allowed(name, slurm_names, records, use)
        found += self._compare_associations(partitions, silent)
        return found

    def _compare_associations(self, partitions: list[str], silent: set[str]) -> list[SiteFinding]:
        """The accounts and QOS the profile names, against the user's associations (`sacctmgr show assoc`); those on
        clusters that do not answer (`silent`, already reported wrong) are "could not check"."""
        from portaflow.schedulers.slurm import compare

        local = self.local_cluster()
        uses = [u for u in compare.account_uses(self.site, partitions, local) if u.account or u.qos]
        unasked = [u for u in uses if u.clusters and set(u.clusters) <= silent]
        uses = [u for u in uses if u not in unasked]
        skipped = [SiteFinding(f"account {u.account}" if u.account else "QOS", UNCHECKED, u.account_key if u.account else next(iter(u.qos.values())),
                               why=f"cluster {','.join(u.clusters)} does not answer") for u in unasked]
        if not uses:
            return skipped
        user = getpass.getuser()
        try:
            rows = run_command(["sacctmgr", "-nP", "show", "assoc", f"user={user}", "format=cluster,account,qos"], timeout=30).stdout
        except CommandError as exc:
            return skipped + [SiteFinding(f"account {u.account}" if u.account else "QOS", UNCHECKED,
                                          u.account_key if u.account else next(iter(u.qos.values())),
                                          why=f"sacctmgr does not answer (no accounting database?): {_last_line(exc)}") for u in uses]
        return skipped + compare.compare_associations(user, uses, compare.parse_associations(rows))

    def local_cluster(self) -> str | None:
        """This machine's cluster (`scontrol show config`'s ClusterName): the associations a job without --clusters uses."""
        try:
            config = run_command(["scontrol", "show", "config"], timeout=30).stdout
        except CommandError:
            return None
        found = re.search(r"^ClusterName\s*=\s*(\S+)", config, re.MULTILINE)
        return found.group(1) if found else None

    def submit_probe(self, partition: str, request: TaskResources, script: Path, output: Path, tag: str) -> ProbeJob:
        """`sbatch` the probe with the directives every job of this size on this partition gets (so a wrong account, QOS,
        constraint or GPU syntax is refused here as it would be in a run), named `portaflow-check`, tagged `tag`."""
        argv = ["sbatch", "--parsable", "--job-name=portaflow-check", f"--output={output}", f"--comment={run_tag(tag)}",
                *(word for directive in self.directives(request, partition) for word in directive.split()), str(script)]
        result = run_command(argv, timeout=60)
        return ProbeJob(partition, result.stdout.strip().split(";")[0], time.time())

    def probe_states(self, jobs: list[ProbeJob]) -> dict[str, str]:
        """One `squeue` for all probes: 'PENDING (Resources)', 'RUNNING', ...; an ended job is not listed."""
        if not jobs:
            return {}
        try:
            queue = run_command(["squeue", "--noheader", f"--jobs={','.join(j.job_id for j in jobs)}", "--format=%i|%T|%r"],
                                check=False, timeout=30)
        except CommandError as exc:
            log.warning("site check: squeue did not answer: %s", exc)
            return {}
        states = {}
        for line in queue.stdout.splitlines():
            job_id, _, rest = line.strip().partition("|")
            state, _, reason = rest.partition("|")
            states[job_id] = f"{state} ({reason})" if reason and reason != "None" else state
        return states

    def check_rendered(self, files: list[Path]) -> list[str]:
        """Each job script's `#SBATCH` options, parsed by this machine's own sbatch (`sbatch OPTIONS --usage`
        parses every option and value, then prints usage without submitting). Nothing to check without sbatch."""
        if shutil.which("sbatch") is None:
            return []
        spank = set(self.site.slurm.spank_options)
        problems = []
        for script in (f for f in files if f.suffix == ".sbatch"):
            # the site's SPANK options are left out: only the site's sbatch knows them (unverifiable_here says so)
            options = [word for line in script.read_text().splitlines() if line.startswith("#SBATCH")
                       and self.flag_name(line) not in spank for word in shlex.split(line[len("#SBATCH"):])]
            result = run_command(["sbatch", *options, "--usage"], check=False, timeout=30)
            if result.returncode != 0:
                reason = result.stderr.strip().splitlines()[0]
                hint = (" (if a SPANK plugin of the site adds it, list it in slurm.spank_options)"
                        if "unrecognized option" in reason else "")
                problems.append(f"{script.name}: sbatch rejects its options: {reason}{hint}")
        return problems

    def unverifiable_here(self) -> list[str]:
        """The site's SPANK options its extra directives use (`slurm.spank_options`): this machine's sbatch cannot check them."""
        spank = set(self.site.slurm.spank_options)
        used = {self.flag_name(d) for d in [*self.site.extra_directives, *(d for p in self.site.partitions.values()
                                                                             for d in p.extra_directives)]}
        return [f"{flag} (a SPANK plugin's option of site {self.site.name})" for flag in sorted(used & spank)]
    def accounting(self, job_ids: list[str]) -> dict[str, JobUsage]:
        """One `sacct` for all the jobs: the allocation's times, CPU time and cores, the memory asked for, and the largest
        MaxRSS of its steps (empty when no sample was taken: jobs shorter than JobAcctGatherFrequency may have none).
        Nothing (logged) when sacct does not answer: a cluster without accounting."""
        ids = sorted({j for j in job_ids if j}, key=lambda j: (len(j), j))
        if not ids:
            return {}
        try:
            result = run_command(["sacct", "--noheader", "--parsable2", "--jobs", ",".join(ids),
                                  f"--format={','.join(SACCT_FIELDS)}"], timeout=60)
        except CommandError as exc:
            log.warning("sacct does not answer, so the report has no accounting for job(s) %s: %s", ", ".join(ids), exc)
            return {}
        return parse_sacct(result.stdout)

    def accounting_available(self) -> bool:
        """Whether sacct answers here. Why ask: without accounting, tools that poll with sacct wait
        forever (Snakemake's SLURM plugin does); squeue works either way."""
        try:
            probe = run_command(["sacct", "--noheader", "-X", "--format=JobID", "-j", "1"], check=False, timeout=30)
        except CommandError:
            return False
        return probe.returncode == 0


SACCT_FIELDS = ("JobID", "State", "Submit", "Start", "End", "ElapsedRaw", "TotalCPU", "AllocCPUS", "ReqMem", "MaxRSS")
"""What `accounting` asks sacct (`--parsable2`: fields split by `|`, in this order)."""


def parse_sacct(text: str) -> dict[str, JobUsage]:
    """`sacct --parsable2` rows (SACCT_FIELDS) -> one JobUsage per job allocation: its own row's times, TotalCPU (the
    sum over its steps), cores and ReqMem, and the largest MaxRSS of its steps (`123.batch`, `123.0`)."""
    rows = [dict(zip(SACCT_FIELDS, line.split("|"), strict=False)) for line in text.splitlines() if line.strip()]
    peak: dict[str, float] = {}
    for row in rows:
        job, _, step = row.get("JobID", "").partition(".")
        rss = _slurm_mib(row.get("MaxRSS", ""))
        if step and rss is not None:
            peak[job] = max(peak.get(job, 0.0), rss)
    out = {}
    for row in rows:
        job = row.get("JobID", "")
        if not job or "." in job:
            continue
        cores = int(row["AllocCPUS"]) if row.get("AllocCPUS", "").isdigit() else None
        memory = _slurm_mib(row.get("ReqMem", "").rstrip("nc"))
        if memory is not None and row.get("ReqMem", "").endswith("c") and cores:  # older sacct: per CPU
            memory *= cores
        out[job] = JobUsage(
            job_id=job, state=(row.get("State") or "").split(" ")[0] or None,
            submitted=_slurm_time(row.get("Submit")), started=_slurm_time(row.get("Start")), ended=_slurm_time(row.get("End")),
            elapsed_s=float(row["ElapsedRaw"]) if row.get("ElapsedRaw", "").isdigit() else None,
            cpu_s=_slurm_duration(row.get("TotalCPU", "")), cores=cores, max_rss_mib=peak.get(job), memory_mib=memory)
    return out


def _last_line(exc: CommandError) -> str:
    """A failed command's last line of error output (SLURM's message), else why it failed."""
    return (exc.stderr.strip().splitlines() or [exc.reason])[-1]


def _slurm_time(value: str | None) -> str | None:
    return value if value and value[:1].isdigit() else None  # "Unknown", "None" for a job that never started


def _slurm_mib(value: str) -> float | None:
    """`381256K`, `4G`, `1.50G`, `0` (sacct's sizes, K = KiB) -> MiB; None for an empty field."""
    found = re.fullmatch(r"([\d.]+)([KMGTP]?)", value.strip())
    if not found:
        return None
    return float(found[1]) * {"": 1 / 1024 / 1024, "K": 1 / 1024, "M": 1, "G": 1024, "T": 1024 ** 2, "P": 1024 ** 3}[found[2]]


def _slurm_duration(value: str) -> float | None:
    """sacct's `[DD-][HH:]MM:SS[.mmm]` -> seconds."""
    found = re.fullmatch(r"(?:(\d+)-)?(?:(\d+):)?(\d+):(\d+(?:\.\d+)?)", value.strip())
    if not found:
        return None
    days, hours, minutes, seconds = found.groups()
    return int(days or 0) * 86400 + int(hours or 0) * 3600 + int(minutes) * 60 + float(seconds)
