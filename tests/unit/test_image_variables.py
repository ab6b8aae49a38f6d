"""Issue 16: `$VARIABLE` in image locations where the scheduler itself reads the image name (HTCondor's container
attribute or universe, a Kubernetes pod's image): no shell expands it there, so the profile is refused at the line
rather than the job looking for a literal `$PROJECT/...` (SLURM and HTCondor's `wrap` mode expand it in the job's shell)."""

from __future__ import annotations

import pytest

from portaflow.errors import SpecError
from portaflow.schedulers import adapter_for
from portaflow.spec.loading import load_site

from testlib import SITES


def _check(write, parent: str, text: str) -> None:
    loaded = load_site(str(write("site.yaml", f"name: mine\nextends: {SITES / parent}\n{text}")), environ={})
    adapter_for(loaded).check()


@pytest.mark.parametrize(("text", "line"), [
    ("container:\n  image_dir: $PROJECT/containers\n", 4),
    ("container:\n  images: {hep: '${CVMFS_REPO}/hep.sif'}\n", 4),
])
def test_htcondor_attribute_mode_refuses_a_variable_in_an_image(write, text, line):
    with pytest.raises(SpecError) as exc:
        _check(write, "example-cern-htcondor.yaml", text)
    message = str(exc.value)
    assert f"site.yaml:{line}:" in message and "HTCondor (container_mode attribute" in message and "container_mode: wrap" in message


def test_htcondor_wrap_mode_takes_a_variable(write):
    _check(write, "example-cern-htcondor.yaml", "htcondor: {container_mode: wrap}\ncontainer:\n  image_dir: $PROJECT/containers\n")


def test_kubernetes_refuses_a_variable_in_an_image(write):
    with pytest.raises(SpecError, match=r"site.yaml:5:.*names \$TAG, which Kubernetes \(a pod's image\) does not expand"):
        _check(write, "example-cloud-gpu-k8s.yaml", "container:\n  images:\n    hep: europe-docker.pkg.dev/p/hep:$TAG\n")


def test_the_shipped_profiles_still_pass(write):
    _check(write, "example-cern-htcondor.yaml", "")
    _check(write, "example-cloud-gpu-k8s.yaml", "")
