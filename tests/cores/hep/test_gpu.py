"""The GPU path: identical histograms on a GPU (needs CuPy and a device), and a clear error without one."""

from __future__ import annotations

import numpy as np
import pytest

from portaflow.cores.gpu import GPUUnavailableError
from portaflow.cores.hep import steps
from portaflow.cores.hep.reduce import reduce_files

from testlib import gpu_unavailable

GPU_REASON = gpu_unavailable()
needs_gpu = pytest.mark.skipif(GPU_REASON is not None, reason=f"no usable GPU: {GPU_REASON}")


@pytest.mark.skipif(GPU_REASON is None, reason="a usable GPU is present; the no-GPU error cannot be provoked")
def test_gpu_requested_without_gpu_raises_in_process(mixed_dataset):
    with pytest.raises(GPUUnavailableError, match="device 'gpu' was requested"):
        reduce_files(mixed_dataset[0], device="gpu")


def test_gpu_requested_without_gpu_workers_raises(mixed_dataset, dask_client):
    """CPU workers advertise no GPU resource: refuse at once instead of waiting forever for a GPU worker."""
    with pytest.raises(GPUUnavailableError, match="no Dask worker advertises"):
        reduce_files(mixed_dataset[0], device="gpu", client=dask_client)


@pytest.mark.skipif(GPU_REASON is None, reason="a usable GPU is present; the no-GPU error cannot be provoked")
def test_gpu_worker_without_usable_gpu_raises_through_the_step(mixed_dataset, tmp_path, monkeypatch):
    """A worker that advertises the GPU resource but has no usable CuPy/CUDA: the task raises, the step fails."""
    from distributed import Client, LocalCluster

    monkeypatch.setenv("PORTAFLOW_DASK_GPU_RESOURCE", "TESTGPU")
    outputs = {"histograms": str(tmp_path / "h.root"), "histograms_json": str(tmp_path / "h.json")}
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, resources={"TESTGPU": 1},
                      dashboard_address=":0") as cluster, Client(cluster) as client:
        with pytest.raises(GPUUnavailableError, match="device 'gpu' was requested"):
            steps.reduce(inputs={"events": mixed_dataset[0]}, outputs=outputs, args={"device": "gpu"}, client=client)
    assert not (tmp_path / "h.json").exists()


def test_unknown_device_is_refused(mixed_dataset):
    with pytest.raises(ValueError, match="device must be one of"):
        reduce_files(mixed_dataset[0], device="tpu")


@pytest.mark.gpu
@needs_gpu
def test_gpu_histograms_identical_to_cpu(mixed_dataset, signal_dataset):
    for paths in (mixed_dataset[0], signal_dataset[0]):
        cpu = reduce_files(paths, chunk_entries=1000)
        gpu = reduce_files(paths, chunk_entries=1000, device="gpu")
        for name in cpu.counts:
            assert np.array_equal(cpu.counts[name], gpu.counts[name]), name


@pytest.mark.gpu
@needs_gpu
def test_gpu_path_over_dask_gpu_workers(mixed_dataset, monkeypatch):
    from distributed import Client, LocalCluster

    monkeypatch.setenv("PORTAFLOW_DASK_GPU_RESOURCE", "GPU")
    cpu = reduce_files(mixed_dataset[0])
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, resources={"GPU": 1},
                      dashboard_address=":0") as cluster, Client(cluster) as client:
        gpu = reduce_files(mixed_dataset[0], device="gpu", client=client, partition_entries=1000, chunk_entries=1000)
    for name in cpu.counts:
        assert np.array_equal(cpu.counts[name], gpu.counts[name]), name
