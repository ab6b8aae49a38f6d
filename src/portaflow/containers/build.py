"""Build a core's image on this machine, for podman/docker or Apptainer, without a registry.

Why it works offline: Python packages come from a wheelhouse that pip builds on the host (the host
has the package index; build containers have no network), and the base can be a local image: a
Debian root filesystem made with debootstrap and imported into podman (`bootstrap_base`), or a
local SIF for Apptainer. The recipe text is the one `portaflow containers render` writes, with the
base swapped, so what is built is what is reviewed.

Every tool runs through `run_command` with no time limit (a build takes as long as it takes, and a
person is watching); a failure raises CommandError quoting the end of the tool's output.

Why a build can be skipped: a podman/docker image carries a label with the digest of everything that went into it
(`build_key`: the recipe as built, the base image's id, and each wheel of the wheelhouse by name and by the file
hashes its RECORD lists but METADATA's, so portaflow's own wheel counts by its contents, not by its zip's
timestamps nor its README). When the
image under that name already carries the key of this build's inputs, building again would make the same image, and
it is kept (`--force` rebuilds). The wheelhouse is always built: it is what says whether anything changed.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from portaflow.commands import run_command
from portaflow.containers import ContainerCall
from portaflow.containers.images import image_digest
from portaflow.containers.recipes import Recipe, apptainer_def, containerfile, load_recipe, recipe_path
from portaflow.errors import InputError

logger = logging.getLogger(__name__)
"""(Named so: `log` is the callback parameter through which the CLI tells the person waiting.)"""

BUILD_KEY_LABEL = "io.portaflow.build-key"
"""The image label holding `build_key` of the inputs it was built from."""

BASE_TAG = "localhost/portaflow-base:bookworm"
BASE_PACKAGES = ["python3", "python3-venv", "ca-certificates"]
"""What a base needs for every recipe: Python 3.11 with venv (Debian 12's python3 is 3.11)."""


@dataclass(frozen=True)
class BuiltImage:
    name: str
    runtime: str
    image: str
    digest: str | None
    rebuilt: bool = True
    """False when an image of the same inputs was there already and was kept."""


def default_image(name: str, runtime: str) -> str:
    """Where a build puts an image when not told: what `containers.resolve_image` looks for by default."""
    return f"{name}.sif" if runtime in ("apptainer", "singularity") else f"localhost/portaflow-{name}:latest"


def wheelhouse_command(recipe: Recipe, project_root: Path, wheel_dir: Path) -> list[str]:
    """pip builds portaflow's own wheel and fetches every dependency's, for the image's Python (3.11)."""
    return [sys.executable, "-m", "pip", "wheel", "--quiet", "--wheel-dir", str(wheel_dir),
            f"{project_root}[{','.join(recipe.extras)}]" if recipe.extras else str(project_root)]


def build_key(recipe_text: str, base: str, wheel_dir: Path) -> str:
    """The digest of a build's inputs: the recipe text, the base image (name and id), and every wheel by name and RECORD."""
    digest = hashlib.sha256()
    for part in (recipe_text, base):
        digest.update(part.encode() + b"\0")
    for wheel in sorted(wheel_dir.glob("*.whl")):
        digest.update(wheel.name.encode() + b"\0")
        with zipfile.ZipFile(wheel) as archive:
            records = [n for n in archive.namelist() if n.endswith(".dist-info/RECORD")]
            # a wheel without a RECORD is not a valid wheel; its bytes then stand for its contents
            if not records:
                digest.update(wheel.read_bytes())
                continue
            # METADATA is left out: it holds the project's README (portaflow's long description), which changes
            # nothing in the image; its requirements show in the wheelhouse's other wheels, its version in the name
            lines = archive.read(records[0]).decode().splitlines()
            digest.update("\n".join(line for line in lines if not line.split(",", 1)[0].endswith(".dist-info/METADATA")).encode())
    return digest.hexdigest()


def image_label(executable: str, image: str, label: str) -> str | None:
    """A label of a local image (None when the image is absent or has no such label)."""
    result = run_command([executable, "image", "inspect", "--format", f'{{{{index .Config.Labels "{label}"}}}}', image], check=False)
    value = result.stdout.strip() if result.returncode == 0 else ""
    return value if value and value != "<no value>" else None


def build_command(runtime: str, executable: str, context: Path, image: str, base: str | None, key: str | None = None) -> list[str]:
    """The runtime's own build call, run inside the build context (recipe + wheelhouse/)."""
    if runtime in ("apptainer", "singularity"):
        return [executable, "build", "--force", str(Path(image).resolve()), "image.def"]
    words = [executable, "build", "--file", "Containerfile", "--tag", image]
    if key:
        words += ["--label", f"{BUILD_KEY_LABEL}={key}"]
    if base:
        words += ["--build-arg", f"BASE={base}"]
    if runtime == "podman":
        # No network: nothing in the recipe needs it, and the build proves it. No layer cache: the
        # wheelhouse differs every build, so cached layers would only pile up as unnamed images.
        words += ["--network", "none", "--layers=false"]
    return words + ["."]


def build_image(name: str, runtime: str, recipes_dir: Path, project_root: Path, base: str | None = None,
                image: str | None = None, executable: str | None = None, log: Callable[[str], None] = print,
                force: bool = False) -> BuiltImage:
    """Build container `name` for `runtime`; return where it is and its digest. `log` tells the person waiting.

    A podman/docker image already built from the same inputs is kept unless `force` (see the module's docstring)."""
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
        logger.info("building %s from %s for %s (%s) in %s", image, path, runtime, executable, context)
        layered = runtime not in ("apptainer", "singularity")
        recipe_text = containerfile(recipe, path.name) if layered else apptainer_def(recipe, path.name, base=base)
        (context / ("Containerfile" if layered else "image.def")).write_text(recipe_text)
        log(f"wheelhouse: building wheels for {recipe.requirement} (pip, on the host)")
        _run(wheelhouse_command(recipe, project_root, context / "wheelhouse"), cwd=context)
        key = None
        if layered:
            base_id = image_digest(ContainerCall(runtime, executable, base)) if base else None
            # a base that is not here (a registry's tag) may change under the same name: no key, always built
            key = build_key(recipe_text, f"{base} {base_id}", context / "wheelhouse") if base_id or not base else None
            if key and not force and image_label(executable, image, BUILD_KEY_LABEL) == key:
                log(f"image: {image} is up to date (built from the same recipe, base and wheels; --force rebuilds it)")
                return BuiltImage(name, runtime, image, image_digest(ContainerCall(runtime, executable, image)), rebuilt=False)
        log(f"image: {runtime} build of {image}" + (f" from {base}" if base else ""))
        _run(build_command(runtime, executable, context, image, base, key), cwd=context)
    return BuiltImage(name, runtime, image, image_digest(ContainerCall(runtime, executable, image)))


def bootstrap_base(tag: str = BASE_TAG, suite: str = "bookworm", mirror: str = "http://deb.debian.org/debian",
                   executable: str = "podman", log: Callable[[str], None] = print) -> BuiltImage:
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
        # A tarball on disk rather than a pipe: each tool's exit code is then checked (a failing tar
        # used to go unnoticed, leaving podman to import a truncated stream).
        tarball = Path(tmp) / "rootfs.tar"
        _run(["tar", "-C", str(rootfs), "-cf", str(tarball), "."])
        _run([executable, "import", "--change", 'CMD ["/bin/bash"]', str(tarball), tag])
    return BuiltImage("base", executable, tag, image_digest(ContainerCall(executable, executable, tag)))


def _run(argv: list[str], cwd: Path | None = None) -> None:
    """Run a build tool to its end (no time limit), logged at INFO; CommandError with its output if it fails."""
    result = run_command(argv, cwd=cwd, timeout=None, level=logging.INFO)
    logger.debug("%s output (end):\n%s", argv[0], "\n".join((result.stdout + result.stderr).strip().splitlines()[-25:]))
