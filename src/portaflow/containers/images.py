"""What the machine knows about an image: is it there, and which exact image is it (its digest).

Why digests: an image location such as `localhost/portaflow-hep:latest` or `/images/hep.sif` names
whatever was built last; the digest names the bytes that ran. The manifest records it, and a task's
signature includes it, so a rebuilt image reruns the steps that use it.
"""

from __future__ import annotations

import logging
from pathlib import Path

from portaflow.commands import CommandError, run_command
from portaflow.containers import ContainerCall
from portaflow.hashing import sha256_file
from portaflow.spec.variables import expand_here

log = logging.getLogger(__name__)

REMOTE_PREFIXES = ("docker://", "oras://", "library://", "shub://")
"""Image references the runtime pulls when the step starts: nothing local to check or hash."""


def is_remote(image: str) -> bool:
    return image.startswith(REMOTE_PREFIXES)


def uses_files(call: ContainerCall) -> bool:
    """Apptainer/Singularity images are files (SIF) or directories (unpacked, e.g. on CVMFS)."""
    return call.runtime in ("apptainer", "singularity")


def image_here(call: ContainerCall) -> str:
    """The image's location as this machine sees it: the site's `$NAME`s (e.g. `image_dir: $PROJECT/containers`,
    expanded in the job by its shell) expanded with this process's environment, for checking and hashing it here.

    Raises spec.variables.UnsetVariable when the location names a variable this machine does not set."""
    return expand_here(call.image)


def image_present(call: ContainerCall) -> bool:
    """Whether the image is on this machine (remote references count as present: the runtime pulls them).

    Raises CommandError when the runtime cannot answer (podman's exit 125, a timeout, no binary), so a
    broken runtime is reported as such rather than as a missing image.
    """
    if is_remote(call.image):
        log.debug("image %s: remote, pulled by %s when a step starts", call.image, call.runtime)
        return True
    if uses_files(call):
        present = Path(image_here(call)).exists()
        log.debug("image %s: %s", call.image, "present" if present else "no such file or directory")
        return present
    # `podman image exists` answers 0 or 1, anything else is an error; docker's inspect says 1 for both
    argv = [call.executable, "image", "exists" if call.runtime == "podman" else "inspect", call.image]
    result = run_command(argv, check=False)
    if result.returncode not in (0, 1):
        raise CommandError(argv, result.returncode, result.stdout, result.stderr)
    log.debug("image %s: %s in %s", call.image, "present" if result.returncode == 0 else "absent", call.executable)
    return result.returncode == 0


def image_digest(call: ContainerCall) -> str | None:
    """'sha256:...' of the image that would run, or None where it cannot be known without pulling.

    podman/docker: the image id (the digest of its config, as `podman images --digests` shows).
    A SIF file: the sha256 of the file. An unpacked directory or a remote reference: None.
    A podman/docker image whose id cannot be read gives None with a warning (the run goes on; its
    manifest and signatures just lack the digest): the digest is a record, not a precondition.
    """
    if is_remote(call.image):
        log.debug("image %s: remote, no digest before it is pulled", call.image)
        return None
    if uses_files(call):
        try:
            path = Path(image_here(call))
        except ValueError as exc:
            log.warning("image %s: digest unknown, %s", call.image, exc)
            return None
        digest = f"sha256:{sha256_file(path)}" if path.is_file() else None
        log.info("image %s: digest %s", call.image, digest or "none (a directory, not a SIF file)")
        return digest
    try:
        result = run_command([call.executable, "image", "inspect", "--format", "{{.Id}}", call.image])
    except CommandError as exc:
        log.warning("image %s: digest unknown, %s", call.image, exc)
        return None
    if not result.stdout.strip():
        log.warning("image %s: digest unknown, %s image inspect printed no id", call.image, call.executable)
        return None
    image_id = result.stdout.strip().splitlines()[0]
    digest = image_id if image_id.startswith("sha256:") else f"sha256:{image_id}"
    log.info("image %s: digest %s", call.image, digest)
    return digest

