"""What the machine knows about an image: is it there, and which exact image is it (its digest).

Why digests: an image location such as `localhost/portaflow-hep:latest` or `/images/hep.sif` names
whatever was built last; the digest names the bytes that ran. The manifest records it, and a task's
signature includes it, so a rebuilt image reruns the steps that use it.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from portaflow.containers import ContainerCall
from portaflow.hashing import sha256_file

REMOTE_PREFIXES = ("docker://", "oras://", "library://", "shub://")
"""Image references the runtime pulls when the step starts: nothing local to check or hash."""


def is_remote(image: str) -> bool:
    return image.startswith(REMOTE_PREFIXES)


def uses_files(call: ContainerCall) -> bool:
    """Apptainer/Singularity images are files (SIF) or directories (unpacked, e.g. on CVMFS)."""
    return call.runtime in ("apptainer", "singularity")


def image_present(call: ContainerCall) -> bool:
    """Whether the image is on this machine (remote references count as present: the runtime pulls them)."""
    if is_remote(call.image):
        return True
    if uses_files(call):
        return Path(call.image).exists()
    result = subprocess.run([call.executable, "image", "exists" if call.runtime == "podman" else "inspect", call.image],
                            capture_output=True, timeout=60)
    return result.returncode == 0


def image_digest(call: ContainerCall) -> str | None:
    """'sha256:...' of the image that would run, or None where it cannot be known without pulling.

    podman/docker: the image id (the digest of its config, as `podman images --digests` shows).
    A SIF file: the sha256 of the file. An unpacked directory or a remote reference: None.
    """
    if is_remote(call.image):
        return None
    if uses_files(call):
        path = Path(call.image)
        return f"sha256:{sha256_file(path)}" if path.is_file() else None
    try:
        result = subprocess.run([call.executable, "image", "inspect", "--format", "{{.Id}}", call.image],
                                capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if result.returncode != 0 or not result.stdout.strip():
        return None
    image_id = result.stdout.strip().splitlines()[0]
    return image_id if image_id.startswith("sha256:") else f"sha256:{image_id}"

