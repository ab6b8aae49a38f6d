"""Run a step's command inside the container its site provides (Apptainer, Singularity, podman, docker).

Why portaflow wraps the command itself rather than using an engine's container support: Snakemake's
is Apptainer-only and applies one set of arguments to every rule, Parsl has none per app; wrapping
the shell line gives both engines the same behaviour, per step and per site.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

from portaflow.spec.site import SiteProfile

DEFAULT_GPU_FLAGS = {
    "apptainer": ["--nv"],
    "singularity": ["--nv"],
    "podman": ["--device", "nvidia.com/gpu=all"],
    "docker": ["--gpus", "all"],
}


@dataclass(frozen=True)
class ContainerCall:
    runtime: str
    executable: str
    image: str


def resolve_image(site: SiteProfile, name: str) -> str:
    """Where the site keeps the image for container `name` (its `images` map, then `image_dir`, then a default)."""
    settings = site.container
    if name in settings.images:
        return settings.images[name]
    if settings.runtime in ("apptainer", "singularity"):
        directory = settings.image_dir or "."
        return f"{directory.rstrip('/')}/{name}.sif"
    return f"localhost/portaflow-{name}:latest"


def container_call(site: SiteProfile, name: str | None) -> ContainerCall | None:
    """The runtime, binary and image for a step's container on this site, or None to run on the host."""
    runtime = site.container.runtime
    if name is None or runtime == "none":
        return None
    return ContainerCall(runtime, site.container.executable or runtime, resolve_image(site, name))


def double_quoted(value: str) -> str:
    """`value` in double quotes for a POSIX shell: `$NAME` and `${NAME}` in it are expanded where the line runs, but
    quotes, backslashes, backquotes and any other `$` (a command substitution `$(...)`, `$$`) are literal."""
    escaped = "".join("\\" + c if c in '"\\`' or (c == "$" and not re.match(r"[A-Za-z_{]", value[i + 1:i + 2])) else c
                      for i, c in enumerate(value))
    return f'"{escaped}"'


def wrap(command: str, call: ContainerCall | None, site: SiteProfile, workdir: str, gpus: int, env_names: list[str]) -> str:
    """The shell line that runs `command` in the container (or `command` itself without one).

    The work directory is bound at the same path so relative paths mean the same inside; GPUs are
    exposed only to steps that ask for them; environment variables are passed by name, explicitly.
    """
    if call is None:
        return command
    settings = site.container
    binds = [workdir, *settings.binds]
    if site.storage.scratch_dir:
        binds.append(site.storage.scratch_dir)
    gpu_flags = (shlex.split(settings.gpu_flag) if settings.gpu_flag else DEFAULT_GPU_FLAGS[call.runtime]) if gpus else []
    passed = sorted(set(env_names) | set(settings.env_passthrough))
    q = shlex.quote
    if call.runtime in ("apptainer", "singularity"):
        words = [q(call.executable), "exec", "--cleanenv", "--pwd", q(workdir)]
        if settings.cache_dir:
            # Where the runtime keeps pulled and converted images (else ~/.apptainer/cache): exported for this one
            # command on the node the step runs on, under both names (Apptainer reads the first, SingularityCE and
            # older Apptainer the second); double-quoted so that the job's shell expands e.g. $SCRATCH in it.
            cache = double_quoted(settings.cache_dir)
            words = [f"APPTAINER_CACHEDIR={cache}", f"SINGULARITY_CACHEDIR={cache}", *words]
        words += [f"--bind {q(b)}" for b in binds]
        # Apptainer needs NAME=value; the value is expanded by the job's shell, in double quotes.
        words += [f'--env {name}="${{{name}}}"' for name in passed]
    else:
        words = [q(call.executable), "run", "--rm", "--workdir", q(workdir)]
        words += [f"--volume {q(b if ':' in b else f'{b}:{b}')}" for b in binds]
        words += [f"--env {q(name)}" for name in passed]
    words += [q(a) for a in (*gpu_flags, *settings.run_options)]
    quoted = " ".join(words)
    return f"{quoted} {shlex.quote(call.image)} bash -c {shlex.quote(command)}"
