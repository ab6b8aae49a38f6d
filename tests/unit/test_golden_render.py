"""Golden tests: what `portaflow render` writes for each (site, engine) is reviewed as a diff.

Regenerate after an intended change with PORTAFLOW_UPDATE_GOLDEN=1 and review `git diff tests/golden`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from testlib import ROOT, WORKFLOWS, run_portaflow

GOLDEN = ROOT / "tests" / "golden"
WORKDIR = "/work/portaflow-golden"
CASES = [
    (WORKFLOWS / "examples" / "wordfreq.yaml", "tests/data/sites/local-fixed.yaml"),
    (WORKFLOWS / "examples" / "wordfreq.yaml", "slurm-local"),
    (WORKFLOWS / "examples" / "wordfreq.yaml", "example-hpc-mem-per-cpu"),
    (ROOT / "tests" / "data" / "workflows" / "resources.yaml", "slurm-local"),
    (ROOT / "tests" / "data" / "workflows" / "resources.yaml", "example-hpc-mem-per-cpu"),
    (ROOT / "tests" / "data" / "workflows" / "resources.yaml", "example-lumi-g"),
    (ROOT / "tests" / "data" / "workflows" / "resources.yaml", "example-juwels-booster"),
]


def normalise(text: str, out_dir: Path) -> str:
    return text.replace(str(out_dir), "<RENDER_DIR>").replace(str(Path(sys.executable).parent), "<PYTHON_BIN>")


@pytest.mark.parametrize("engine", ["parsl", "snakemake"])
@pytest.mark.parametrize("workflow, site", CASES, ids=lambda v: Path(str(v)).stem)
def test_rendered_files_match_golden(tmp_path, workflow, site, engine):
    out_dir = tmp_path / "render"
    result = run_portaflow("render", str(workflow), "--site", site, "--engine", engine, "-o", str(out_dir),
                           "--workdir", WORKDIR, *(["--param", "shards=2"] if workflow.stem == "wordfreq" else []),
                           *(["--site-set", "account=proj123"] if "example-" in site and "mem-per-cpu" not in site else []), cwd=ROOT)
    assert result.returncode == 0, result.stderr
    golden_dir = GOLDEN / f"{workflow.stem}--{Path(site).stem}--{engine}"
    rendered = {p.relative_to(out_dir): normalise(p.read_text(), out_dir) for p in sorted(out_dir.rglob("*")) if p.is_file()}
    assert rendered, "render wrote nothing"
    if os.environ.get("PORTAFLOW_UPDATE_GOLDEN") == "1":
        for rel, text in rendered.items():
            (golden_dir / rel).parent.mkdir(parents=True, exist_ok=True)
            (golden_dir / rel).write_text(text)
    expected = {p.relative_to(golden_dir): p.read_text() for p in sorted(golden_dir.rglob("*")) if p.is_file()}
    assert sorted(rendered) == sorted(expected), "rendered files differ from the golden set"
    for rel, text in rendered.items():
        assert text == expected[rel], f"{rel} differs from {golden_dir / rel}; rerun with PORTAFLOW_UPDATE_GOLDEN=1 if intended"
