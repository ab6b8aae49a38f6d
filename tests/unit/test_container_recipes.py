"""The checked-in Apptainer and Containerfile recipes are exactly what their YAML generates."""

from __future__ import annotations

from testlib import ROOT
from portaflow.containers.recipes import render_all


def test_recipes_are_generated_from_yaml():
    generated = render_all(ROOT / "containers")
    assert {p.name for p in generated} >= {"hep.def", "hep.Containerfile", "radio.def", "radio.Containerfile"}
    for path, text in generated.items():
        assert path.read_text() == text, f"{path.name} is stale: run `portaflow containers render`"


def test_both_runtimes_install_the_same_things():
    for name in ("hep", "radio"):
        definition = (ROOT / "containers" / f"{name}.def").read_text()
        containerfile = (ROOT / "containers" / f"{name}.Containerfile").read_text()
        install = [l.strip() for l in definition.splitlines() if "pip install" in l]
        assert install and all(line in containerfile for line in install)
