"""Snakemake with a remote default storage (an object store): how the driver's files get there and back.

Snakemake's kubernetes plugin assumes no shared filesystem: every path of the Snakefile becomes an object
under `--default-storage-prefix`; each job fetches its inputs from the store and puts its outputs there.
portaflow's driver works on files, though: it records each output's sha256, decides staleness from them,
and the matrix compares them across sites. So the compiled Snakefile gains local rules, which Snakemake
runs on the driver with the same storage plugin and credentials as every job:

- `portaflow_stage_<n>`: an input no task of this run makes (a workflow input, or the output of a task
  that is up to date) is copied from the work directory into the store; the work directory is the truth;
- `portaflow_fetch_<task>`: as soon as a task has finished, its outputs are copied from the store into
  the work directory, so a run leaves the same files as on every other site (a failed sibling stops
  no fetch of a finished task).

Absolute paths are not staged (they would not be where the step's command names them): they must be
visible in every pod, through a volume claim mounted above them; anything else is refused.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from portaflow.errors import InputError
from portaflow.plan.model import Task
from portaflow.safetext import one_line

if TYPE_CHECKING:
    from portaflow.schedulers.context import RunContext

STAGE_PREFIX = "portaflow_stage_"
FETCH_PREFIX = "portaflow_fetch_"


def uses_object_store(ctx: RunContext) -> bool:
    """Whether Snakemake's jobs on this site read and write through the object store (the adapter says)."""
    return ctx.scheduler.uses_object_store()


def object_store(ctx: RunContext) -> Any:
    """The profile's object store, or InputError: the plugin cannot run without a remote default storage."""
    store = ctx.site.kubernetes.object_store
    if store is None:
        raise InputError(
            f"site {ctx.site.name} with --engine snakemake is not supported: Snakemake's kubernetes executor plugin assumes "
            "no shared filesystem and needs a remote default storage (--default-storage-provider), and the profile gives none. "
            "Add kubernetes.object_store: {provider: s3, prefix: s3://BUCKET/PATH}, or use --engine parsl (which uses the volume claims)")
    return store


def storage_prefix(ctx: RunContext) -> str:
    """One prefix per workflow under the profile's, so runs of different workflows never share files."""
    return f"{object_store(ctx).prefix.rstrip('/')}/{ctx.plan.workflow}"


def staged_directory(ctx: RunContext) -> Path:
    """Where Snakemake puts local copies of the store's files, relative to a job's directory: the step runs
    there, so the relative paths of its command name the staged files."""
    return Path(".snakemake/storage") / object_store(ctx).provider / storage_prefix(ctx).split("://", 1)[1]


def storage_profile(ctx: RunContext) -> dict[str, Any]:
    """The profile settings that make the object store Snakemake's default storage (credentials stay in the
    user's environment: the storage plugin reads them there and the kubernetes plugin hands them to the
    jobs as a Kubernetes Secret; portaflow never writes them)."""
    store = object_store(ctx)
    plugin = f"snakemake_storage_plugin_{store.provider}"
    if importlib.util.find_spec(plugin) is None:
        raise InputError(f"site {ctx.site.name}: kubernetes.object_store.provider {store.provider} needs Snakemake's storage plugin "
                         f"on this machine: pip install snakemake-storage-plugin-{store.provider}")
    cfg: dict[str, Any] = {"default-storage-provider": store.provider, "default-storage-prefix": storage_prefix(ctx)}
    if store.endpoint_url:
        cfg[f"storage-{store.provider}-endpoint-url"] = store.endpoint_url
    return cfg


def rule_path(ctx: RunContext, path: str) -> str:
    """A task's input as the Snakefile names it: through the store, or, for an absolute path, as a local file
    that every pod sees through a volume claim (InputError where none is mounted above it)."""
    if not (uses_object_store(ctx) and PurePosixPath(path).is_absolute()):
        return repr(path)
    mounts = [v.mount_path for v in ctx.site.kubernetes.volume_claims]
    if not any(PurePosixPath(path).is_relative_to(m) for m in mounts):
        raise InputError(
            f"input {path} is outside the work directory, so Snakemake cannot stage it through the object store, and no volume "
            f"claim of site {ctx.site.name} is mounted above it (kubernetes.volume_claims: {', '.join(mounts) or 'none'}); "
            "put it under the work directory, or mount its filesystem in the pods")
    return f"local({path!r})"


def target_path(ctx: RunContext, path: str) -> str:
    """An output as the final target names it: the work directory's copy where outputs are fetched back."""
    return f"local({path!r})" if uses_object_store(ctx) else repr(path)


def fetch_rule(task: Task) -> str:
    return FETCH_PREFIX + task.id


def staging_rules(ctx: RunContext) -> list[str]:
    """The Snakefile's stage-in and fetch-back rules (see the module's docstring)."""
    made = {p for t in ctx.tasks for p in t.output_paths()}
    directories = {o.path for t in ctx.plan.tasks for o in t.outputs.values() if o.directory}
    needed = sorted({p for t in ctx.tasks for p in t.input_paths() if p not in made and not PurePosixPath(p).is_absolute()})
    lines: list[str] = []
    for n, path in enumerate(needed):
        directory = path in directories or (ctx.workdir / path).is_dir()
        lines += [f"rule {STAGE_PREFIX}{n}:", f"    # stage {one_line(path)} from the work directory into the object store",
                  "    localrule: True", f"    input: local({path!r})",
                  f"    output: {_output(repr(path), directory)}", '    shell: "cp -a {input:q} {output:q}"', ""]
    for task in ctx.tasks:
        outputs = list(task.outputs.values())
        if not outputs:
            continue
        copies = " && ".join(f"cp -a {{input[{i}]:q}} {{output[{i}]:q}}" for i in range(len(outputs)))
        lines += [f"rule {fetch_rule(task)}:", f"    # fetch the outputs of {one_line(task.display)} from the object store into the work directory",
                  "    localrule: True", "    input:"]
        lines += [f"        {o.path!r}," for o in outputs]
        lines.append("    output:")
        lines += [f"        {_output(f'local({o.path!r})', o.directory)}," for o in outputs]
        lines += [f"    shell: {copies!r}", ""]
    return lines


def _output(expression: str, directory: bool) -> str:
    return f"directory({expression})" if directory else expression
