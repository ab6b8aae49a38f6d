"""Snakemake's kubernetes Jobs, completed from the site profile: what portaflow's executor plugin calls at its API call.

The upstream plugin (snakemake-executor-plugin-kubernetes) builds each job's V1Job itself and has settings for
namespace, service account, volume claims and one image only. portaflow's plugin `portaflow-kubernetes`
(`src/snakemake_executor_plugin_portaflow_kubernetes`, a subclass of the upstream Executor) hands every Job to a
`JobCompleter` before creating it: the Job is completed (node pool, pull secrets and policy, labels, TTL, backoff,
deadline) and checked (schedulers.kubernetes). Which step a Job runs is read from its command line
(`--target-jobs RULE:`, one rule per task); what to complete it from is the run's launch file (`launch_file`),
which the plugin is told with `--portaflow-kubernetes-launch` (schedulers/kubernetes/launch.py reads it).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from portaflow.plan.model import TaskResources

_TARGET = re.compile(r"--target-jobs\s+['\"]?([A-Za-z_][A-Za-z0-9_]*):")

LAUNCH_SETTING = "portaflow-kubernetes-launch"
"""The profile key that names the launch file (the plugin's `launch` setting)."""


def job_specs(tasks: list[Any]) -> dict[str, dict[str, Any]]:
    """What completing a job needs to know of each rule (a task): its request, partition and walltime."""
    return {t.id: {"request": t.resources.__dict__, "partition": t.partition, "walltime_s": t.resources.walltime_s} for t in tasks}


def launch_file(ctx: Any) -> dict[str, Any]:
    """The launch file's content: the site's file (absolute: Snakemake runs in the work directory), the user's
    overrides, the run id, each rule's request."""
    return {"site": str(Path(ctx.loaded_site.path).absolute()), "overrides": ctx.loaded_site.overrides, "run_id": ctx.run_id,
            "tasks": job_specs(ctx.tasks)}


class JobCompleter:
    """Completes and checks, in place, each V1Job the plugin is about to create (raises before a bad one is sent)."""

    def __init__(self, scheduler: Any, specs: dict[str, dict[str, Any]], run_id: str) -> None:
        self.scheduler, self.specs, self.run_id = scheduler, specs, run_id

    def __call__(self, body: Any) -> Any:
        from portaflow.schedulers.kubernetes.manifests import manifest, raise_if_invalid

        command = " ".join(body.spec.template.spec.containers[0].args or [])
        found = _TARGET.search(command)
        spec = self.specs.get(found.group(1)) if found else None
        if spec is None:
            raise RuntimeError(f"portaflow: cannot tell which step Snakemake job {body.metadata.name} runs (no --target-jobs in {command[:200]!r})")
        request = TaskResources(**spec["request"])
        self.scheduler.complete(body, request, spec["partition"], self.run_id, spec["walltime_s"], task_id=found.group(1))
        raise_if_invalid(manifest(body))
        return body
