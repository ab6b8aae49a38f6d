"""Build a core's image on this machine, for podman/docker or Apptainer, without a registry.

Why it works offline: Python packages come from a wheelhouse that pip builds on the host (the host
has the package index; build containers have no network), and the base can be a local image: a
Debian root filesystem made with debootstrap and imported into podman (`bootstrap_base`), or a
local SIF for Apptainer. The recipe text is the one `portaflow containers render` writes, with the
base swapped, so what is built is what is reviewed.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from portaflow.containers import ContainerCall
from portaflow.containers.images import image_digest
from portaflow.containers.recipes import Recipe, apptainer_def, containerfile, load_recipe, recipe_path
from portaflow.errors import InputError, PortaflowError

BASE_TAG = "localhost/portaflow-base:bookworm"
BASE_PACKAGES = ["python3", "python3-venv", "ca-certificates"]
"""What a base needs for every recipe: Python 3.11 with venv (Debian 12's python3 is 3.11)."""


class BuildError(PortaflowError):
    """A build tool failed; its output is in the message."""


@dataclass(frozen=True)
class BuiltImage:
    name: str
    runtime: str
    image: str
    digest: str | None


def default_image(name: str, runtime: str) -> str:
    """Where a build puts an image when not told: what `containers.resolve_image` looks for by default."""
    return f"{name}.sif" if runtime in ("apptainer", "singularity") else f"localhost/portaflow-{name}:latest"


def wheelhouse_command(recipe: Recipe, project_root: Path, wheel_dir: Path) -> list[str]:
    """pip builds portaflow's own wheel and fetches every dependency's, for the image's Python (3.11)."""
    return [sys.executable, "-m", "pip", "wheel", "--quiet", "--wheel-dir", str(wheel_dir),
            f"{project_root}[{','.join(recipe.extras)}]" if recipe.extras else str(project_root)]


def build_command(runtime: str, executable: str, context: Path, image: str, base: str | None) -> list[str]:
    """The runtime's own build call, run inside the build context (recipe + wheelhouse/)."""
    if runtime in ("apptainer", "singularity"):
        return [executable, "build", "--force", str(Path(image).resolve()), "image.def"]
    words = [executable, "build", "--file", "Containerfile", "--tag", image]
    if base:
        words += ["--build-arg", f"BASE={base}"]
    if runtime == "podman":
        # No network: nothing in the recipe needs it, and the build proves it. No layer cache: the
        # wheelhouse differs every build, so cached layers would only pile up as unnamed images.
        words += ["--network", "none", "--layers=false"]
    return words + ["."]


def build_image(name: str, runtime: str, recipes_dir: Path, project_root: Path, base: str | None = None,
                image: str | None = None, executable: str | None = None, log=print) -> BuiltImage:
    """Build container `name` for `runtime`; return where it is and its digest."""
    if runtime not in ("podman", "docker", "apptainer", "singularity"):
        raise InputError(f"--runtime: expected podman, docker, apptainer or singularity, found {runtime!r}")
    executable = executable or runtime
    if shutil.which(executable) is None:
        raise InputError(f"cannot build {name!r} for {runtime}: {executable} is not on PATH on this machine")
    path = recipe_path(recipes_dir, name)
    recipe = load_recipe(path)
    image = image or default_image(name, runtime)
    with tempfile.TemporaryDirectory(prefix=f"portaflow-build-{name}-") as tmp:
        context = Path(tmp)
        if runtime in ("apptainer", "singularity"):
            (context / "image.def").write_text(apptainer_def(recipe, path.name, base=base))
        else:
            (context / "Containerfile").write_text(containerfile(recipe, path.name))
        log(f"wheelhouse: building wheels for {recipe.requirement} (pip, on the host)")
        _run(wheelhouse_command(recipe, project_root, context / "wheelhouse"), cwd=context)
        log(f"image: {runtime} build of {image}" + (f" from {base}" if base else ""))
        _run(build_command(runtime, executable, context, image, base), cwd=context)
    return BuiltImage(name, runtime, image, image_digest(ContainerCall(runtime, executable, image)))


def bootstrap_base(tag: str = BASE_TAG, suite: str = "bookworm", mirror: str = "http://deb.debian.org/debian",
                   executable: str = "podman", log=print) -> BuiltImage:
    """A minimal Debian with Python, made by debootstrap and imported as a local image (no registry).

    Needs root and debootstrap; apt inside it reaches the Debian mirror, nothing else.
    """
    for tool in ("debootstrap", executable):
        if shutil.which(tool) is None:
            raise InputError(f"cannot bootstrap a base image: {tool} is not on PATH (Debian: apt-get install debootstrap podman)")
    with tempfile.TemporaryDirectory(prefix="portaflow-base-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        log(f"base: debootstrap {suite} with {', '.join(BASE_PACKAGES)} from {mirror}")
        _run(["debootstrap", "--variant=minbase", f"--include={','.join(BASE_PACKAGES)}", suite, str(rootfs), mirror])
        for leftover in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for item in (rootfs / leftover).glob("*"):
                if item.is_file():
                    item.unlink()
        log(f"base: {executable} import as {tag}")
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        try:
            _run([executable, "import", "--change", 'CMD ["/bin/bash"]', "-", tag], stdin=tar.stdout)
        finally:
            tar.stdout.close()
            tar.wait()
    return BuiltImage("base", executable, tag, image_digest(ContainerCall(executable, executable, tag)))


def _run(argv: list[str], cwd: Path | None = None, stdin=None) -> None:
    """Run a build tool; on failure raise BuildError with the end of its output (not a traceback)."""
    result = subprocess.run(argv, cwd=cwd, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if result.returncode != 0:
        tail = "\n".join(result.stdout.strip().splitlines()[-25:])
        raise BuildError(f"{argv[0]} {argv[1]} failed with exit code {result.returncode}:\n{tail}")
