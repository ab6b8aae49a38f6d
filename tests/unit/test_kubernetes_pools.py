"""Issue 16: Kubernetes settings real clusters need (NRP Nautilus): the GPU resource per node pool (an AMD pool beside
NVIDIA ones), node affinity with `In` lists (several GPU products), a pod securityContext. Each reaches both engines:
the resources through one rule (`KubernetesScheduler.gpu_resource`), placement and securityContext where every pod and
Job of either engine is completed (`complete`)."""

from __future__ import annotations

import pytest

from portaflow.errors import SpecError
from portaflow.plan import make_plan
from portaflow.schedulers import adapter_for
from portaflow.schedulers.context import RunContext
from portaflow.schedulers.kubernetes.parsl import provider_arguments
from portaflow.schedulers.kubernetes.snakemake import rule_resources
from portaflow.spec.loading import load_site
from portaflow.spec.workflow import Workflow

from testlib import ROOT

NAUTILUS = f"""\
name: nautilus
extends: {ROOT / "tests" / "data" / "sites" / "k8s-both-engines.yaml"}
partitions:
  gpu-mi100: {{max_walltime: 12h, cores_per_node: 16, memory_per_node: 64GiB, gpus_per_node: 4, priority: 10}}
kubernetes:
  security_context: {{run_as_user: 1000, run_as_group: 1000, fs_group: 1000, run_as_non_root: true}}
  node_pools:
    gpu-mi100:
      gpu_resource: amd.com/gpu
      node_affinity: {{amd.com/gpu.product: [MI100, MI210]}}
      tolerations: [{{key: amd.com/gpu, operator: Exists}}]
"""


def _context(write, tmp_path, gpus: int = 1):
    loaded = load_site(str(write("site.yaml", NAUTILUS)), environ={})
    adapter = adapter_for(loaded)
    adapter.check()
    steps = {"s": {"command": "true", "outputs": {"o": "o"}, "resources": {"cores": 2, "memory": "4GB", "gpus": gpus}}}
    plan = make_plan(Workflow.model_validate({"name": "w", "steps": steps}), loaded.site)
    return RunContext(plan, loaded, "/data/work", "/data/run", plan.tasks, adapter)


def test_gpu_resource_of_the_node_pool_reaches_both_engines(write, tmp_path):
    ctx = _context(write, tmp_path)
    [task] = ctx.tasks
    assert task.partition == "gpu-mi100"
    assert ctx.scheduler.quantities(task.resources, task.partition)["amd.com/gpu"] == "1"
    arguments = provider_arguments(ctx, ctx.tasks)  # Parsl's KubernetesProvider
    assert arguments["extra_requests"] == arguments["extra_limits"] == {"amd.com/gpu": "1"}
    assert rule_resources(ctx, task)["gpu_manufacturer"] == "amd"  # Snakemake's plugin: amd.com/gpu
    assert ctx.scheduler.gpu_resource("gpu-l4") == "nvidia.com/gpu"  # other pools keep the site's


def test_affinity_and_security_context_complete_both_engines_pods(write, tmp_path):
    from kubernetes import client

    ctx = _context(write, tmp_path)
    [task] = ctx.tasks
    container = client.V1Container(name="w", image="i")
    pod = client.V1Pod(metadata=client.V1ObjectMeta(name="p"), spec=client.V1PodSpec(containers=[container]))  # Parsl's block
    job = client.V1Job(metadata=client.V1ObjectMeta(name="j"), spec=client.V1JobSpec(template=client.V1PodTemplateSpec(spec=client.V1PodSpec(
        containers=[client.V1Container(name="w", image="i")]))))  # Snakemake's plugin's Job
    for body in (pod, job):
        ctx.scheduler.complete(body, task.resources, task.partition, "r", 60, task.id)
    for spec in (pod.spec, job.spec.template.spec):
        [term] = spec.affinity.node_affinity.required_during_scheduling_ignored_during_execution.node_selector_terms
        [expression] = term.match_expressions
        assert (expression.key, expression.operator, expression.values) == ("amd.com/gpu.product", "In", ["MI100", "MI210"])
        sc = spec.security_context
        assert (sc.run_as_user, sc.run_as_group, sc.fs_group, sc.run_as_non_root) == (1000, 1000, 1000, True)
    assert client.ApiClient().sanitize_for_serialization(pod)["spec"]["securityContext"]["runAsNonRoot"] is True


def test_pools_without_the_new_fields_are_unchanged(write, tmp_path):
    ctx = _context(write, tmp_path, gpus=0)
    [task] = ctx.tasks
    assert ctx.scheduler.node_affinity(task.partition) is None
    assert "amd.com/gpu" not in ctx.scheduler.quantities(task.resources, task.partition)


@pytest.mark.parametrize(("old", "new"), [("[MI100, MI210]", "[MI 100]"), ("run_as_user: 1000", "run_as_user: -1"),
                                          ("gpu_resource: amd.com/gpu", "gpu_resource: 'amd gpu'")])
def test_bad_values_are_refused_at_their_line(write, old, new):
    with pytest.raises(SpecError, match=r"site.yaml:\d+:"):
        load_site(str(write("site.yaml", NAUTILUS.replace(old, new))), environ={})
