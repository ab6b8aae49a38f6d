"""Work planning: every entry is read exactly once, chunks never exceed chunk_entries, baskets are respected."""

from __future__ import annotations

from itertools import pairwise

import pytest
import uproot

from portaflow.cores.hep.reduce import auto_partition, chunk_boundaries, plan_work


@pytest.mark.parametrize("offsets, chunk, expected", [
    ([0, 100, 200, 300], 100, [0, 100, 200, 300]),
    ([0, 100, 200, 300], 250, [0, 200, 300]),
    ([0, 100, 200, 300], 40, [0, 40, 80, 100, 140, 180, 200, 240, 280, 300]),
    ([0, 100, 130, 300], 100, [0, 100, 130, 230, 300]),
    ([0], 10, [0]),
])
def test_chunk_boundaries(offsets, chunk, expected):
    assert chunk_boundaries(offsets, chunk) == expected


@pytest.mark.parametrize("chunk, partition", [(700, 700), (1000, 3000), (333, None), (10_000, None)])
def test_plan_covers_every_entry_once_in_bounded_chunks(mixed_dataset, chunk, partition):
    paths, _ = mixed_dataset
    items = plan_work(paths, chunk, partition)
    for path in paths:
        with uproot.open(path) as file:
            entries = file["Events"].num_entries
        chunks = [c for item in items if item.path == path for c in item.chunks()]
        assert chunks[0][0] == 0 and chunks[-1][1] == entries
        assert all(a[1] == b[0] for a, b in pairwise(chunks))  # contiguous, no overlap
        assert all(0 < stop - start <= chunk for start, stop in chunks)


def test_auto_partition_balances_and_stays_in_bounds():
    assert auto_partition(4_000_000, 100_000, 2) == 500_000
    assert auto_partition(1_000, 100_000, 2) == 100_000
    assert auto_partition(10**9, 100_000, 2) == 1_000_000
