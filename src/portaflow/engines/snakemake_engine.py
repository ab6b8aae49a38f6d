"""Snakemake: the plan becomes a Snakefile (one rule per task) plus a profile, run by Snakemake's CLI.

Why one rule per task: portaflow has already decided which tasks are stale and filled every value
(quoted) into each command, so the Snakefile holds exactly those jobs and `--forceall` runs them;
Snakemake's dry-run job list is the plan's task list. Per-rule resources carry the site's request
(for SLURM: slurm_partition, slurm_account, runtime, mem_mb or mem_mb_per_cpu, gres...).
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from portaflow.engines.base import Engine, RunContext, TaskOutcome, failure_message
from portaflow.gctools import paused_gc
from portaflow.plan.model import Task

_PROGRESS = re.compile(r"(\d+) of (\d+) steps \(\d+%\) done")
_EXIT_STATUS = re.compile(r"returned non-zero exit status (\d+)")
_ERROR_IN_RULE = re.compile(r"^Error in rule (\w+):")
_RULE_START = re.compile(r"^(?:local)?rule (\w+):")
_SLURM_JOBID = re.compile(r"Job \d+ has been submitted with SLURM jobid (\d+)")


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
        script = "\n".join([
            f"exec >>{shlex.quote(str(ctx.log_path(task)))} 2>&1",
            # The exit status survives wherever the job ran (on SLURM, Snakemake's log does not carry it).
            f"trap 'echo $? > {shlex.quote(str(ctx.exit_code_path(task)))}' EXIT",
            ctx.shell_line(task),
            f"touch {shlex.quote(str(ctx.marker_path(task)))}",
        ])
        out.append(f"    shell: {_escape_braces(script)!r}")
        out.append("")
        return out

    def rule_resources(self, ctx: RunContext, task: Task) -> dict[str, Any]:
        """Per-rule resources in the names Snakemake and its executor plugins read."""
        r = task.resources
        res: dict[str, Any] = {"mem_mb": r.memory_mib, "runtime": max(1, -(-r.walltime_s // 60))}
        if ctx.site.scheduler == "slurm":
            res.update(self._slurm_resources(ctx, task))
            if "mem_mb_per_cpu" in res:
                del res["mem_mb"]
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
            if not site.account:
                cfg["slurm-no-account"] = True
            if site.polling.status_command != "auto":
                cfg["slurm-status-command"] = site.polling.status_command
        else:
            raise NotImplementedError(f"Snakemake engine: scheduler {site.scheduler} is not supported yet")
        return cfg

    # -- rendering and running -----------------------------------------------------------------
    def render(self, ctx: RunContext, out_dir: Path, profile: dict[str, Any] | None = None) -> list[Path]:
        out_dir.mkdir(parents=True, exist_ok=True)
        snakefile = out_dir / "Snakefile"
        snakefile.write_text(self.snakefile(ctx))
        profile_dir = out_dir / "profile"
        profile_dir.mkdir(exist_ok=True)
        config = profile_dir / "config.yaml"
        config.write_text(yaml.safe_dump(profile or self.profile(ctx), sort_keys=True))
        return [snakefile, config]

    def run_profile(self, ctx: RunContext) -> dict[str, Any]:
        """The profile, with `status_command: auto` decided against this cluster: squeue when sacct
        does not answer (the plugin would otherwise wait forever for accounting records)."""
        profile = self.profile(ctx)
        site = ctx.site
        if site.scheduler == "slurm" and site.polling.status_command == "auto" and not ctx.scheduler.accounting_available():
            profile["slurm-status-command"] = "squeue"
        return profile

    def command(self, ctx: RunContext, out_dir: Path, extra: list[str] | None = None) -> list[str]:
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
            proc = subprocess.Popen(self.command(ctx, out_dir), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_env(), start_new_session=True)
            try:
                assert proc.stdout is not None
                for line in proc.stdout:
                    log.write(line)
                    log.flush()
                    if _PROGRESS.search(line):
                        self._report_new(ctx, by_id, reported)
                    job = _SLURM_JOBID.search(line)
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
        outcomes = {}
        for task in ctx.tasks:
            if ctx.marker_path(task).exists():
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
    """Rule -> the SLURM job id the plugin submitted it as (from its 'rule X:' ... 'SLURM jobid N' lines)."""
    out: dict[str, str] = {}
    rule: str | None = None
    for line in log.splitlines():
        found = _RULE_START.match(line)
        if found:
            rule = found.group(1)
        job = _SLURM_JOBID.search(line)
        if job and rule:
            out[rule] = job.group(1)
    return out


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env
