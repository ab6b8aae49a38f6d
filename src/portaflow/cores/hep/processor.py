"""Processor-style analysis: a user's function over chunks of events, several samples, normalisation.

A *processor* is a plain function `process(events, context) -> {name: hist.Hist}` (coffea's
`ProcessorABC.process`, without the class): `events` is an awkward record array of one chunk of one file with
the branches it asked for, `context` (ChunkContext) says which sample, whether it is data, the per-event weights
and the processor's own args. portaflow runs it exactly as its own queries run: one Dask task per work item (a
file and a range of entries on basket/cluster boundaries), the item read one chunk at a time, so a task holds one
chunk of events plus its histograms. Results are added in work-item order (not completion order), so any number
of workers gives bit-identical float sums for a given chunking.

Samples and normalisation (docs/cores/hep.md, "Samples and normalisation"):
- a data sample is unweighted (weight 1) and never scaled;
- a simulated sample's events carry the weight branch (`genWeight`, with its sign); its sum of generator weights
  (the denominator of the normalisation) is, in this order: the `sumw` the workflow gives; else, when every file
  has a NanoAOD `Runs` tree with `genEventSumw` (or `genEventSumw_`, the older NanoAOD name), the sum of that
  branch over the files' Runs entries: the sum over every *produced* event, which a skim's own events understate;
  else the sum over every event of its files (negative ones included), read in the same pass. Which one was used
  is reported (`sumw_source`);
- each simulated histogram is scaled by cross-section [pb] x luminosity [pb^-1] / sum of weights (values by the
  factor, variances by its square), then every histogram gets a `sample` category axis in front.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import awkward as ak
import hist
import numpy as np
import uproot

from portaflow.cores.hep.reduce import DEFAULT_CHUNK, WorkItem, auto_partition, file_work_items, inspect_files, open_tree, tune_allocator
from portaflow.cores.hep.schema import SchemaError, expand_paths

log = logging.getLogger(__name__)

RUNS_SUMW_BRANCHES = ("genEventSumw", "genEventSumw_")
"""NanoAOD's per-run sum of generator weights over the produced events, in the `Runs` tree (older NanoAOD
versions spell it with a trailing underscore)."""

Processor = Callable[[ak.Array, "ChunkContext"], Mapping[str, hist.Hist]]


@dataclass(frozen=True)
class Sample:
    """One dataset: its files, data or simulation, and what normalises it.

    `xsec`: cross-section in pb (simulation); `weight`: the per-event generator weight branch of simulation
    ("genWeight" in NanoAOD; None: every event weighs 1); `sumw`: the sum of generator weights to normalise by
    (None: the Runs trees' genEventSumw when every file has one, else the sum over the events of `files`)."""

    name: str
    files: tuple[str, ...]
    is_data: bool = False
    xsec: float | None = None
    weight: str | None = "genWeight"
    sumw: float | None = None

    @classmethod
    def from_args(cls, name: str, value: Any) -> Sample:
        """From a workflow's `samples:` entry: {files, kind: data|mc, xsec, weight, sumw}."""
        if not isinstance(value, Mapping):
            raise SchemaError(f"samples.{name}: a mapping with files, kind, xsec, weight, sumw; got {value!r}")
        unknown = sorted(set(value) - {"files", "kind", "xsec", "weight", "sumw"})
        if unknown:
            raise SchemaError(f"samples.{name}: unknown keys {unknown}; allowed: files, kind, xsec, weight, sumw")
        kind = value.get("kind", "mc")
        if kind not in ("data", "mc"):
            raise SchemaError(f"samples.{name}.kind: 'data' or 'mc', got {kind!r}")
        files = value.get("files")
        if not files:
            raise SchemaError(f"samples.{name}.files: a path, file list or glob (or a list of them) is required")
        if kind == "data":
            if any(key in value for key in ("xsec", "sumw")):
                raise SchemaError(f"samples.{name}: a data sample takes no xsec or sumw (data is never scaled)")
            return cls(name, tuple(expand_paths(files)), is_data=True, weight=None)
        if "xsec" not in value:
            raise SchemaError(f"samples.{name}.xsec: the cross-section in pb is required for a simulated sample")
        weight = value.get("weight", "genWeight")
        return cls(name, tuple(expand_paths(files)), is_data=False, xsec=float(value["xsec"]),
                   weight=None if weight in (None, "none") else str(weight),
                   sumw=None if value.get("sumw") is None else float(value["sumw"]))


@dataclass(frozen=True)
class ChunkContext:
    """What a processor knows about its chunk besides the events."""

    sample: str
    is_data: bool
    weight: np.ndarray  # float64, one per event: the generator weight (simulation) or 1 (data)
    path: str
    entry_start: int
    entry_stop: int
    args: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ProcessorSpec:
    """The function (by 'module:function' name, imported in the worker), the branches it reads and its args."""

    function: str
    branches: tuple[str, ...] | None = None  # None: every branch of the tree
    args: Mapping[str, Any] = field(default_factory=dict)
    tree: str = "Events"
    mc_branches: tuple[str, ...] = ()  # read for simulation only (weight variations data does not have)

    def reads(self, sample: Sample) -> list[str] | None:
        if self.branches is None:
            return None
        return list(self.branches) + ([b for b in self.mc_branches if b not in self.branches] if not sample.is_data else [])

    def load(self) -> Processor:
        return load_function(self.function)


def load_function(name: str) -> Processor:
    """`package.module:function` -> the function; a clear error otherwise."""
    module_name, _, attr = name.partition(":")
    if not module_name or not attr:
        raise SchemaError(f"processor {name!r}: expected 'package.module:function'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise SchemaError(f"processor {name!r}: cannot import {module_name}: {exc}") from exc
    function = getattr(module, attr, None)
    if not callable(function):
        raise SchemaError(f"processor {name!r}: {module_name} has no function {attr!r}")
    return function


@dataclass
class SampleResult:
    """One sample's merged histograms (unscaled), events read, sum of weights and negative-weight events."""

    histograms: dict[str, hist.Hist]
    events: int = 0
    sumw: float = 0.0
    negative: int = 0
    sumw_used: float | None = None  # the normalisation's denominator (simulation), see choose_sumw
    sumw_source: str | None = None  # 'sumw argument', 'Runs/genEventSumw[_]' or 'events'


def add_into(total: dict[str, hist.Hist], part: Mapping[str, hist.Hist], where: str) -> None:
    for name, h in part.items():
        if not isinstance(h, hist.Hist):
            raise TypeError(f"{where}: the processor returned {type(h).__name__} for {name!r}; expected hist.Hist")
        total[name] = h.copy() if name not in total else total[name] + h


def process_item(item: WorkItem, sample: Sample, spec: ProcessorSpec) -> SampleResult:
    """Run the processor over one work item, one chunk at a time (a Dask task, or in-process)."""
    tune_allocator()
    function = spec.load()
    result = SampleResult({})
    with uproot.open(item.path, array_cache=None) as file:
        tree = open_tree(file, spec.tree, item.path)
        branches = spec.reads(sample)
        if branches is not None and sample.weight is not None and sample.weight not in branches:
            branches = [*branches, sample.weight]  # one read per chunk; the weight is also in `events`
        for start, stop in item.chunks():
            events = tree.arrays(branches, entry_start=start, entry_stop=stop, library="ak")
            if sample.weight is not None:
                weight = ak.to_numpy(events[sample.weight]).astype(np.float64)
            else:
                weight = np.ones(stop - start, dtype=np.float64)
            context = ChunkContext(sample.name, sample.is_data, weight, item.path, start, stop, spec.args)
            add_into(result.histograms, function(events, context), f"{item.path}[{start}:{stop}]")
            result.events += stop - start
            result.sumw += float(weight.sum())
            result.negative += int((weight < 0).sum())
            del events
    return result


@dataclass
class ProcessorRun:
    """Every sample's result, and the normalised histograms with a `sample` axis."""

    samples: dict[str, SampleResult]
    scale: dict[str, float]  # sample -> factor applied (1 for data)
    histograms: dict[str, hist.Hist]
    luminosity: float | None
    files: dict[str, list[str]]

    def summary(self) -> dict[str, Any]:
        return {name: {"events": r.events, "sumw": r.sumw, "negative_weight_events": r.negative,
                       "scale": self.scale[name]}
                | ({"sumw_used": r.sumw_used, "sumw_source": r.sumw_source} if r.sumw_source else {})
                for name, r in self.samples.items()}


def runs_sumw(paths: Sequence[str]) -> tuple[float, str] | None:
    """(sum of `Runs/genEventSumw` over every file's Runs entries, 'Runs/<branch>') when every file has it;
    None otherwise (a file without it is logged: a sample is normalised by one rule, never half by each).

    Why: a NanoAOD file (or a skim of it) keeps in its Runs tree the sum of generator weights of every event
    *produced*, before any filter or skim; that, not the sum over the events the file kept, is the denominator of
    xsec x luminosity / sum of weights."""
    total, names = 0.0, set()
    for path in paths:
        with uproot.open(path) as file:
            runs = file["Runs"] if "Runs" in file else None
            branch = None if runs is None else next((b for b in RUNS_SUMW_BRANCHES if b in runs.keys()), None)
            if branch is None:
                log.info("%s has no Runs/genEventSumw: normalising by the sum of weights over the events", path)
                return None
            total += float(np.sum(runs[branch].array(library="np"), dtype=np.float64))
            names.add(f"Runs/{branch}")
    return (total, " + ".join(sorted(names))) if names else None


def normalisation(sample: Sample, result: SampleResult, luminosity: float | None) -> float:
    """cross-section x luminosity / sum of generator weights (1 for data); the sum is result.sumw_used."""
    if sample.is_data:
        return 1.0
    if luminosity is None:
        raise SchemaError(f"sample {sample.name}: simulation needs a luminosity (pb^-1) to be normalised")
    sumw = result.sumw_used if result.sumw_used is not None else result.sumw
    if sumw == 0:
        raise SchemaError(f"sample {sample.name}: its sum of generator weights is 0; cannot normalise")
    return float(sample.xsec) * float(luminosity) / sumw


def choose_sumw(sample: Sample, result: SampleResult) -> None:
    """Set the denominator of a simulated sample and say where it came from: the workflow's `sumw`, else the
    Runs tree's genEventSumw (every file has it), else the sum over the events read."""
    if sample.is_data:
        return
    if sample.sumw is not None:
        result.sumw_used, result.sumw_source = sample.sumw, "sumw argument"
        return
    from_runs = runs_sumw(sample.files) if sample.weight is not None else None
    if from_runs is not None:
        result.sumw_used, result.sumw_source = from_runs
    else:
        result.sumw_used, result.sumw_source = result.sumw, "events"


def scaled(h: hist.Hist, factor: float) -> hist.Hist:
    """Values x factor, variances x factor^2 (Weight storage)."""
    out = h.copy()
    view = out.view(flow=True)
    view["value"] = view["value"] * factor
    view["variance"] = view["variance"] * factor * factor
    return out


def with_sample_axis(per_sample: Mapping[str, Mapping[str, hist.Hist]], order: Sequence[str]) -> dict[str, hist.Hist]:
    """One hist per name with a leading `sample` category axis (a sample that produced no such hist stays 0)."""
    names: list[str] = []
    for name in order:
        names += [n for n in per_sample[name] if n not in names]
    out = {}
    for name in names:
        template = next(per_sample[s][name] for s in order if name in per_sample[s])
        if template.storage_type is not hist.storage.Weight:
            raise TypeError(f"histogram {name!r}: use hist.storage.Weight() (sums of weights and their variances)")
        combined = hist.Hist(hist.axis.StrCategory(list(order), name="dataset"), *template.axes,
                             storage=hist.storage.Weight(), name=name, label=template.label)
        view = combined.view(flow=True)
        for k, sample in enumerate(order):
            if name in per_sample[sample]:
                view[k] = per_sample[sample][name].view(flow=True)
        out[name] = combined
    return out


def run_processor(samples: Sequence[Sample], spec: ProcessorSpec, *, luminosity: float | None = None,
                  chunk_entries: int = DEFAULT_CHUNK, partition_entries: int | None = None,
                  client: Any = None) -> ProcessorRun:
    """Run `spec`'s function over every sample's files, in this process (client=None) or over Dask, merge per
    sample in work-item order, normalise simulation and stack the samples on a `sample` axis."""
    if not samples:
        raise SchemaError("no samples to process")
    if len({s.name for s in samples}) != len(samples):
        raise SchemaError("sample names must be unique")
    spec.load()  # fail before reading anything
    slots = max(1, sum(client.nthreads().values())) if client is not None else 1
    jobs: list[tuple[Sample, WorkItem]] = []
    infos_by_sample = {}
    for sample in samples:
        infos = inspect_files(list(sample.files), spec.tree)
        needed = set(spec.reads(sample) or ()) | ({sample.weight} if sample.weight else set())
        for info in infos:
            lacking = sorted(needed - info.branches)
            if lacking:
                raise SchemaError(f"sample {sample.name}: {info.path} lacks {', '.join(lacking)}"
                                  + (" (data samples are unweighted: kind: data)" if sample.weight in lacking else ""))
        infos_by_sample[sample.name] = infos
    total_entries = sum(i.entries for infos in infos_by_sample.values() for i in infos)
    partition = partition_entries or auto_partition(total_entries, chunk_entries, slots)
    for sample in samples:
        for info in infos_by_sample[sample.name]:
            jobs.extend((sample, item) for item in file_work_items(info.path, info.offsets, chunk_entries, partition))
    if client is None:
        parts = [process_item(item, sample, spec) for sample, item in jobs]
    else:
        futures = [client.submit(process_item, item, sample, spec, pure=False) for sample, item in jobs]
        try:
            parts = client.gather(futures)
        except BaseException:
            client.cancel(futures)
            raise
    results = {sample.name: SampleResult({}) for sample in samples}
    for (sample, item), part in zip(jobs, parts, strict=True):
        total = results[sample.name]
        add_into(total.histograms, part.histograms, item.path)
        total.events += part.events
        total.sumw += part.sumw
        total.negative += part.negative
    for s in samples:
        choose_sumw(s, results[s.name])
    scale = {s.name: normalisation(s, results[s.name], luminosity) for s in samples}
    per_sample = {s.name: {n: scaled(h, scale[s.name]) for n, h in results[s.name].histograms.items()} for s in samples}
    for s in samples:
        r = results[s.name]
        log.info("sample %s: %d events, sum of weights %.6g (%d negative), normalised by %s %.6g, scale %.6g", s.name,
                 r.events, r.sumw, r.negative, r.sumw_source or "nothing (data)", r.sumw_used or 0.0, scale[s.name])
    return ProcessorRun(results, scale, with_sample_axis(per_sample, [s.name for s in samples]), luminosity,
                        {s.name: list(s.files) for s in samples})
