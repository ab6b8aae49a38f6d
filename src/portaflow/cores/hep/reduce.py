"""Chunked reading and the distributed reduction: files -> work items -> per-item counts -> one merged result.

Why this shape:
- A work item is a file and a range of entries cut at basket boundaries, so no basket is decompressed
  twice, and it is read chunk by chunk: a task never holds more than one chunk of events (plus its
  small histograms), so memory is bounded by `chunk_entries`, never by the dataset.
- Tasks return plain int64 count arrays (flow bins included); merging is integer addition, exact and
  independent of the order in which tasks finish, so 1 process and N workers give identical results.
- The GPU path runs the very same array kernel with CuPy (selections.select), on workers advertising
  the GPU resource; a GPU that is asked for but unusable raises GPUUnavailableError.
"""

from __future__ import annotations

import ctypes
import logging
import math
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import uproot

from portaflow.cores.gpu import GPUUnavailableError, array_module, check_device, gpu_resource_name, to_host
from portaflow.cores.hep.generate import TREE, read_truth
from portaflow.cores.hep.schema import QUERIES, QUERY_OUTPUTS, Branch, Resolution, Schema, SchemaError, expand_paths, resolve, skipped_message
from portaflow.cores.hep.selections import COUNT_NAMES, HISTOGRAMS, SUMW, SUMW2, FlatChunk, Muons, fill, select_jets, select_muons

log = logging.getLogger(__name__)

MUON_BRANCHES = ("Muon_pt", "Muon_eta", "Muon_phi", "Muon_mass", "Muon_charge")
BRANCHES = (*MUON_BRANCHES, "Jet_pt", "MET_pt")
DEFAULT_CHUNK = 100_000


@dataclass(frozen=True)
class WorkItem:
    """Entries [boundaries[0], boundaries[-1]) of one file, read as chunks [boundaries[k], boundaries[k+1])."""

    path: str
    boundaries: tuple[int, ...]

    @property
    def entries(self) -> int:
        return self.boundaries[-1] - self.boundaries[0]

    def chunks(self) -> Iterator[tuple[int, int]]:
        return pairwise(self.boundaries)


def chunk_boundaries(basket_offsets: Sequence[int], chunk_entries: int) -> list[int]:
    """Entry boundaries of chunks of at most `chunk_entries`, on basket boundaries where baskets allow.

    Consecutive baskets are merged while they fit; a basket larger than a chunk is cut into pieces (its
    bytes are then decompressed more than once, but memory stays bounded, which matters more).
    """
    if chunk_entries < 1:
        raise ValueError(f"chunk_entries must be >= 1, got {chunk_entries}")
    offsets = [int(o) for o in basket_offsets]
    bounds = [offsets[0]]
    for previous, stop in pairwise(offsets):
        if stop - bounds[-1] > chunk_entries and previous > bounds[-1]:
            bounds.append(previous)  # close the chunk at the last basket boundary that fits
        while stop - bounds[-1] > chunk_entries:
            bounds.append(bounds[-1] + chunk_entries)  # a basket larger than a chunk
    if bounds[-1] != offsets[-1]:
        bounds.append(offsets[-1])
    return bounds


def open_tree(file: Any, name: str, path: str) -> Any:
    """The TTree or RNTuple `name` of an open file, or a SchemaError naming the file and what it holds."""
    try:
        tree = file[name]
    except KeyError:
        held = sorted({k for k, c in file.classnames(cycle=False).items() if c == "TTree" or "RNTuple" in c})
        raise SchemaError(f"{path}: no tree {name!r}; it holds {held or 'no trees'} (set the step's arg tree)") from None
    if tree.classname != "TTree" and "RNTuple" not in tree.classname:
        raise SchemaError(f"{path}: {name} is a {tree.classname}, expected a TTree or an RNTuple")
    return tree


def entry_offsets(tree: Any) -> list[int]:
    """Entry boundaries at which every branch starts a basket (TTree) or a cluster starts (RNTuple)."""
    if not tree.num_entries:
        return [0]
    if tree.classname == "TTree":
        return [int(x) for x in tree.common_entry_offsets()]
    starts = [int(c.num_first_entry) for c in tree.cluster_summaries]
    return sorted({*starts, int(tree.num_entries)})


def plan_work(paths: Iterable[str | Path], chunk_entries: int = DEFAULT_CHUNK,
              partition_entries: int | None = None, tree_name: str = TREE) -> list[WorkItem]:
    """Work items over all files: each file's chunks grouped into items of about `partition_entries`."""
    items: list[WorkItem] = []
    for path in paths:
        with uproot.open(path) as file:
            offsets = entry_offsets(open_tree(file, tree_name, str(path)))
        items.extend(file_work_items(str(path), offsets, chunk_entries, partition_entries))
    return items


def file_work_items(path: str, offsets: Sequence[int], chunk_entries: int, partition_entries: int | None) -> list[WorkItem]:
    """One file's work items: its chunks (on `offsets`, basket or cluster starts) grouped about `partition_entries`
    at a time (the reduction and the processor runner cut files the same way)."""
    bounds = chunk_boundaries(offsets, chunk_entries)
    per_item = max(1, (partition_entries or chunk_entries * 5) // chunk_entries)
    return [WorkItem(path, tuple(bounds[k:k + per_item + 1])) for k in range(0, max(len(bounds) - 1, 1), per_item)]


def _flat(array: ak.Array) -> tuple[np.ndarray, np.ndarray]:
    """(offsets starting at 0, content) of a jagged array of numbers, without copies where possible."""
    layout = ak.to_layout(array)
    if isinstance(layout, ak.contents.ListOffsetArray) and isinstance(layout.content, ak.contents.NumpyArray):
        offsets = np.asarray(layout.offsets.data).astype(np.int64, copy=False)
        content = np.asarray(layout.content.data)[offsets[0]:offsets[-1]]
        return (offsets - offsets[0] if offsets[0] else offsets), content
    counts = ak.to_numpy(ak.num(array, axis=1)).astype(np.int64)
    return np.concatenate([[0], np.cumsum(counts)]), ak.to_numpy(ak.flatten(array, axis=1))


def _read(tree: Any, names: Sequence[str], start: int, stop: int) -> dict[str, ak.Array]:
    return tree.arrays(list(names), entry_start=start, entry_stop=stop, library="ak", how=dict)


def read_muons(tree: Any, start: int, stop: int, xp: Any = np) -> Muons:
    arrays = _read(tree, MUON_BRANCHES, start, stop)
    offsets, pt = _flat(arrays.pop("Muon_pt"))
    rest = [_flat(arrays.pop(name))[1] for name in MUON_BRANCHES[1:]]
    return Muons(*(xp.asarray(x) for x in (offsets, pt, *rest)))


def read_jets(tree: Any, start: int, stop: int, xp: Any = np) -> tuple[Any, Any]:
    offsets, pt = _flat(_read(tree, ["Jet_pt"], start, stop)["Jet_pt"])
    return xp.asarray(offsets), xp.asarray(pt)


def read_met(tree: Any, start: int, stop: int, xp: Any = np) -> Any:
    return xp.asarray(ak.to_numpy(_read(tree, ["MET_pt"], start, stop)["MET_pt"]))


def read_chunk(tree: Any, start: int, stop: int, xp: Any = np) -> FlatChunk:
    """One chunk of every branch the selection needs, as flat columns (numpy, or CuPy with xp=cupy)."""
    return FlatChunk(read_muons(tree, start, stop, xp), *read_jets(tree, start, stop, xp), read_met(tree, start, stop, xp))


@dataclass(frozen=True)
class ReadPlan:
    """What every task reads and computes: the schema, the queries that run, and the weight branch."""

    schema: Schema = field(default_factory=Schema)
    queries: tuple[str, ...] = tuple(QUERIES)
    weight: str | None = None

    def needs(self, obj: str) -> bool:
        return any(obj in QUERIES[q] for q in self.queries)


NANOAOD_PLAN = ReadPlan()


def _column(tree: Any, branch: Branch, start: int, stop: int) -> tuple[np.ndarray | None, np.ndarray]:
    """(offsets or None for a per-event scalar, flat content) of one mapped field. A list of scalar branches
    is a collection of fixed size: object k of event i is branch k's value in event i."""
    if isinstance(branch, str):
        array = _read(tree, [branch], start, stop)[branch]
        if array.ndim == 1:
            return None, ak.to_numpy(array)
        return _flat(array)
    columns = [ak.to_numpy(_read(tree, [name], start, stop)[name]) for name in branch]
    n = stop - start
    return np.arange(n + 1, dtype=np.int64) * len(branch), np.stack(columns, axis=1).reshape(-1)


def _transverse(tree: Any, mapping: dict[str, Branch] | Any, start: int, stop: int, xp: Any) -> tuple[Any, Any]:
    """(offsets or None, pt) of a jet collection or of MET, from `pt` or from (px, py): pt = sqrt(px^2 + py^2)."""
    if "pt" in mapping:
        offsets, pt = _column(tree, mapping["pt"], start, stop)
        return (None if offsets is None else xp.asarray(offsets)), xp.asarray(pt)
    offsets, px = _column(tree, mapping["px"], start, stop)
    px = xp.asarray(px).astype(xp.float64)
    py = xp.asarray(_column(tree, mapping["py"], start, stop)[1]).astype(xp.float64)
    return (None if offsets is None else xp.asarray(offsets)), xp.sqrt(px * px + py * py)


def reduce_chunk(tree: Any, start: int, stop: int, xp: Any = np, plan: ReadPlan = NANOAOD_PLAN) -> dict[str, Any]:
    """`select` on one chunk, reading one branch at a time (muon columns are reduced to their values at
    the pair ends as they come), so only one branch of one chunk is alive at once, plus per-pair and
    per-event arrays: the peak memory is a fraction of the chunk's. Reads only what `plan.queries` need."""
    schema = plan.schema
    muons = None
    if plan.needs("muon"):
        offsets, charge = _column(tree, schema.muon["charge"], start, stop)
        if offsets is None:
            raise SchemaError(f"muon charge branch {schema.muon['charge']!r} is a per-event scalar; map a collection "
                              "or a list of scalar branches")
        first = {"charge": xp.asarray(charge)}

        def column(name: str) -> Any:
            if name in first:
                return first.pop(name)
            return xp.asarray(_column(tree, schema.muon[name], start, stop)[1])

        muons = select_muons(column, xp.asarray(offsets), stop - start, xp, schema.muon_form())
    two_jets = select_jets(*_transverse(tree, schema.jet, start, stop, xp), xp) if "met_2jets40" in plan.queries else None
    met = _transverse(tree, schema.met, start, stop, xp)[1] if plan.needs("met") else None
    weights = None
    if plan.weight is not None:
        weights = xp.asarray(ak.to_numpy(_read(tree, [plan.weight], start, stop)[plan.weight])).astype(xp.float64)
    return fill(muons, two_jets, met, xp, n_events=stop - start, weights=weights)


def output_names(queries: Sequence[str] = tuple(QUERIES)) -> set[str]:
    """The histograms and counts the given queries produce, plus the event count."""
    return {"events", *(name for q in queries for name in QUERY_OUTPUTS[q])}


def empty_counts(queries: Sequence[str] = tuple(QUERIES), weighted: bool = False) -> dict[str, np.ndarray]:
    """The zero result: every histogram (flow bins included) and every selected count of the queries, and
    with `weighted` their float64 sums of weights and of squared weights."""
    wanted = output_names(queries)
    sizes = {spec.name: spec.bins + 2 for spec in HISTOGRAMS} | {name: 1 for name in COUNT_NAMES}
    counts: dict[str, np.ndarray] = {}
    for name, size in sizes.items():
        if name in wanted:
            counts[name] = np.zeros(size, dtype=np.int64)
            if weighted:
                counts[name + SUMW] = np.zeros(size, dtype=np.float64)
                counts[name + SUMW2] = np.zeros(size, dtype=np.float64)
    return counts


def merge_counts(total: dict[str, np.ndarray], part: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Add `part` into `total` in place (integer sums: exact, order-independent)."""
    for name, values in part.items():
        total[name] += values
    return total


_ALLOCATOR_TUNED = False
MMAP_THRESHOLD = 32 << 20  # glibc's maximum
TRIM_THRESHOLD = 64 << 20


def tune_allocator() -> None:
    """Undo the effect of MALLOC_TRIM_THRESHOLD_ (which Dask's nanny sets to 64 KiB for its workers).

    Why: with that variable glibc stops adapting its mmap threshold, so every temporary array above 128 KiB
    is a fresh mmap that is page-faulted in and unmapped again; this kernel makes dozens per chunk and ran
    2-3x slower in Dask workers than in a plain process. Serving them from the heap and returning memory
    to the system only beyond 64 MiB of free space restores plain-process speed; memory stays bounded (the
    free space kept is at most what the previous chunk used). Only when the variable is set, only on glibc.
    """
    global _ALLOCATOR_TUNED
    if _ALLOCATOR_TUNED or "MALLOC_TRIM_THRESHOLD_" not in os.environ:
        return
    _ALLOCATOR_TUNED = True
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, MMAP_THRESHOLD)  # M_MMAP_THRESHOLD
        libc.mallopt(-1, TRIM_THRESHOLD)  # M_TRIM_THRESHOLD
    except (OSError, AttributeError):
        pass  # not glibc: nothing to undo


def reduce_item(item: WorkItem, device: str = "cpu", plan: ReadPlan = NANOAOD_PLAN) -> dict[str, np.ndarray]:
    """Counts (and weighted sums) of one work item, reading one chunk at a time; runs in a Dask task or in-process."""
    tune_allocator()
    xp = array_module(device)
    total = {name: xp.asarray(values) for name, values in empty_counts(plan.queries, plan.weight is not None).items()}
    with uproot.open(item.path, array_cache=None) as file:  # no cache: each chunk is read once
        tree = open_tree(file, plan.schema.tree, item.path)
        for start, stop in item.chunks():
            part = reduce_chunk(tree, start, stop, xp, plan)
            for name, values in part.items():
                total[name] += values
    return {name: to_host(values).astype(np.float64 if name.endswith((SUMW, SUMW2)) else np.int64)
            for name, values in total.items()}


@dataclass
class Reduction:
    """The merged result of a reduction, plus how it was obtained (for the summary)."""

    counts: dict[str, np.ndarray]
    files: list[str]
    work_items: int
    chunk_entries: int
    device: str
    truth: dict[str, int] = field(default_factory=dict)
    queries: tuple[str, ...] = tuple(QUERIES)
    skipped: dict[str, str] = field(default_factory=dict)  # query -> which files lack which branches
    weight: str | None = None  # the weight branch; None: unweighted

    def selected(self) -> dict[str, int]:
        return {name: int(self.counts[name][0]) for name in COUNT_NAMES if name in self.counts}

    def weighted(self) -> dict[str, tuple[float, float]]:
        """Selected counts as (sum of weights, sum of squared weights); empty when unweighted."""
        return {name: (float(self.counts[name + SUMW][0]), float(self.counts[name + SUMW2][0]))
                for name in COUNT_NAMES if name + SUMW in self.counts}


def _gpu_workers(client: Any, resource: str) -> list[str]:
    """Addresses of the workers that advertise `resource` (all workers, not only the first few)."""
    try:
        workers = client.scheduler_info(n_workers=-1)["workers"]
    except TypeError:  # distributed before 2025.4 lists every worker by default
        workers = client.scheduler_info()["workers"]
    return [address for address, info in workers.items() if info.get("resources", {}).get(resource, 0) > 0]


def _threads(client: Any) -> int:
    return max(1, sum(client.nthreads().values()))


def auto_partition(total_entries: int, chunk_entries: int, slots: int) -> int:
    """About four work items per worker thread (load balance), each 1 to 10 chunks long."""
    target = math.ceil(total_entries / max(1, 4 * slots))
    return min(10 * chunk_entries, max(chunk_entries, math.ceil(target / chunk_entries) * chunk_entries))


@dataclass(frozen=True)
class FileInfo:
    path: str
    entries: int
    offsets: tuple[int, ...]
    branches: frozenset[str]


def inspect_files(paths: Sequence[str], tree_name: str) -> list[FileInfo]:
    """Entries, chunk boundaries and branch names of every file (opened once each, headers only)."""
    infos = []
    for path in paths:
        with uproot.open(path) as file:
            tree = open_tree(file, tree_name, path)
            infos.append(FileInfo(path, int(tree.num_entries), tuple(entry_offsets(tree)), frozenset(tree.keys())))
    return infos


def reduce_files(paths: str | Path | Sequence[str | Path], *, schema: Schema | None = None,
                 chunk_entries: int = DEFAULT_CHUNK, partition_entries: int | None = None, device: str = "cpu",
                 client: Any = None) -> Reduction:
    """Reduce ROOT files (TTree or RNTuple, laid out as `schema` says; default NanoAOD) to histograms and
    counts, in this process (client=None) or over Dask. `paths`: files, file lists and globs (expand_paths).

    Queries whose branches some file lacks are skipped (logged once, listed in `Reduction.skipped`); if none
    can run, SchemaError. With a weight branch every count also gets its sum of weights and of squares.
    With device="gpu" every task runs with CuPy, on workers advertising the GPU resource
    (PORTAFLOW_DASK_GPU_RESOURCE); if no worker does, or CuPy/CUDA fails there, GPUUnavailableError.
    """
    check_device(device)
    schema = schema or Schema()
    paths = expand_paths(paths)
    if not paths:
        raise ValueError("no input files to reduce")
    infos = inspect_files(paths, schema.tree)
    resolution: Resolution = resolve(schema, {info.path: info.branches for info in infos})
    if not resolution.queries:
        raise SchemaError("no query can run: " + skipped_message(resolution.skipped))
    if resolution.skipped:
        log.warning("%s", skipped_message(resolution.skipped))
    plan = ReadPlan(schema, resolution.queries, resolution.weight)
    slots = _threads(client) if client is not None else 1
    if partition_entries is None:
        partition_entries = auto_partition(sum(info.entries for info in infos), chunk_entries, slots)
    items = [item for info in infos for item in file_work_items(info.path, info.offsets, chunk_entries, partition_entries)]
    parts: list[dict[str, np.ndarray] | None] = [None] * len(items)
    if client is None:
        if device == "gpu":
            array_module("gpu")  # fail before reading anything
        for k, item in enumerate(items):
            parts[k] = reduce_item(item, device, plan)
    else:
        from distributed import as_completed

        options: dict[str, Any] = {"pure": False}
        if device == "gpu":
            resource = gpu_resource_name()
            if not _gpu_workers(client, resource):
                raise GPUUnavailableError(f"device 'gpu' was requested but no Dask worker advertises the resource "
                                          f"{resource!r} (PORTAFLOW_DASK_GPU_RESOURCE); ask the site profile for GPU workers")
            options["resources"] = {resource: 1}
        futures = [client.submit(reduce_item, item, device, plan, **options) for item in items]
        index = {future.key: k for k, future in enumerate(futures)}
        try:
            for future in as_completed(futures):
                parts[index[future.key]] = future.result()
                future.release()
        except BaseException:
            client.cancel(futures)  # one failed task fails the reduction; stop the others now
            raise
    # Merged in work-item order, not completion order: integer counts would not care, but float sums of
    # weights then come out bit-identical however the tasks were scheduled.
    total = empty_counts(plan.queries, plan.weight is not None)
    for item, part in zip(items, parts, strict=True):
        if part is None:
            raise RuntimeError(f"work item {item} returned no result")
        merge_counts(total, part)
    truth: dict[str, int] = {}
    for path in paths:
        try:
            file_truth = read_truth(path)
        except (KeyError, OSError, ValueError):
            truth = {}
            break
        for name in ("events", "signal_events", "signal_in_window", "muons", "jets"):
            truth[name] = truth.get(name, 0) + int(file_truth[name])
    return Reduction(total, paths, len(items), chunk_entries, device, truth, plan.queries, resolution.skipped,
                     plan.weight)
