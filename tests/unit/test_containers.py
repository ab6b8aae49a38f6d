"""Steps wrapped in the site's container runtime: binds, GPU flags only for GPU steps, values quoted."""

from __future__ import annotations

import shlex

from portaflow.containers import container_call, resolve_image, wrap
from portaflow.spec.site import SiteProfile


def site(runtime: str, **container) -> SiteProfile:
    return SiteProfile.model_validate({
        "name": "s", "scheduler": "slurm", "storage": {"scratch_dir": "/scratch/tmp"},
        "partitions": {"p": {"max_walltime": "1h", "cores_per_node": 4, "memory_per_node": "8GB"}},
        "container": {"runtime": runtime, **container},
    })


def test_apptainer_wrap_binds_and_gpu_flag():
    s = site("apptainer", image_dir="/images", binds=["/data:/data:ro"])
    call = container_call(s, "hep")
    assert call.image == "/images/hep.sif"
    line = wrap("echo 'a b' > out.txt", call, s, "/work/run 1", gpus=1, env_names=["OMP_NUM_THREADS"])
    words = shlex.split(line)
    assert words[:2] == ["apptainer", "exec"] and "--nv" in words
    assert ["--bind", "/work/run 1"] == words[words.index("--bind"):words.index("--bind") + 2]
    assert "/data:/data:ro" in words and "/scratch/tmp" in words
    assert words[-4:] == ["/images/hep.sif", "bash", "-c", "echo 'a b' > out.txt"]
    assert 'OMP_NUM_THREADS="${OMP_NUM_THREADS}"' in line


def test_podman_wrap_without_gpus_has_no_device_flag():
    s = site("podman", images={"radio": "localhost/portaflow-radio:1.0"})
    line = wrap("true", container_call(s, "radio"), s, "/w", gpus=0, env_names=[])
    words = shlex.split(line)
    assert words[:3] == ["podman", "run", "--rm"] and "--device" not in words
    assert "/w:/w" in words and words[-4] == "localhost/portaflow-radio:1.0"


def test_no_runtime_runs_on_the_host():
    s = site("none")
    assert container_call(s, "hep") is None and wrap("true", None, s, "/w", 0, []) == "true"
    assert resolve_image(site("docker"), "hep") == "localhost/portaflow-hep:latest"
