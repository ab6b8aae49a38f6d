"""Real podman: each core's image built from a local Debian base (no registry), a workflow of each core run
inside it through each engine, with the same outputs as on the host; missing images stop a run before it starts."""

from __future__ import annotations

import json
import subprocess

import pytest

from portaflow.compare import compare_workdirs
from portaflow.plan import make_plan
from portaflow.spec.loading import load_site, load_workflow

from testlib import SCIENCE_CASES, param_args, run_portaflow

# One engine per core keeps CI short; the portability matrix runs every core through both engines in podman.
ENGINE_FOR = {"hep": "parsl", "radio": "snakemake"}


def test_images_were_built_offline_from_the_local_base(core_images):
    for name, digest in core_images.items():
        inspect = subprocess.run(["podman", "image", "inspect", f"localhost/portaflow-{name}:latest"], capture_output=True, text=True)
        info = json.loads(inspect.stdout)[0]
        assert f"sha256:{info['Id']}" == digest
        assert info["Config"]["Labels"]["org.opencontainers.image.title"] == f"portaflow-{name}"
        # built on our base, not on the recipe's registry image: the base's layer is the image's first
        base = json.loads(subprocess.run(["podman", "image", "inspect", "localhost/portaflow-base:bookworm"],
                                         capture_output=True, text=True).stdout)[0]
        assert info["RootFS"]["Layers"][0] == base["RootFS"]["Layers"][0]


@pytest.mark.slow
@pytest.mark.parametrize("core", sorted(SCIENCE_CASES))
def test_core_runs_in_its_container_with_the_hosts_outputs(tmp_path, core_images, science_on_local, core):
    path, params = SCIENCE_CASES[core]
    engine = ENGINE_FOR[core]
    host, boxed = science_on_local(core), tmp_path / "podman"
    result = run_portaflow("run", str(path), "--site", "local-podman", "--engine", engine, "--workdir", str(boxed), *param_args(params))
    assert result.returncode == 0, result.stdout + result.stderr

    logs = sorted((boxed / ".portaflow" / "runs" / "latest" / "logs").glob("*.log"))
    assert logs, "no task logs"
    for log in logs:  # every step says, from inside, that it ran in podman
        assert "in a container (podman)" in log.read_text(), log.name
    for log in (host / ".portaflow" / "runs" / "latest" / "logs").glob("*.log"):
        # the host may itself be a container of some other kind (CI machines often are): not podman's, though
        text = log.read_text()
        assert "portaflow: portaflow.cores." in text and "in a container (podman)" not in text, log.name

    manifest = json.loads((boxed / ".portaflow" / "runs" / "latest" / "manifest.json").read_text())
    assert manifest["containers"][core] == {"runtime": "podman", "image": f"localhost/portaflow-{core}:latest", "digest": core_images[core]}

    plan = make_plan(load_workflow(path).workflow, load_site("local", environ={}).site, dict(p.split("=") for p in params))
    verdicts = compare_workdirs(plan, host, boxed)
    assert verdicts and all(v.same for _, v in verdicts), [(p, v.detail) for p, v in verdicts if not v.same]


def test_missing_image_stops_the_run_before_submission(tmp_path, podman):
    path, params = SCIENCE_CASES["hep"]
    result = run_portaflow("run", str(path), "--site", "local-podman", "--site-set", "container.images.hep=localhost/portaflow-absent:0",
                           "--workdir", str(tmp_path), *param_args(params))
    assert result.returncode == 2
    assert ("step generate: image localhost/portaflow-absent:0 for container 'hep' (podman, as site local-podman expects) was not found"
            in result.stderr)
    assert "Traceback" not in result.stderr
    assert not (tmp_path / ".portaflow" / "runs").exists() and not (tmp_path / "data").exists()


def test_a_build_of_unchanged_inputs_keeps_the_image(core_images):
    """The fixture built (or kept) the images from this checkout; building again from the same inputs keeps them."""
    result = run_portaflow("containers", "build", "hep", "--runtime", "podman", "--base", "localhost/portaflow-base:bookworm", timeout=600)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("kept localhost/portaflow-hep:latest") and result.stdout.split("digest ")[-1].strip() == core_images["hep"]
    assert "is up to date" in result.stderr
