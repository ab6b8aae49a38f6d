"""Steps wrapped in the site's container runtime: binds, GPU flags only for GPU steps, values quoted."""

from __future__ import annotations

import shlex
import subprocess

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


def test_apptainer_cache_dir_reaches_the_runtime_where_the_step_runs(tmp_path):
    """container.cache_dir: exported to the runtime for that one command, `$VAR` expanded by the job's shell."""
    fake = tmp_path / "apptainer"  # a stand-in runtime that reports the cache variables it was started with
    fake.write_text('#!/bin/sh\necho "apptainer=$APPTAINER_CACHEDIR singularity=$SINGULARITY_CACHEDIR"\n')
    fake.chmod(0o755)
    for runtime in ("apptainer", "singularity"):
        s = site(runtime, executable=str(fake), image_dir="/images", cache_dir='$SCRATCH/cache "x"')
        line = wrap("true", container_call(s, "hep"), s, "/w", gpus=0, env_names=[])
        words = shlex.split(line)
        assert words[:3] == ['APPTAINER_CACHEDIR=$SCRATCH/cache "x"', 'SINGULARITY_CACHEDIR=$SCRATCH/cache "x"', str(fake)]
        env = {"PATH": "/usr/bin:/bin", "SCRATCH": "/scratch/u1"}
        out = subprocess.run(["bash", "-c", line], env=env, capture_output=True, text=True, check=True).stdout
        assert out == 'apptainer=/scratch/u1/cache "x" singularity=/scratch/u1/cache "x"\n'
        # and it is set for the container runtime only, not exported to the rest of the job's shell
        out = subprocess.run(["bash", "-c", f"{line}; echo \"after=$APPTAINER_CACHEDIR\""], env=env, capture_output=True, text=True).stdout
        assert out.endswith("after=\n")


def test_cache_dir_is_not_given_to_podman():
    s = site("podman", cache_dir="/scratch/cache")
    line = wrap("true", container_call(s, "hep"), s, "/w", gpus=0, env_names=[])
    assert "CACHEDIR" not in line and shlex.split(line)[0] == "podman"


def test_podman_and_docker_containers_carry_the_run_id_as_a_label_the_shell_fills_in():
    """A rerun after `kill -9` finds the killed run's containers by this label (containers.running); the job's shell
    expands the run id, which every process of a run has in its environment."""
    for runtime in ("podman", "docker"):
        s = site(runtime)
        line = wrap("true", container_call(s, "hep"), s, "/w", gpus=0, env_names=[])
        out = subprocess.run(["bash", "-c", f"printf '%s\\n' {line.split(' localhost/')[0]}"], capture_output=True, text=True,
                             env={"PORTAFLOW_RUN_ID": "20261204-000000-parsl-abcd", "PATH": "/usr/bin:/bin"})
        words = out.stdout.split("\n")
        assert words[words.index("--label") + 1] == "portaflow.run-id=20261204-000000-parsl-abcd", words
    s = site("apptainer")
    assert "--label" not in wrap("true", container_call(s, "hep"), s, "/w", gpus=0, env_names=[])
