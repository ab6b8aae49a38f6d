"""Run a step's command inside the container its site provides (Apptainer, Singularity, podman, docker).

Why portaflow wraps the command itself rather than using an engine's container support: Snakemake's
is Apptainer-only and applies one set of arguments to every rule, Parsl has none per app; wrapping
the shell line gives both engines the same behaviour, per step and per site.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from portaflow.spec.site import SiteProfile
from portaflow.spec.variables import shell_word

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


def site_binds(site: SiteProfile) -> list[str]:
    """The site's bind mounts (`container.binds`, then `storage.scratch_dir`), each once.

    Why once: a profile may name the same place twice (`binds: [$TMPDIR]` and `scratch_dir: $TMPDIR`), and a
    runtime given a destination twice either refuses or mounts it twice. `/x` and `/x:/x` are the same bind."""
    binds = [*site.container.binds, *([site.storage.scratch_dir] if site.storage.scratch_dir else [])]
    seen: set[tuple[str, ...]] = set()
    out = []
    for bind in binds:
        src, _, rest = bind.partition(":")
        dst, _, opts = rest.partition(":")
        key = (src.rstrip("/") or "/", (dst or src).rstrip("/") or "/", opts)
        if key not in seen:
            seen.add(key)
            out.append(bind)
    return out


def wrap(command: str, call: ContainerCall | None, site: SiteProfile, workdir: str, gpus: int, env_names: list[str]) -> str:
    """The shell line that runs `command` in the container (or `command` itself without one).

    The work directory is bound at the same path so relative paths mean the same inside; GPUs are
    exposed only to steps that ask for them; environment variables are passed by name, explicitly; a podman/docker
    container is labelled with the run's id (containers.running says why).
    """
    if call is None:
        return command
    settings = site.container
    # The work directory is a path on this machine (quoted as it is); the site's binds and image are the site's
    # names, whose `$NAME`s the job's shell expands on the node (portaflow.spec.variables).
    binds = [b for b in site_binds(site) if b.rstrip("/") != workdir.rstrip("/")]
    gpu_flags = (shlex.split(settings.gpu_flag) if settings.gpu_flag else DEFAULT_GPU_FLAGS[call.runtime]) if gpus else []
    passed = sorted(set(env_names) | set(settings.env_passthrough))
    q = shlex.quote
    if call.runtime in ("apptainer", "singularity"):
        words = [q(call.executable), "exec", "--cleanenv", "--pwd", q(workdir)]
        if settings.cache_dir:
            # Where the runtime keeps pulled and converted images (else ~/.apptainer/cache): exported for this one
            # command on the node the step runs on, under both names (Apptainer reads the first, SingularityCE and
            # older Apptainer the second); the job's shell expands e.g. $SCRATCH in it.
            cache = shell_word(settings.cache_dir)
            words = [f"APPTAINER_CACHEDIR={cache}", f"SINGULARITY_CACHEDIR={cache}", *words]
        words += [f"--bind {q(workdir)}"] + [f"--bind {shell_word(b)}" for b in binds]
        # Apptainer needs NAME=value; the value is expanded by the job's shell, in double quotes.
        words += [f'--env {name}="${{{name}}}"' for name in passed]
    else:
        # Labelled with the run's id: the container runs under the runtime's monitor, not the step's shell, and a rerun
        # after `kill -9` (or an interrupted run) finds it by the label to stop it (containers.running).
        from portaflow.containers.running import label_options

        words = [q(call.executable), "run", "--rm", *label_options(), "--workdir", q(workdir)]
        words += [f"--volume {q(f'{workdir}:{workdir}')}"] + [f"--volume {shell_word(b if ':' in b else f'{b}:{b}')}" for b in binds]
        words += [f"--env {q(name)}" for name in passed]
    words += [q(a) for a in (*gpu_flags, *settings.run_options)]
    quoted = " ".join(words)
    return f"{quoted} {shell_word(call.image)} bash -c {shlex.quote(command)}"
