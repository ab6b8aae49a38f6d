"""Fixtures for the HEP core: small generated datasets and a 2-worker Dask cluster, made once per session."""

from __future__ import annotations

import pytest

from portaflow.cores.hep.generate import GeneratorConfig, write_events_file

# Small baskets (700 entries) so that files have several baskets and the reader's chunking is exercised.
MIXED_FILES = [  # (events, compression): background on, several compressions
    (3000, "zlib:1"),
    (2500, "lz4:1"),
    (1700, "zlib:6"),
]


@pytest.fixture(scope="session")
def mixed_dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[str], list[dict]]:
    """Three files with background: paths and the generator truth of each."""
    folder = tmp_path_factory.mktemp("hep_mixed")
    paths, truths = [], []
    for index, (events, compression) in enumerate(MIXED_FILES):
        path = folder / f"mixed_{index}.root"
        truth = write_events_file(path, GeneratorConfig(events=events, seed=11, file_index=index, signal_fraction=0.3),
                                  compression=compression, basket_entries=700)
        paths.append(str(path))
        truths.append(truth)
    return paths, truths


@pytest.fixture(scope="session")
def signal_dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[str], list]:
    """Background switched off, half the events empty: 2 x 60k events, about 60k Z decays (for the fit)."""
    folder = tmp_path_factory.mktemp("hep_signal")
    paths, truths = [], []
    for index in range(2):
        path = folder / f"signal_{index}.root"
        truth = write_events_file(path, GeneratorConfig(events=60_000, seed=5, file_index=index, signal_fraction=0.5,
                                                        background=False), compression="lz4:1", basket_entries=20_000)
        paths.append(str(path))
        truths.append(truth)
    return paths, truths


@pytest.fixture(scope="session")
def dask_client():
    """Two worker processes with one thread each: work really crosses process boundaries."""
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                      host="127.0.0.1", memory_limit="2GiB") as cluster, Client(cluster) as client:
        yield client
