"""Real Apptainer, where the binary exists (not on this project's CI machines: Apptainer is not packaged for
Debian 12 and has no PyPI wheel). There, it builds the HEP image with `portaflow containers build` and runs the
HEP workflow inside it; everywhere else it skips and says why. Its commands are golden-tested regardless
(tests/golden/*example-hpc-mem-per-cpu*, tests/unit/test_container_recipes.py)."""

from __future__ import annotations

import json
import shutil

import pytest

from testlib import SCIENCE_CASES, param_args, run_portaflow

RUNTIME = shutil.which("apptainer") or shutil.which("singularity")


@pytest.mark.slow
@pytest.mark.skipif(RUNTIME is None, reason="neither apptainer nor singularity is on PATH (not installable on Debian 12 CI machines)")
def test_hep_runs_in_an_apptainer_image(tmp_path):
    runtime = "apptainer" if RUNTIME.endswith("apptainer") else "singularity"
    sif = tmp_path / "images" / "hep.sif"
    sif.parent.mkdir()
    # the recipe's base comes from a registry: sites with Apptainer usually reach one (else pass --base a local SIF)
    result = run_portaflow("containers", "build", "hep", "--runtime", runtime, "--image", str(sif), timeout=1800)
    assert result.returncode == 0, result.stderr
    path, params = SCIENCE_CASES["hep"]
    work = tmp_path / "work"
    result = run_portaflow("run", str(path), "--site", "local", "--site-set", f"container.runtime={runtime}",
                           "--site-set", f"container.image_dir={sif.parent}", "--workdir", str(work), *param_args(params))
    assert result.returncode == 0, result.stdout + result.stderr
    for log in (work / ".portaflow" / "runs" / "latest" / "logs").glob("*.log"):
        assert "in a container (apptainer)" in log.read_text(), log.name
    manifest = json.loads((work / ".portaflow" / "runs" / "latest" / "manifest.json").read_text())
    assert manifest["containers"]["hep"]["digest"].startswith("sha256:")
