#!/usr/bin/env python
"""HEP reduction benchmark: portaflow's Dask reduction vs plain uproot+awkward, N plain processes, the
read-only rate and coffea, on the same generated NanoAOD-like files, in one run.

    python benchmarks/hep_reduction.py            # bench size: 4M events per compression (zlib-1, lz4-1)
    python benchmarks/hep_reduction.py --small    # 400k events per compression, a quick check
    python benchmarks/hep_reduction.py --keep /tmp/hep_data   # keep (and later reuse) the generated files
    python benchmarks/hep_reduction.py --compressions "" --rss-sweep ""   # only the weighted multi-sample query

Why each measurement runs in a fresh (spawned) process: peak RSS is the high-water mark of a process, so
every variant gets its own process, and RSS is reported as peak minus that process's RSS right after its
imports (the post-import baseline). For Dask the processes are the workers (peak and baseline taken on
every worker with client.run). Times exclude process/cluster start-up and imports: each variant starts its
clock when its processes are ready (a barrier for the N plain processes), so rates compare throughput.
The page cache is warmed first (every file read once), so rates are for warm data, as in the reference.
All variants must find the same selected counts; the script stops if they do not.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import resource
import shutil
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

WARMUP = os.environ.get("HEP_BENCH_WARMUP", "")  # a 2000-event file, set by main() (children inherit it)
BRANCHES = ["Muon_pt", "Muon_eta", "Muon_phi", "Muon_mass", "Muon_charge", "Jet_pt", "MET_pt"]
CHECKED = ("events", "os_pairs", "events_2jets40", "events_zmumu")


# ---------------------------------------------------------------- memory helpers (run in every process)

def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_mib() -> float:
    """VmHWM, the peak RSS of this process's own memory map. Not getrusage's ru_maxrss: Linux carries
    that across fork + exec, so a spawned child would report its parent's size at spawn time."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def import_all() -> None:
    """The libraries every variant needs, imported before the baseline RSS is taken."""
    import zlib  # noqa: F401

    import awkward  # noqa: F401
    import hist  # noqa: F401
    import lz4.block  # noqa: F401  (uproot imports its decompressors on first use)
    import numpy  # noqa: F401
    import uproot  # noqa: F401
    import xxhash  # noqa: F401

    import portaflow.cores.hep.reduce  # noqa: F401


# ---------------------------------------------------------------- data

def generate_one(path: str, events: int, index: int, compression: str) -> int:
    from portaflow.cores.hep.generate import GeneratorConfig, write_events_file

    write_events_file(path, GeneratorConfig(events=events, seed=2024, file_index=index), compression=compression)
    return events


def make_dataset(folder: Path, compression: str, events: int, files: int, procs: int) -> list[str]:
    per_file = events // files
    paths = [str(folder / f"{compression.split(':')[0]}_{i}.root") for i in range(files)]  # not warmup.root
    with ProcessPoolExecutor(procs, mp_context=mp.get_context("spawn")) as pool:
        list(pool.map(generate_one, paths, [per_file] * files, range(files), [compression] * files))
    return paths


def warm_cache(paths: list[str]) -> None:
    for path in paths:
        with open(path, "rb") as f:
            while f.read(1 << 24):
                pass


# ---------------------------------------------------------------- the query, written as a user would

def plain_awkward(paths: list[str], chunk: int) -> dict[str, int]:
    """Plain uproot.iterate + awkward + hist, the same query as portaflow's (all five histograms)."""
    import awkward as ak
    import hist
    import numpy as np
    import uproot

    mass_h = hist.Hist.new.Reg(150, 0, 150).Int64()
    fine_h = hist.Hist.new.Reg(160, 70, 110).Int64()
    met_h = {name: hist.Hist.new.Reg(100, 0, 200).Int64() for name in ("all", "jets", "z")}
    counts = dict.fromkeys(CHECKED, 0)
    for arrays in uproot.iterate([{p: "Events"} for p in paths], BRANCHES, step_size=chunk, library="ak"):
        muons = ak.zip({k: ak.values_astype(arrays[f"Muon_{k}"], np.float64) for k in ("pt", "eta", "phi", "mass")}
                       | {"charge": arrays["Muon_charge"]})
        pairs = ak.combinations(muons, 2, fields=["a", "b"])
        pairs = pairs[pairs.a.charge * pairs.b.charge < 0]
        px = pairs.a.pt * np.cos(pairs.a.phi) + pairs.b.pt * np.cos(pairs.b.phi)
        py = pairs.a.pt * np.sin(pairs.a.phi) + pairs.b.pt * np.sin(pairs.b.phi)
        pz = pairs.a.pt * np.sinh(pairs.a.eta) + pairs.b.pt * np.sinh(pairs.b.eta)
        energy = (np.sqrt((pairs.a.pt * np.cosh(pairs.a.eta)) ** 2 + pairs.a.mass**2)
                  + np.sqrt((pairs.b.pt * np.cosh(pairs.b.eta)) ** 2 + pairs.b.mass**2))
        mass = np.sqrt(np.maximum(energy**2 - px**2 - py**2 - pz**2, 0))
        flat = ak.to_numpy(ak.flatten(mass))
        mass_h.fill(flat)
        fine_h.fill(flat)
        has_z = ak.any((mass > 60) & (mass < 120), axis=1)
        two_jets = ak.sum(arrays["Jet_pt"] > 40, axis=1) >= 2
        met = ak.to_numpy(arrays["MET_pt"])
        met_h["all"].fill(met)
        met_h["jets"].fill(met[ak.to_numpy(two_jets)])
        met_h["z"].fill(met[ak.to_numpy(has_z)])
        counts["events"] += len(met)
        counts["os_pairs"] += len(flat)
        counts["events_2jets40"] += int(ak.sum(two_jets))
        counts["events_zmumu"] += int(ak.sum(has_z))
    return counts


def read_only(paths: list[str], chunk: int) -> dict[str, int]:
    """Decompress and build the same arrays, nothing else: the I/O ceiling of any reduction."""
    import uproot

    events = 0
    for arrays in uproot.iterate([{p: "Events"} for p in paths], BRANCHES, step_size=chunk, library="ak", how=dict):
        events += len(arrays["MET_pt"])
    return {"events": events}


def portaflow_in_process(paths: list[str], chunk: int) -> dict[str, int]:
    from portaflow.cores.hep.reduce import reduce_files

    return reduce_files(paths, chunk_entries=chunk).selected()


# ---------------------------------------------------------------- measurement harness

def _measure_here(fn: Callable[..., dict[str, int]], paths: list[str], chunk: int, repeat: int,
                  barrier: Any = None) -> dict[str, Any]:
    """Run fn `repeat` times after the imports; (start, end) of every run, peak RSS over all of them."""
    import_all()
    fn([WARMUP], chunk)  # first use of every code path (lazy imports, kernel caches) before the baseline
    baseline = rss_mib()
    spans, counts = [], {}
    for _ in range(repeat):
        if barrier is not None:
            barrier.wait()
        start = time.time()
        counts = fn(paths, chunk)
        spans.append((start, time.time()))
    return {"counts": counts, "spans": spans, "rss_delta": peak_mib() - baseline, "baseline": baseline}


def in_process(name: str, fn: Callable[..., dict[str, int]], paths: list[str], chunk: int, repeat: int) -> dict[str, Any]:
    """One fresh process; the best of `repeat` runs (the machine is shared, the best run is the least disturbed)."""
    with ProcessPoolExecutor(1, mp_context=mp.get_context("spawn")) as pool:
        r = pool.submit(_measure_here, fn, paths, chunk, repeat).result()
    return {"name": name, "cores": 1, "seconds": min(end - start for start, end in r["spans"]), "counts": r["counts"],
            "rss_delta": r["rss_delta"], "baseline": r["baseline"]}


def _barrier_child(fn: Callable[..., dict[str, int]], paths: list[str], chunk: int, repeat: int, barrier: Any,
                   queue: Any) -> None:
    queue.put(_measure_here(fn, paths, chunk, repeat, barrier))


def n_processes(name: str, fn: Callable[..., dict[str, int]], paths: list[str], chunk: int, n: int,
                repeat: int) -> dict[str, Any]:
    """n spawned processes, files dealt round-robin; each run's clock goes from the barrier to the last finish."""
    ctx = mp.get_context("spawn")
    barrier, queue = ctx.Barrier(n), ctx.Queue()
    procs = [ctx.Process(target=_barrier_child, args=(fn, paths[i::n], chunk, repeat, barrier, queue)) for i in range(n)]
    for p in procs:
        p.start()
    results = [queue.get() for _ in procs]
    for p in procs:
        p.join()
    counts: dict[str, int] = {}
    for r in results:
        for k, v in r["counts"].items():
            counts[k] = counts.get(k, 0) + v
    seconds = min(max(r["spans"][k][1] for r in results) - min(r["spans"][k][0] for r in results) for k in range(repeat))
    return {"name": name, "cores": n, "seconds": seconds, "counts": counts, "rss_delta": max(r["rss_delta"] for r in results),
            "baseline": max(r["baseline"] for r in results)}


def _worker_rss() -> tuple[float, float]:
    return rss_mib(), peak_mib()


def _dask_child(paths: list[str], chunk: int, workers: int, coffea: bool, repeat: int) -> dict[str, Any]:
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0",
                      host="127.0.0.1", memory_limit="4GiB") as cluster, Client(cluster) as client:
        client.run(import_all)
        if coffea:
            client.run(_import_coffea)
            _import_coffea()
        # warm-up, as in _measure_here: every worker runs the code path once, then one distributed run
        client.run(coffea_iterative if coffea else portaflow_in_process, [WARMUP], chunk)
        (run_coffea if coffea else _portaflow_dask)([WARMUP], chunk, client)
        baseline = client.run(_worker_rss)
        seconds = []
        for _ in range(repeat):
            start = time.time()
            counts = run_coffea(paths, chunk, client) if coffea else _portaflow_dask(paths, chunk, client)
            seconds.append(time.time() - start)
        after = client.run(_worker_rss)
    delta = max(after[w][1] - baseline[w][0] for w in baseline)
    return {"counts": counts, "seconds": min(seconds), "rss_delta": delta, "baseline": max(b[0] for b in baseline.values())}


def _portaflow_dask(paths: list[str], chunk: int, client: Any) -> dict[str, int]:
    from portaflow.cores.hep.reduce import reduce_files

    return reduce_files(paths, chunk_entries=chunk, client=client).selected()


def on_dask(name: str, paths: list[str], chunk: int, workers: int, repeat: int, coffea: bool = False) -> dict[str, Any]:
    with ProcessPoolExecutor(1, mp_context=mp.get_context("spawn")) as pool:
        r = pool.submit(_dask_child, paths, chunk, workers, coffea, repeat).result()
    return {"name": name, "cores": workers, **r}


# ---------------------------------------------------------------- coffea (optional)

def _import_coffea() -> None:
    warnings.filterwarnings("ignore", message="Missing cross-reference")
    import coffea.processor  # noqa: F401


def _coffea_processor() -> Any:
    import awkward as ak
    import hist
    import numpy as np
    from coffea import processor

    class ZQuery(processor.ProcessorABC):
        """The same query, written the coffea way (NanoEvents, vector behaviours, hist)."""

        def process(self, events: Any) -> dict[str, Any]:
            warnings.filterwarnings("ignore", message="Missing cross-reference")
            pairs = ak.combinations(events.Muon, 2, fields=["a", "b"])
            pairs = pairs[pairs.a.charge * pairs.b.charge < 0]
            mass = (pairs.a + pairs.b).mass
            flat = ak.to_numpy(ak.flatten(mass))
            met = ak.to_numpy(events.MET.pt)
            has_z = ak.to_numpy(ak.any((mass > 60) & (mass < 120), axis=1))
            two_jets = ak.to_numpy(ak.sum(events.Jet.pt > 40, axis=1) >= 2)
            out = {"mass": hist.Hist.new.Reg(150, 0, 150).Int64().fill(flat),
                   "fine": hist.Hist.new.Reg(160, 70, 110).Int64().fill(flat),
                   "met_all": hist.Hist.new.Reg(100, 0, 200).Int64().fill(met),
                   "met_jets": hist.Hist.new.Reg(100, 0, 200).Int64().fill(met[two_jets]),
                   "met_z": hist.Hist.new.Reg(100, 0, 200).Int64().fill(met[has_z]),
                   "events": len(met), "os_pairs": len(flat), "events_2jets40": int(np.sum(two_jets)),
                   "events_zmumu": int(np.sum(has_z))}
            return out

        def postprocess(self, accumulator: Any) -> Any:
            return accumulator

    return ZQuery()


def run_coffea(paths: list[str], chunk: int, client: Any = None) -> dict[str, int]:
    from coffea import processor
    from coffea.nanoevents import NanoAODSchema

    executor = processor.DaskExecutor(client=client, status=False) if client is not None else processor.IterativeExecutor(status=False)
    runner = processor.Runner(executor, schema=NanoAODSchema, chunksize=chunk)
    out = runner({"bench": {"files": {p: "Events" for p in paths}}}, processor_instance=_coffea_processor(), treename="Events")
    return {k: int(out[k]) for k in CHECKED}


def coffea_iterative(paths: list[str], chunk: int) -> dict[str, int]:
    _import_coffea()
    return run_coffea(paths, chunk)


def coffea_available() -> str | None:
    try:
        import coffea

        return coffea.__version__
    except ImportError:
        return None


# ---------------------------------------------------------------- report

def chunk_mib(path: str, chunk: int) -> float:
    """In-memory size of one chunk of the 7 branches the query reads, as uproot returns them (contents + offsets)."""
    import awkward as ak
    import uproot

    with uproot.open(path) as f:
        arrays = f["Events"].arrays(BRANCHES, entry_stop=chunk, library="ak", how=dict)
    return sum(ak.to_layout(a).nbytes for a in arrays.values()) / 2**20


def reference_of(name: str, cores: int) -> str | None:
    """What each variant is compared with (the targets: portaflow 1 worker vs plain awkward in one
    process, portaflow N workers vs N plain processes)."""
    if name.startswith("read-only") or name == "plain awkward 1 proc":
        return None
    if name.startswith("plain awkward"):
        return "plain awkward 1 proc"
    return "plain awkward 1 proc" if cores == 1 else f"plain awkward {cores} procs"


def report(title: str, rows: list[dict[str, Any]], events: int, chunk_size_mib: float) -> list[str]:
    by_name = {r["name"]: r for r in rows}
    for r in rows:
        r["mhz"] = events / r["seconds"] / 1e6
    ceiling = by_name["read-only 1 proc"]["mhz"]
    lines = [f"### {title}", "",
             "| variant | cores | seconds | MHz | MHz/core | /core vs read-only | vs reference | peak RSS - baseline | / chunk |",
             "|---|---:|---:|---:|---:|---:|---|---:|---:|"]
    for r in rows:
        ref = reference_of(r["name"], r["cores"])
        vs = f"**{r['mhz'] / by_name[ref]['mhz']:.2f}x** {ref}" if ref in by_name else ""
        lines.append(f"| {r['name']} | {r['cores']} | {r['seconds']:.2f} | {r['mhz']:.2f} | {r['mhz'] / r['cores']:.2f} | "
                     f"{r['mhz'] / r['cores'] / ceiling:.2f} | {vs} | {r['rss_delta']:.0f} MiB | "
                     f"{r['rss_delta'] / chunk_size_mib:.1f} |")
    lines += ["", f"One chunk ({{chunk}} entries) of the 7 branches read, in memory: {chunk_size_mib:.1f} MiB "
              f"(target: portaflow's peak RSS - baseline <= {2 * chunk_size_mib:.1f} MiB)."]
    return lines


def rss_sweep(paths: list[str], chunks: list[int]) -> list[str]:
    """portaflow on 1 Dask worker at several chunk sizes: RSS growth = fixed part + slope x chunk size."""
    import numpy as np

    points = []
    for chunk in chunks:
        r = on_dask("portaflow dask 1 worker", paths, chunk, 1, 1)
        points.append((chunk, chunk_mib(paths[0], chunk), r["rss_delta"]))
    slope, fixed = np.polyfit([p[1] for p in points], [p[2] for p in points], 1)
    lines = ["| chunk entries | chunk in memory | peak RSS - baseline (1 worker) | ratio |", "|---:|---:|---:|---:|"]
    lines += [f"| {c:,} | {m:.1f} MiB | {d:.0f} MiB | {d / m:.1f} |" for c, m, d in points]
    lines += ["", f"Least-squares line: RSS growth = {fixed:.1f} MiB + {slope:.2f} x chunk size."]
    return lines


# ---------------------------------------------------------------- the weighted multi-sample query (issue 18)
# Two simulated samples with signed genWeight, normalised to a luminosity (xsec x lumi / sum of weights); the
# histograms of ADL Q1 (MET) and Q5 (MET of events with an opposite-charge muon pair of 60-120 GeV), weighted,
# nominal only. A sample is the files whose name starts with it.

SAMPLE_XSEC = {"dy": 150.0, "other": 850.0}
SAMPLE_LUMI = 10.0


def generate_weighted(path: str, events: int, index: int, compression: str) -> int:
    from portaflow.cores.hep.generate import GeneratorConfig, write_events_file

    signal = 1.0 if Path(path).name.startswith("dy") else 0.0
    write_events_file(path, GeneratorConfig(events=events, seed=2025, file_index=index, signal_fraction=signal,
                                            background=signal == 0.0, gen_weight=True), compression=compression)
    return events


def make_samples(folder: Path, events: int, files: int, procs: int) -> list[str]:
    per_file = events // files
    paths = [str(folder / f"{name}_{i}.root") for name in SAMPLE_XSEC for i in range(files // 2)]
    with ProcessPoolExecutor(procs, mp_context=mp.get_context("spawn")) as pool:
        list(pool.map(generate_weighted, paths, [per_file] * len(paths), range(len(paths)), ["zlib:1"] * len(paths)))
    return paths


def _by_sample(paths: list[str]) -> dict[str, list[str]]:
    """Files by sample (their name's prefix); the harness's warm-up file stands for a weighted one, `warmup_dy.root`
    beside it (the shared warm-up file has no genWeight)."""
    paths = [str(Path(p).with_name("warmup_dy.root")) if p == WARMUP else p for p in paths]
    return {name: [p for p in paths if Path(p).name.startswith(name) or (name == "dy" and Path(p).name == "warmup_dy.root")]
            for name in SAMPLE_XSEC}


def plain_awkward_samples(paths: list[str], chunk: int) -> dict[str, float]:
    """uproot.iterate + awkward + hist (Weight storage), as a user would write it: weighted MET histograms,
    the sum of weights per sample, then the normalisation. Returns events, and the normalised yields."""
    import awkward as ak
    import hist
    import numpy as np
    import uproot

    out: dict[str, float] = {"events": 0, "met_yield": 0.0, "z_yield": 0.0}
    for name, files in _by_sample(paths).items():
        if not files:
            continue
        met_h, z_h = (hist.Hist.new.Reg(100, 0, 200).Weight() for _ in range(2))
        sumw = 0.0
        for a in uproot.iterate([{p: "Events"} for p in files], ["Muon_pt", "Muon_eta", "Muon_phi", "Muon_mass",
                                                                 "Muon_charge", "MET_pt", "genWeight"],
                                step_size=chunk, library="ak"):
            w = ak.to_numpy(a["genWeight"]).astype(np.float64)
            sumw += float(w.sum())
            muons = ak.zip({k: ak.values_astype(a[f"Muon_{k}"], np.float64) for k in ("pt", "eta", "phi", "mass")}
                           | {"charge": a["Muon_charge"]})
            pairs = ak.combinations(muons, 2, fields=["a", "b"])
            px = pairs.a.pt * np.cos(pairs.a.phi) + pairs.b.pt * np.cos(pairs.b.phi)
            py = pairs.a.pt * np.sin(pairs.a.phi) + pairs.b.pt * np.sin(pairs.b.phi)
            pz = pairs.a.pt * np.sinh(pairs.a.eta) + pairs.b.pt * np.sinh(pairs.b.eta)
            energy = (np.sqrt((pairs.a.pt * np.cosh(pairs.a.eta)) ** 2 + pairs.a.mass**2)
                      + np.sqrt((pairs.b.pt * np.cosh(pairs.b.eta)) ** 2 + pairs.b.mass**2))
            mass = np.sqrt(np.maximum(energy**2 - px**2 - py**2 - pz**2, 0))
            has_z = ak.to_numpy(ak.any((pairs.a.charge * pairs.b.charge < 0) & (mass > 60) & (mass < 120), axis=1))
            met = ak.to_numpy(a["MET_pt"])
            met_h.fill(met, weight=w)
            z_h.fill(met[has_z], weight=w[has_z])
            out["events"] += len(met)
        scale = SAMPLE_XSEC[name] * SAMPLE_LUMI / sumw
        out["met_yield"] += float(met_h.values().sum()) * scale
        out["z_yield"] += float(z_h.values().sum()) * scale
    return out


def _samples(paths: list[str]) -> list[Any]:
    from portaflow.cores.hep.processor import Sample

    return [Sample(name, tuple(files), xsec=xsec) for name, xsec in SAMPLE_XSEC.items()
            if (files := _by_sample(paths)[name])]


def _processor_yields(run: Any) -> dict[str, float]:
    met, z = run.histograms["met"], run.histograms["met_os_mumu"]
    return {"events": sum(r.events for r in run.samples.values()),
            "met_yield": float(met[{"systematic": "nominal"}].values().sum()),
            "z_yield": float(z[{"systematic": "nominal"}].values().sum())}


def portaflow_samples(paths: list[str], chunk: int, client: Any = None) -> dict[str, float]:
    from portaflow.cores.hep.processor import ProcessorSpec, run_processor

    spec = ProcessorSpec("portaflow.cores.hep.adl:process",
                         ("Muon_pt", "Muon_eta", "Muon_phi", "Muon_mass", "Muon_charge", "MET_pt"),
                         {"queries": ["q1", "q5"], "systematics": False})
    return _processor_yields(run_processor(_samples(paths), spec, luminosity=SAMPLE_LUMI, chunk_entries=chunk,
                                           client=client))


def _samples_dask_child(paths: list[str], chunk: int, workers: int, repeat: int, coffea: bool = False) -> dict[str, Any]:
    from distributed import Client, LocalCluster

    query = coffea_samples if coffea else portaflow_samples
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0",
                      host="127.0.0.1", memory_limit="4GiB") as cluster, Client(cluster) as client:
        client.run(_import_coffea if coffea else import_all)
        if not coffea:
            client.run(portaflow_samples, [WARMUP], chunk)  # warm-up: every worker runs every code path once
        query([WARMUP], chunk, client)
        seconds = []
        for _ in range(repeat):
            start = time.time()
            counts = query(paths, chunk, client)
            seconds.append(time.time() - start)
    return {"counts": counts, "seconds": min(seconds), "rss_delta": 0.0, "baseline": 0.0}


def samples_on_dask(name: str, paths: list[str], chunk: int, workers: int, repeat: int, coffea: bool = False) -> dict[str, Any]:
    with ProcessPoolExecutor(1, mp_context=mp.get_context("spawn")) as pool:
        r = pool.submit(_samples_dask_child, paths, chunk, workers, repeat, coffea).result()
    return {"name": name, "cores": workers, **r}


def _coffea_samples_processor() -> Any:
    import awkward as ak
    import hist
    import numpy as np
    from coffea import processor

    class WeightedSamples(processor.ProcessorABC):
        """The weighted multi-sample query the coffea way: one dataset per sample, NanoEvents' muon four-vectors,
        hist Weight storage, the sum of signed genWeight accumulated per dataset and the normalisation in
        postprocess (xsec x lumi / sum of weights), as coffea's own tutorials do."""

        def process(self, events: Any) -> dict[str, Any]:
            warnings.filterwarnings("ignore", message="Missing cross-reference")
            w = ak.to_numpy(events.genWeight).astype(np.float64)
            pairs = ak.combinations(events.Muon, 2, fields=["a", "b"])
            mass = (pairs.a + pairs.b).mass
            has_z = ak.to_numpy(ak.any((pairs.a.charge * pairs.b.charge < 0) & (mass > 60) & (mass < 120), axis=1))
            met = ak.to_numpy(events.MET.pt)
            name = events.metadata["dataset"]
            met_h, z_h = (hist.Hist.new.Reg(100, 0, 200).Weight() for _ in range(2))
            met_h.fill(met, weight=w)
            z_h.fill(met[has_z], weight=w[has_z])
            return {name: {"met": met_h, "z": z_h, "sumw": float(w.sum()), "events": len(met)}}

        def postprocess(self, accumulator: Any) -> Any:
            return accumulator

    return WeightedSamples()


def coffea_samples(paths: list[str], chunk: int, client: Any = None) -> dict[str, float]:
    from coffea import processor
    from coffea.nanoevents import NanoAODSchema

    _import_coffea()
    executor = processor.DaskExecutor(client=client, status=False) if client is not None else processor.IterativeExecutor(status=False)
    runner = processor.Runner(executor, schema=NanoAODSchema, chunksize=chunk)
    fileset = {name: {"files": {p: "Events" for p in files}} for name, files in _by_sample(paths).items() if files}
    out = runner(fileset, processor_instance=_coffea_samples_processor(), treename="Events")
    result: dict[str, float] = {"events": 0, "met_yield": 0.0, "z_yield": 0.0}
    for name, acc in out.items():
        scale = SAMPLE_XSEC[name] * SAMPLE_LUMI / acc["sumw"]
        result["events"] += acc["events"]
        result["met_yield"] += float(acc["met"].values().sum()) * scale
        result["z_yield"] += float(acc["z"].values().sum()) * scale
    return result


def samples_section(folder: Path, events: int, files: int, chunk: int, n: int, repeat: int, coffea: bool = False) -> list[str]:
    """The weighted multi-sample query: plain awkward (1 process) against portaflow's processor, and coffea's
    processor (same query, same files, same normalisation) when coffea is installed."""
    paths = sorted(str(p) for p in folder.glob("dy_*.root")) + sorted(str(p) for p in folder.glob("other_*.root"))
    if len(paths) != 2 * (files // 2):
        paths = make_samples(folder, events, files, n)
    generate_weighted(str(folder / "warmup_dy.root"), 2000, 998, "zlib:1")
    warm_cache(paths)
    rows = [
        in_process("plain awkward 1 proc", plain_awkward_samples, paths, chunk, repeat),
        in_process("portaflow processor in-process", portaflow_samples, paths, chunk, repeat),
        samples_on_dask("portaflow processor dask 1 worker", paths, chunk, 1, repeat),
        samples_on_dask(f"portaflow processor dask {n} workers", paths, chunk, n, repeat),
    ]
    if coffea:
        rows += [in_process("coffea processor in-process", coffea_samples, paths, chunk, repeat),
                 samples_on_dask(f"coffea processor dask {n} workers", paths, chunk, n, repeat, coffea=True)]
    reference = rows[0]["counts"]
    for r in rows:
        for key in ("met_yield", "z_yield"):
            if abs(r["counts"][key] - reference[key]) > 1e-9 * abs(reference[key]):
                raise SystemExit(f"{r['name']}: {key} = {r['counts'][key]} but plain awkward found {reference[key]}")
    total = reference["events"]
    lines = [f"### weighted multi-sample query (2 samples, {total:,} events, Q1 + Q5 weighted and normalised)", "",
             "| variant | cores | seconds | MHz | MHz/core | vs plain awkward 1 proc (per core) |", "|---|---:|---:|---:|---:|---|"]
    base = total / rows[0]["seconds"]
    for r in rows:
        rate = total / r["seconds"]
        lines.append(f"| {r['name']} | {r['cores']} | {r['seconds']:.2f} | {rate / 1e6:.2f} | {rate / r['cores'] / 1e6:.2f} | "
                     f"**{rate / r['cores'] / base:.2f}x** |")
    lines += ["", f"Normalised yields (all variants agree to 1e-9): MET {reference['met_yield']:.3f}, "
              f"Q5 {reference['z_yield']:.3f} events at {SAMPLE_LUMI:g} pb^-1."]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", action="store_true", help="400k events per compression instead of 4M")
    parser.add_argument("--events", type=int, default=None, help="events per compression (overrides --small)")
    parser.add_argument("--files", type=int, default=4, help="files per compression")
    parser.add_argument("--workers", type=int, default=2, help="N for the N-worker / N-process variants")
    parser.add_argument("--chunk", type=int, default=100_000, help="entries per chunk (all variants)")
    parser.add_argument("--compressions", default="zlib:1,lz4:1")
    parser.add_argument("--repeat", type=int, default=3, help="runs per variant; the fastest is reported")
    parser.add_argument("--no-coffea", action="store_true")
    parser.add_argument("--rss-sweep", default="25000,100000,400000,1000000",
                        help="chunk sizes for the RSS-vs-chunk measurement (empty: skip)")
    parser.add_argument("--keep", type=Path, default=None, help="keep the data in this folder (reused if present)")
    parser.add_argument("--no-samples", action="store_true", help="skip the weighted multi-sample query")
    args = parser.parse_args(argv)
    events = args.events or (400_000 if args.small else 4_000_000)
    n = args.workers
    folder = args.keep or Path(tempfile.mkdtemp(prefix="hep_bench_"))
    folder.mkdir(parents=True, exist_ok=True)
    coffea_version = None if args.no_coffea else coffea_available()
    global WARMUP
    WARMUP = str(folder / "warmup.root")
    os.environ["HEP_BENCH_WARMUP"] = WARMUP  # spawned processes re-import this module and read it
    generate_one(WARMUP, 2000, 999, "zlib:1")
    print(f"# HEP reduction benchmark: {events:,} events per compression in {args.files} files, chunk {args.chunk:,}, "
          f"N = {n}, {os.cpu_count()} CPUs, python {sys.version.split()[0]}, coffea {coffea_version or 'not installed'}")
    out: list[str] = []
    try:
        for compression in filter(None, args.compressions.split(",")):
            t0 = time.time()
            paths = sorted(str(p) for p in folder.glob(f"{compression.split(':')[0]}_*.root"))
            if len(paths) != args.files:
                paths = make_dataset(folder, compression, events, args.files, n)
            size = sum(os.path.getsize(p) for p in paths) / 2**20
            print(f"## {compression}: {size:.0f} MiB on disk, generated/found in {time.time() - t0:.1f} s", flush=True)
            warm_cache(paths)
            total = events // args.files * args.files
            r = args.repeat
            rows = [
                in_process("read-only 1 proc", read_only, paths, args.chunk, r),
                in_process("plain awkward 1 proc", plain_awkward, paths, args.chunk, r),
                n_processes(f"plain awkward {n} procs", plain_awkward, paths, args.chunk, n, r),
                in_process("portaflow in-process", portaflow_in_process, paths, args.chunk, r),
                on_dask("portaflow dask 1 worker", paths, args.chunk, 1, r),
                on_dask(f"portaflow dask {n} workers", paths, args.chunk, n, r),
            ]
            if coffea_version:
                rows.append(in_process("coffea iterative 1 proc", coffea_iterative, paths, args.chunk, r))
                rows.append(on_dask(f"coffea dask {n} workers", paths, args.chunk, n, r, coffea=True))
            for r in rows:
                print(f"  {r['name']:28s} {r['seconds']:7.2f} s  {total / r['seconds'] / 1e6:6.2f} MHz  "
                      f"RSS +{r['rss_delta']:.0f} MiB", flush=True)
                for k in CHECKED:
                    if k in r["counts"] and r["counts"][k] != rows[1]["counts"][k]:
                        raise SystemExit(f"{r['name']}: {k} = {r['counts'][k]} but plain awkward found {rows[1]['counts'][k]}")
            lines = report(f"{compression} ({total:,} events, {size:.0f} MiB)", rows, total, chunk_mib(paths[0], args.chunk))
            out += [line.replace("{chunk}", f"{args.chunk:,}") for line in lines]
            out.append("")
            if args.rss_sweep:
                out += [f"RSS vs chunk size, {compression}:", ""]
                out += rss_sweep(paths, [int(c) for c in args.rss_sweep.split(",")])
                out.append("")
        if not args.no_samples:
            print("## weighted multi-sample query", flush=True)
            out += samples_section(folder, events, args.files, args.chunk, n, args.repeat, coffea=bool(coffea_version))
            out.append("")
    finally:
        if args.keep is None:
            shutil.rmtree(folder, ignore_errors=True)
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
