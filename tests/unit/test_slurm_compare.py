"""`portaflow site check`'s comparison of a SLURM profile with its site, on the commands' real output: captured from
the test cluster (`tests/slurm/cluster.sh up --nodes 2`) into tests/data/slurm/ (`scontrol show partition -o`,
`scontrol show node -o`, `sacctmgr -nP show assoc user=root format=cluster,account,qos`). The same comparison against
the live cluster is in tests/slurm/test_multinode.py."""

from __future__ import annotations

import pytest

from portaflow.schedulers.base import PASSED, WRONG
from portaflow.schedulers.slurm.compare import (
    AccountUse,
    account_uses,
    compare_allowed,
    compare_associations,
    compare_partition,
    gres_gpus,
    parse_associations,
    parse_records,
    slurm_seconds,
)
from portaflow.spec.loading import load_site

from testlib import ROOT

DATA = ROOT / "tests" / "data" / "slurm"
PARTITIONS = {r["PartitionName"]: r for r in parse_records((DATA / "scontrol-show-partition.txt").read_text())}
NODES = parse_records((DATA / "scontrol-show-node.txt").read_text())
ASSOCIATIONS = parse_associations((DATA / "sacctmgr-assoc.txt").read_text())


def findings(site_name: str, partition: str, **changes: object):
    site = load_site(site_name).site
    part = site.partitions[partition].model_copy(update=changes)
    return compare_partition(partition, part, [partition], PARTITIONS, NODES)


def test_the_captured_output_reads_as_the_cluster_is():
    assert set(PARTITIONS) == {"cpu", "gpu", "multi", "spread"}
    assert PARTITIONS["gpu"]["MaxTime"] == "00:30:00" and PARTITIONS["spread"]["MaxCPUsPerNode"] == "1"
    assert {n["NodeName"]: n["RealMemory"] for n in NODES} == {"pfnode1": "8192", "pfnode2": "8192", "vm": "19284"}
    assert {(a.account, tuple(a.qos)) for a in ASSOCIATIONS} >= {("portaflow-test", ("normal", "short"))}


@pytest.mark.parametrize("site", ["slurm-local", str(ROOT / "tests" / "data" / "sites" / "slurm-multinode.yaml")])
def test_the_true_profiles_pass_every_comparison(site):
    loaded = load_site(site).site
    for name in loaded.partitions:
        found = compare_partition(name, loaded.partitions[name], [name], PARTITIONS, NODES)
        assert found and all(f.verdict == PASSED for f in found), [f.text for f in found]


@pytest.mark.parametrize("change, key, site_says", [
    ({"max_walltime": 7200}, "partitions.cpu.max_walltime", "MaxTime=01:00:00"),
    ({"memory_per_node": 32768}, "partitions.cpu.memory_per_node", "18.8 GiB (RealMemory)"),
    ({"cores_per_node": 16}, "partitions.cpu.cores_per_node", "8"),
    ({"max_nodes": 2}, "partitions.cpu.max_nodes", "1 (MaxNodes=UNLIMITED, TotalNodes=1)"),
    ({"gpus_per_node": 4}, "partitions.cpu.gpus_per_node", "2 (Gres=gpu:2)"),
    ({"gpu_models": ["a100"]}, "partitions.cpu.gpu_models", "its nodes' GPU models: none named (Gres=gpu:2)"),
    ({"constraint": "amd"}, "partitions.cpu.constraint", "its nodes' features: avx2, intel"),
])
def test_a_profile_promising_more_than_the_partition_is_wrong_at_its_key(change, key, site_says):
    wrong = [f for f in findings("slurm-local", "cpu", **change) if f.verdict == WRONG]
    assert [(f.key, f.site) for f in wrong] == [(key, site_says)], [f.text for f in wrong]
    assert wrong[0].text.startswith("wrong: profile says ") and wrong[0].text.endswith(f"key {key}")


def test_promising_less_passes_and_a_per_node_cpu_cap_counts():
    assert all(f.verdict == PASSED for f in findings("slurm-local", "cpu", max_walltime=60, memory_per_node=1024, cores_per_node=2))
    site = load_site(str(ROOT / "tests" / "data" / "sites" / "slurm-multinode.yaml")).site
    capped = compare_partition("spread", site.partitions["spread"].model_copy(update={"cores_per_node": 4}), ["spread"], PARTITIONS, NODES)
    [wrong] = [f for f in capped if f.verdict == WRONG]
    assert (wrong.key, wrong.site) == ("partitions.spread.cores_per_node", "1 (MaxCPUsPerNode=1)")


def test_a_missing_partition_names_the_partitions_there_are():
    site = load_site("slurm-local").site
    [missing] = compare_partition("big", site.partitions["cpu"], ["big"], PARTITIONS, NODES)
    assert (missing.verdict, missing.key, missing.site) == (WRONG, "partitions.big", "no such partition (partitions: cpu, gpu, multi, spread)")


def test_gres_and_time_formats():
    assert gres_gpus("gpu:2") == {None: 2} and gres_gpus("(null)") == {}
    assert gres_gpus("gpu:a100:4(S:0-1),gpu:v100:2,shard:8") == {"a100": 4, "v100": 2}
    assert gres_gpus("gpu:h100:4(S:0,2-3)") == {"h100": 4}
    assert [slurm_seconds(v) for v in ("UNLIMITED", "01:00:00", "2-00:00:00", "30:00", "45")] == [None, 3600, 172800, 1800, 2700]


def test_a_typed_gpu_model_is_found_and_a_missing_one_is_wrong():
    node = {**next(n for n in NODES if n["NodeName"] == "vm"), "Gres": "gpu:a100:2(S:0)"}
    site = load_site("slurm-local").site
    part = site.partitions["gpu"].model_copy(update={"gpu_models": ["a100", "h100"]})
    found = {f.what: f for f in compare_partition("gpu", part, ["gpu"], PARTITIONS, [node])}
    assert found["partition gpu: GPU model a100"].verdict == PASSED
    assert found["partition gpu: GPU model h100"].verdict == WRONG and "a100" in found["partition gpu: GPU model h100"].site


def test_accounts_and_qos_against_the_users_associations():
    site = load_site("slurm-local").site
    uses = account_uses(site, list(site.partitions), "portaflow")
    assert [(u.account, u.qos, u.clusters) for u in uses] == [("portaflow-test", {"normal": "slurm.qos"}, ["portaflow"])]
    assert all(f.verdict == PASSED for f in compare_associations("root", uses, ASSOCIATIONS))
    bad = [AccountUse("nosuch", "account", {"normal": "slurm.qos"}, ["portaflow"]),
           AccountUse("portaflow-test", "partitions.gpu.account", {"premium": "partitions.gpu.qos"}, ["portaflow"])]
    wrong = [(f.key, f.site) for f in compare_associations("root", bad, ASSOCIATIONS) if f.verdict == WRONG]
    assert wrong == [("account", "root's accounts on cluster portaflow: other, portaflow-test, root (sacctmgr show assoc)"),
                     ("partitions.gpu.qos", "QOS allowed for account portaflow-test on cluster portaflow: normal, short (sacctmgr show assoc)")]


def test_a_partition_that_admits_other_accounts_only():
    record = {**PARTITIONS["cpu"], "AllowAccounts": "physics,chem", "AllowQos": "normal"}
    use = AccountUse("portaflow-test", "account", {"long": "slurm.qos"})
    wrong = compare_allowed("cpu", ["cpu"], {"cpu": record}, use)
    assert [(f.key, f.site) for f in wrong] == [("account", "partition cpu has AllowAccounts=physics,chem"),
                                                ("slurm.qos", "partition cpu has AllowQos=normal")]
