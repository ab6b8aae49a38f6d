"""A CWL export runs its steps in portaflow's images under cwltool (DockerRequirement hints, podman), and its outputs
equal a portaflow run's on the host (issue 19). wordfreq with every step in the `hep` image keeps it to three
container starts; tests/e2e/test_cwl_export.py runs the science workflows' exports without containers.

cwltool's `--podman` adds `--userns=keep-id`, which rootful podman refuses; as root, `--user-space-docker-cmd podman`
runs the same `podman run` without it (docs/cwl.md).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from portaflow.compare import compare
from portaflow.driver import load_plan
from portaflow.exchange import cwl_export
from portaflow.spec.loading import load_workflow

from testlib import WORKFLOWS, run_portaflow


def test_export_runs_in_the_images_with_the_hosts_outputs(tmp_path, core_images):
    text = (WORKFLOWS / "examples" / "wordfreq.yaml").read_text()
    path = tmp_path / "wordfreq.yaml"
    path.write_text(text.replace("    resources: {cores: 1, memory: 256MB, walltime: 5m}\n",
                                 "    resources: {cores: 1, memory: 256MB, walltime: 5m}\n    container: hep\n"))
    assert path.read_text().count("container: hep") == 3
    export = tmp_path / "cwl"
    made = run_portaflow("export", "cwl", str(path), "--preset", "small", "--site", "local-podman", "-o", str(export))
    assert made.returncode == 0, made.stderr
    assert "dockerPull: localhost/portaflow-hep:latest" in (export / "step-merge.cwl").read_text()
    podman = ["--user-space-docker-cmd", "podman"] if os.geteuid() == 0 else ["--podman"]
    cwl = subprocess.run([sys.executable, "-m", "cwltool", *podman, "--outdir", str(tmp_path / "out"), str(export / "workflow.cwl"),
                          str(export / "job.yml")], capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert cwl.returncode == 0, cwl.stderr[-4000:]
    assert cwl.stderr.count("in a container (podman)") == 2 + 1  # make_text x2 and merge (count is a shell command)
    host = run_portaflow("run", str(path), "--preset", "small", "-w", str(tmp_path / "pf"))
    assert host.returncode == 0, host.stderr
    loaded = load_workflow(path)
    loaded, _, plan = load_plan(loaded, "local", {}, loaded.workflow.preset("small"))
    objects = json.loads(cwl.stdout)
    for name, step in loaded.workflow.steps.items():
        for key in step.outputs:
            value = objects[cwl_export.output_id(name, key)]
            for task, item in zip(cwl_export.scatter_order(plan, loaded, name), value if isinstance(value, list) else [value], strict=True):
                out = task.outputs[key]
                verdict = compare(tmp_path / "pf" / out.path, Path(item["path"]), out.compare)
                assert verdict.same, (out.path, verdict.detail)
