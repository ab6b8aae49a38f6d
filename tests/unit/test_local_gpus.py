"""GPUs on the local site (issue 16): a task's shell claims the devices it asked for and sees only them
(CUDA_VISIBLE_DEVICES), whichever engine runs it; tasks running at once never share a device. (Before, Parsl pinned
each worker to one device whatever the task asked for, and Snakemake set nothing.) No GPU is needed: the claim is
locks and a variable. tests/e2e/test_local_engines.py runs it through both engines."""

from __future__ import annotations

import subprocess
import time

from portaflow.plan import make_plan
from portaflow.schedulers import adapter_for
from portaflow.schedulers.context import RunContext
from portaflow.schedulers.local import gpu_claim_lines
from portaflow.spec.loading import load_site
from portaflow.spec.workflow import Workflow


def claim_script(gpus: int, devices: int, then: str = "") -> str:
    return "\n".join([*gpu_claim_lines(gpus, devices), 'echo "$CUDA_VISIBLE_DEVICES"', then])


def start(script: str, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(["bash", "-c", script], env={"PATH": "/usr/bin:/bin", **env}, stdout=subprocess.PIPE, text=True)


def test_tasks_running_at_once_get_different_devices_and_as_many_as_they_asked_for(tmp_path):
    env = {"XDG_RUNTIME_DIR": str(tmp_path)}
    first, second = (start(claim_script(1, 3, "sleep 3"), env) for _ in range(2))
    both = start(claim_script(2, 3), env)  # 2 of 3 devices while two are held: waits for one to be released
    started = time.monotonic()
    a, b = first.communicate(timeout=30)[0].strip(), second.communicate(timeout=30)[0].strip()
    pair = both.communicate(timeout=30)[0].strip()
    assert {a, b} <= {"0", "1", "2"} and a != b
    assert len(pair.split(",")) == 2 and len(set(pair.split(","))) == 2
    assert time.monotonic() - started >= 2  # it could not take two devices before one of the others ended


def test_devices_come_from_an_inherited_cuda_visible_devices(tmp_path):
    out = subprocess.run(["bash", "-c", claim_script(2, 4)], env={"PATH": "/usr/bin:/bin", "XDG_RUNTIME_DIR": str(tmp_path),
                                                                   "CUDA_VISIBLE_DEVICES": "5,7"},
                         capture_output=True, text=True, timeout=30, check=True).stdout
    assert out.strip() == "5,7"


def test_the_local_site_claims_gpus_for_gpu_tasks_only_and_sizes_both_engines_alike(tmp_path, write):
    path = write("gpu-box.yaml", """\
        name: gpu-box
        scheduler: local
        partitions: {local: {max_walltime: 1d, cores_per_node: 16, memory_per_node: 64GB, gpus_per_node: 4}}
    """)
    loaded = load_site(str(path), environ={})
    adapter = adapter_for(loaded)
    workflow = Workflow.model_validate({"name": "w", "steps": {
        "cpu": {"command": "true", "outputs": {"o": "a"}, "resources": {"cores": 1, "memory": "1GB"}},
        "gpu": {"command": "true", "outputs": {"o": "b"}, "resources": {"cores": 1, "memory": "1GB", "gpus": 2}}}})
    plan = make_plan(workflow, loaded.site)
    ctx = RunContext(plan, loaded, tmp_path, tmp_path / "run", plan.tasks, adapter)
    cpu, gpu = plan.tasks
    assert "CUDA_VISIBLE_DEVICES" not in ctx.shell_line(cpu) and "export CUDA_VISIBLE_DEVICES" in ctx.shell_line(gpu)
    # Parsl: no per-worker pinning, and no more workers than the devices allow; Snakemake: the GPUs are a resource
    assert adapter.parsl_executor_options(ctx, [gpu]) == {"max_workers_per_node": 2, "cores_per_worker": 1, "available_accelerators": []}
    assert "gpu=4" in adapter.snakemake_profile(ctx)["resources"] and adapter.snakemake_resources(ctx, gpu)["gpu"] == 2
