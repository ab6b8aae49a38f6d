"""The eight IRIS-HEP ADL benchmark queries as a processor (processor.py), with a systematic axis.

Queries (https://github.com/iris-hep/adl-benchmarks-index; binning ours, bin widths powers of two):
- q1 `met`: MET of every event.
- q2 `jet_pt`: pT of every jet.
- q3 `jet_pt_central`: pT of jets with |eta| < 1.
- q4 `met_2jets40`: MET of events with at least two jets of pT > 40 GeV.
- q5 `met_os_mumu`: MET of events with an opposite-charge muon pair of mass 60-120 GeV (strict); also
  `dimuon_mass`, the mass of every opposite-charge pair (not an ADL output: the Z-peak plot's input).
- q6 `trijet_pt`, `trijet_btag`: in events with >= 3 jets, the trijet (three distinct jets) whose invariant mass is
  closest to 172.5 GeV: its pT, and the largest b-tag discriminant of its three jets.
- q7 `ht_clean`: per event, the scalar sum of the pT of jets with pT > 30 GeV not within Delta R < 0.4 of any light
  lepton (muon or electron) with pT > 10 GeV (events without such jets enter with 0).
- q8 `mt_lepton`: events with >= 3 light leptons and a same-flavour opposite-charge pair: take the pair whose mass
  is closest to 91.2 GeV, then the highest-pT light lepton not in it; the transverse mass of it and MET,
  sqrt(2 pT MET (1 - cos(phi_l - phi_MET))).

Objects come from `objects` (NanoAOD names by default; per object either {pt, eta, phi, mass} or four-vectors
{px, py, pz, energy}, plus `charge` for leptons, `btag` for jets; MET {pt, phi} or {px, py}). Kinematics are
computed in float64: from polar, px = pt cos(phi), py = pt sin(phi), pz = pt sinh(eta), E = sqrt(p^2 + m^2); from
four-vectors, pt = hypot(px, py), eta = asinh(pz / pt), phi = atan2(py, px); pair and trijet masses from the summed
(E, p). Delta phi is wrapped into [-pi, pi).

Systematics (the `systematic` axis of every histogram): `nominal`; `muon_pt_up/down` and `jet_pt_up/down` scale
the momentum of every muon / jet by 1 +- `muon_pt_scale` / `jet_pt_scale` (direction and mass kept, so E is
recomputed; MET is not re-derived); for each `weight_variations: {name: [up_branch, down_branch]}`, `name_up/down`
multiply the event weight by that per-event branch (as post-processed NanoAOD's `puWeightUp/Down`).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import awkward as ak
import hist
import numpy as np

from portaflow.cores.hep.schema import SchemaError

TOP_MASS = 172.5
Z_MASS_Q8 = 91.2

OBJECTS: dict[str, dict[str, str]] = {
    "muon": {"pt": "Muon_pt", "eta": "Muon_eta", "phi": "Muon_phi", "mass": "Muon_mass", "charge": "Muon_charge"},
    "electron": {"pt": "Electron_pt", "eta": "Electron_eta", "phi": "Electron_phi", "mass": "Electron_mass",
                 "charge": "Electron_charge"},
    "jet": {"pt": "Jet_pt", "eta": "Jet_eta", "phi": "Jet_phi", "mass": "Jet_mass", "btag": "Jet_btagDeepFlavB"},
    "met": {"pt": "MET_pt", "phi": "MET_phi"},
}
POLAR, CARTESIAN = ("pt", "eta", "phi", "mass"), ("px", "py", "pz", "energy")
EXTRA = {"muon": ("charge",), "electron": ("charge",), "jet": ("btag",), "met": ()}

# query -> {object: polar fields it needs}
QUERY_NEEDS: dict[str, dict[str, tuple[str, ...]]] = {
    "q1": {"met": ("pt",)},
    "q2": {"jet": ("pt",)},
    "q3": {"jet": ("pt", "eta")},
    "q4": {"jet": ("pt",), "met": ("pt",)},
    "q5": {"muon": (*POLAR, "charge"), "met": ("pt",)},
    "q6": {"jet": (*POLAR, "btag")},
    "q7": {"jet": ("pt", "eta", "phi"), "muon": ("pt", "eta", "phi"), "electron": ("pt", "eta", "phi")},
    "q8": {"muon": (*POLAR, "charge"), "electron": (*POLAR, "charge"), "met": ("pt", "phi")},
}
# histogram -> (query, bins, lo, hi, label)
HISTOGRAMS: dict[str, tuple[str, int, float, float, str]] = {
    "met": ("q1", 100, 0.0, 200.0, r"$p_T^{miss}$ [GeV]"),
    "jet_pt": ("q2", 100, 0.0, 200.0, r"jet $p_T$ [GeV]"),
    "jet_pt_central": ("q3", 100, 0.0, 200.0, r"jet $p_T$, $|\eta| < 1$ [GeV]"),
    "met_2jets40": ("q4", 100, 0.0, 200.0, r"$p_T^{miss}$, $\geq 2$ jets $p_T > 40$ GeV [GeV]"),
    "met_os_mumu": ("q5", 100, 0.0, 200.0, r"$p_T^{miss}$, $\mu^+\mu^-$ 60-120 GeV [GeV]"),
    "dimuon_mass": ("q5", 150, 0.0, 150.0, r"$m_{\mu^+\mu^-}$ [GeV]"),  # every opposite-charge pair (Z-peak plot)
    "trijet_pt": ("q6", 100, 0.0, 200.0, r"trijet $p_T$ [GeV]"),
    "trijet_btag": ("q6", 96, -1.0, 5.0, "largest b-tag of the trijet"),
    "ht_clean": ("q7", 100, 0.0, 400.0, r"$\sum p_T$ of jets away from leptons [GeV]"),
    "mt_lepton": ("q8", 100, 0.0, 200.0, r"$m_T$(lepton, $p_T^{miss}$) [GeV]"),
}
ARGS = {"objects", "queries", "muon_pt_scale", "jet_pt_scale", "weight_variations", "systematics"}


def object_mapping(objects: Mapping[str, Any] | None) -> dict[str, dict[str, str]]:
    """NanoAOD's names, each object replaced by the given one; checked for a known field set."""
    out = {name: dict(fields) for name, fields in OBJECTS.items()}
    for name, fields in (objects or {}).items():
        if name not in OBJECTS or not isinstance(fields, Mapping):
            raise SchemaError(f"objects.{name}: expected one of {sorted(OBJECTS)} mapping field -> branch")
        kinematic = ("pt", "phi") if name == "met" else POLAR
        cartesian = ("px", "py") if name == "met" else CARTESIAN
        keys = set(fields) - set(EXTRA[name])
        if keys not in (set(kinematic), set(cartesian)):
            raise SchemaError(f"objects.{name}: fields {sorted(fields)}; expected {{{', '.join(kinematic)}}} or "
                              f"{{{', '.join(cartesian)}}} plus {list(EXTRA[name])}")
        out[name] = {str(k): str(v) for k, v in fields.items()}
    return out


def branches_for(mapping: Mapping[str, str], fields: Iterable[str]) -> set[str]:
    """The branches one object's fields need: four-vector inputs need all their components for any kinematics."""
    fields = set(fields)
    if "px" in mapping:
        out = {mapping[f] for f in fields if f in mapping and f not in POLAR}
        if fields & set(POLAR):
            out |= {mapping[c] for c in ("px", "py", "pz", "energy") if c in mapping}
        return out
    return {mapping[f] for f in fields}


def query_branches(objects: Mapping[str, Mapping[str, str]], query: str) -> set[str]:
    return set().union(*(branches_for(objects[o], f) for o, f in QUERY_NEEDS[query].items()))


def plan(file_branches: Mapping[str, Iterable[str]], objects: Mapping[str, Any] | None = None,
         queries: Iterable[str] | None = None) -> tuple[list[str], dict[str, str], list[str]]:
    """(queries that run, {skipped query: which file lacks what}, branches to read) for these files."""
    mapping = object_mapping(objects)
    wanted = list(queries) if queries is not None else list(QUERY_NEEDS)
    unknown = sorted(set(wanted) - set(QUERY_NEEDS))
    if unknown:
        raise SchemaError(f"queries: unknown {unknown}; known: {list(QUERY_NEEDS)}")
    run, skipped, read = [], {}, set()
    for query in wanted:
        needed = query_branches(mapping, query)
        lacking = {path: sorted(needed - set(names)) for path, names in file_branches.items() if needed - set(names)}
        if lacking:
            skipped[query] = "; ".join(f"{path} lacks {', '.join(b)}" for path, b in lacking.items())
        else:
            run.append(query)
            read |= needed
    return run, skipped, sorted(read)


# ---- kinematics on flat columns ---------------------------------------------------------------------------------
# Why flat NumPy instead of awkward's high-level operations: each awkward call on a jagged array costs a fixed
# overhead (broadcasting machinery) that dominated this processor (Q6's trijets and Q8's pairs need dozens of them
# per systematic); a collection here is (offsets, flat columns) and combinations are flat index arrays.

@dataclass
class Collection:
    """The objects of a chunk: offsets (n_events + 1, from 0) and flat float64 columns (charge, btag as read)."""

    offsets: np.ndarray
    columns: dict[str, np.ndarray]

    @property
    def counts(self) -> np.ndarray:
        return np.diff(self.offsets)

    def owner(self) -> np.ndarray:
        """The event of every object."""
        return np.repeat(np.arange(len(self.offsets) - 1), self.counts)

    def __getitem__(self, name: str) -> np.ndarray:
        return self.columns[name]

    def subset(self, keep: np.ndarray) -> Collection:
        """The objects where `keep` is true, in their order."""
        kept = np.concatenate([[0], np.cumsum(keep, dtype=np.int64)])
        return Collection(kept[self.offsets], {k: v[keep] for k, v in self.columns.items()})


def _column(array: ak.Array) -> tuple[np.ndarray | None, np.ndarray]:
    """(offsets from 0, or None for a per-event scalar; flat content)."""
    if array.ndim == 1:
        return None, ak.to_numpy(array)
    layout = ak.to_layout(array)
    if isinstance(layout, ak.contents.ListOffsetArray) and isinstance(layout.content, ak.contents.NumpyArray):
        offsets = np.asarray(layout.offsets.data).astype(np.int64)
        return offsets - offsets[0], np.asarray(layout.content.data)[offsets[0]:offsets[-1]]
    counts = ak.to_numpy(ak.num(array, axis=1)).astype(np.int64)
    return np.concatenate([[0], np.cumsum(counts)]), ak.to_numpy(ak.flatten(array, axis=1))


def build(events: ak.Array, mapping: Mapping[str, str], scale: float = 1.0) -> Collection:
    """An object's columns in float64 (plus charge, btag): what the mapping gives and the kinematics derived from a
    full polar or four-vector set (px, py, pz, energy, pt, eta, phi). `scale` multiplies the momentum, keeping
    direction and mass. MET is a Collection of one object per event."""
    offsets, raw = None, {}
    for name, branch in mapping.items():
        if branch in events.fields:
            offsets_k, raw[name] = _column(events[branch])
            offsets = offsets_k if offsets_k is not None else offsets
    n = len(events)
    if offsets is None:
        offsets = np.arange(n + 1, dtype=np.int64)
    f = {k: v.astype(np.float64) for k, v in raw.items() if k not in ("charge",)}
    out: dict[str, np.ndarray] = {k: raw[k] for k in ("charge",) if k in raw}
    if "btag" in f:
        out["btag"] = f.pop("btag")
    if "px" in mapping:
        px, py = f["px"] * scale, f["py"] * scale
        out.update(px=px, py=py, pt=np.hypot(px, py), phi=np.arctan2(py, px))
        if "pz" in f:
            out["pz"] = f["pz"] * scale
            with np.errstate(divide="ignore", invalid="ignore"):
                out["eta"] = np.arcsinh(out["pz"] / out["pt"])
        if "energy" in f:
            p2 = f["px"] ** 2 + f["py"] ** 2 + f["pz"] ** 2
            m2 = np.maximum(f["energy"] ** 2 - p2, 0.0)
            out["energy"] = np.sqrt(scale * scale * p2 + m2)
        return Collection(offsets, out)
    if "pt" in f:
        out["pt"] = f["pt"] * scale
    out.update({k: f[k] for k in ("eta", "phi", "mass") if k in f})
    if all(k in out for k in ("pt", "eta", "phi", "mass")):
        pt = out["pt"]
        px, py, pz = pt * np.cos(out["phi"]), pt * np.sin(out["phi"]), pt * np.sinh(out["eta"])
        out.update(px=px, py=py, pz=pz, energy=np.sqrt(px * px + py * py + pz * pz + out["mass"] ** 2))
    return Collection(offsets, out)


def combinations(offsets: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All k-subsets of each event's objects as flat indices (shape (m, k)), in event order and, inside an event, in
    lexicographic order (as itertools.combinations); also the event and the rank inside the event of each."""
    counts = np.diff(offsets)
    indices, owners, ranks = [], [], []
    for n in np.unique(counts[counts >= k]):
        events = np.nonzero(counts == n)[0]
        combos = np.array(list(itertools.combinations(range(int(n)), k)), dtype=np.int64)
        indices.append((offsets[events][:, None, None] + combos[None]).reshape(-1, k))
        owners.append(np.repeat(events, len(combos)))
        ranks.append(np.tile(np.arange(len(combos)), len(events)))
    if not indices:
        return np.zeros((0, k), dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    index, owner, rank = np.concatenate(indices), np.concatenate(owners), np.concatenate(ranks)
    order = np.lexsort((rank, owner))
    return index[order], owner[order], rank[order]


def first_best(owner: np.ndarray, distance: np.ndarray, rank: np.ndarray) -> np.ndarray:
    """Per event, the position of the candidate with the smallest distance (the first in rank among equals)."""
    order = np.lexsort((rank, distance, owner))
    _, first = np.unique(owner[order], return_index=True)
    return order[first]


def delta_phi(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a - b + np.pi) % (2 * np.pi) - np.pi


def mass_of(c: Collection, index: np.ndarray) -> np.ndarray:
    """Invariant mass of the objects index[:, 0], index[:, 1], ... summed as four-vectors."""
    e, x, y, z = (c[name][index].sum(axis=1) for name in ("energy", "px", "py", "pz"))
    return np.sqrt(np.maximum(e * e - (x * x + y * y + z * z), 0.0))


def merge(first: Collection, second: Collection, flavours: tuple[int, int]) -> Collection:
    """Per event, `first`'s objects then `second`'s (light leptons: muons then electrons), with a `flavour` column."""
    offsets = first.offsets + second.offsets
    position_1 = np.arange(first.offsets[-1]) + second.offsets[:-1][first.owner()]
    position_2 = np.arange(second.offsets[-1]) + first.offsets[1:][second.owner()]
    columns = {}
    for name in set(first.columns) & set(second.columns):
        out = np.empty(offsets[-1], dtype=np.result_type(first[name], second[name]))
        out[position_1], out[position_2] = first[name], second[name]
        columns[name] = out
    flavour = np.empty(offsets[-1], dtype=np.int64)
    flavour[position_1], flavour[position_2] = flavours
    columns["flavour"] = flavour
    return Collection(offsets, columns)


# ---- the queries ------------------------------------------------------------------------------------------------

def queries(objects: Mapping[str, Collection], run: Iterable[str], n: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """histogram -> (values, the event of each value) for the queries in `run` over a chunk of `n` events; the
    caller weighs each value by its event's weight."""
    run = set(run)
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    events = np.arange(n)
    met, jet, muon, ele = objects.get("met"), objects.get("jet"), objects.get("muon"), objects.get("electron")
    if "q1" in run:
        out["met"] = met["pt"], events
    if "q2" in run:
        out["jet_pt"] = jet["pt"], jet.owner()
    if "q3" in run:
        central = np.abs(jet["eta"]) < 1.0
        out["jet_pt_central"] = jet["pt"][central], jet.owner()[central]
    if "q4" in run:
        two = np.bincount(jet.owner()[jet["pt"] > 40.0], minlength=n) >= 2
        out["met_2jets40"] = met["pt"][two], events[two]
    if "q5" in run:
        pairs, owner, _ = combinations(muon.offsets, 2)
        m = mass_of(muon, pairs)
        opposite = muon["charge"][pairs[:, 0]].astype(np.int64) * muon["charge"][pairs[:, 1]] < 0
        z = np.zeros(n, dtype=bool)
        z[owner[opposite & (m > 60.0) & (m < 120.0)]] = True
        out["met_os_mumu"] = met["pt"][z], events[z]
        out["dimuon_mass"] = m[opposite], owner[opposite]
    if "q6" in run:
        trios, owner, rank = combinations(jet.offsets, 3)
        best = first_best(owner, np.abs(mass_of(jet, trios) - TOP_MASS), rank)
        chosen = trios[best]
        pt = np.hypot(jet["px"][chosen].sum(axis=1), jet["py"][chosen].sum(axis=1))
        out["trijet_pt"] = pt, owner[best]
        out["trijet_btag"] = jet["btag"][chosen].astype(np.float64).max(axis=1), owner[best]
    if "q7" in run:
        jets = jet.subset(jet["pt"] > 30.0)
        leptons = merge(muon, ele, (13, 11))
        leptons = leptons.subset(leptons["pt"] > 10.0)
        # every (jet, lepton) pair of an event: jet j repeated once per lepton of its event
        jet_owner = jets.owner()
        per_jet = leptons.counts[jet_owner]
        jet_index = np.repeat(np.arange(len(jet_owner)), per_jet)
        block = np.concatenate([[0], np.cumsum(per_jet)])[:-1]
        lepton_index = leptons.offsets[jet_owner][jet_index] + np.arange(len(jet_index)) - np.repeat(block, per_jet)
        dr2 = (jets["eta"][jet_index] - leptons["eta"][lepton_index]) ** 2 + \
            delta_phi(jets["phi"][jet_index], leptons["phi"][lepton_index]) ** 2
        near = np.zeros(len(jet_owner), dtype=bool)
        near[jet_index[dr2 < 0.4 * 0.4]] = True
        out["ht_clean"] = np.bincount(jet_owner[~near], weights=jets["pt"][~near], minlength=n), events
    if "q8" in run:
        leptons = merge(muon, ele, (13, 11))
        pairs, owner, rank = combinations(leptons.offsets, 2)
        a, b = pairs[:, 0], pairs[:, 1]
        sfos = (leptons["flavour"][a] == leptons["flavour"][b]) & (leptons["charge"][a].astype(np.int64) * leptons["charge"][b] < 0)
        sfos &= leptons.counts[owner] >= 3
        pairs, owner, rank = pairs[sfos], owner[sfos], rank[sfos]
        best = first_best(owner, np.abs(mass_of(leptons, pairs) - Z_MASS_Q8), rank)
        events_8, pair = owner[best], pairs[best]
        # the other leptons of those events; the highest pT, the first among equals
        in_pair = np.zeros(leptons.offsets[-1], dtype=bool)
        in_pair[pair.reshape(-1)] = True
        chosen_event = np.zeros(n, dtype=bool)
        chosen_event[events_8] = True
        lepton_owner = leptons.owner()
        candidates = np.nonzero(chosen_event[lepton_owner] & ~in_pair)[0]
        lead = candidates[first_best(lepton_owner[candidates], -leptons["pt"][candidates], candidates)]
        pt_l, phi_l = leptons["pt"][lead], leptons["phi"][lead]
        met_pt, met_phi = met["pt"][lepton_owner[lead]], met["phi"][lepton_owner[lead]]
        out["mt_lepton"] = np.sqrt(2.0 * pt_l * met_pt * (1.0 - np.cos(delta_phi(phi_l, met_phi)))), lepton_owner[lead]
    return out


def new_histograms(run: Iterable[str], systematics: list[str]) -> dict[str, hist.Hist]:
    run = set(run)
    return {name: hist.Hist(hist.axis.StrCategory(systematics, name="systematic"),
                            hist.axis.Regular(bins, lo, hi, name="x", label=label), storage=hist.storage.Weight(), name=name)
            for name, (query, bins, lo, hi, label) in HISTOGRAMS.items() if query in run}


def systematics(args: Mapping[str, Any]) -> list[str]:
    """The categories of the systematic axis; `systematics: false` keeps only the nominal (cheaper)."""
    if args.get("systematics", True) in (False, "false", "no", "off"):
        return ["nominal"]
    names = ["nominal", "muon_pt_up", "muon_pt_down", "jet_pt_up", "jet_pt_down"]
    for name in (args.get("weight_variations") or {}):
        names += [f"{name}_up", f"{name}_down"]
    return names


def process(events: ak.Array, context: Any) -> dict[str, hist.Hist]:
    """The processor: every query in `context.args['queries']` (as `plan` chose them), for every systematic."""
    args = context.args
    unknown = sorted(set(args) - ARGS)
    if unknown:
        raise SchemaError(f"adl processor: unknown args {unknown}; allowed: {sorted(ARGS)}")
    mapping = object_mapping(args.get("objects"))
    run = list(args.get("queries") or QUERY_NEEDS)
    needed = {o for q in run for o in QUERY_NEEDS[q]}
    muon_scale, jet_scale = float(args.get("muon_pt_scale", 0.01)), float(args.get("jet_pt_scale", 0.03))
    variations = args.get("weight_variations") or {}
    names = systematics(args)
    out = new_histograms(run, names)
    base = {o: build(events, mapping[o]) for o in needed}
    weight = np.asarray(context.weight, dtype=np.float64)
    n = len(events)
    nominal = queries(base, run, n)
    values = dict.fromkeys(names, nominal)
    for obj, scale in (("muon", muon_scale), ("jet", jet_scale)) if len(names) > 1 else ():
        affected = [q for q in run if obj in QUERY_NEEDS[q]]
        for suffix, factor in (("up", 1 + scale), ("down", 1 - scale)):
            # only the queries that use the varied object are recomputed; the others are the nominal values
            values[f"{obj}_pt_{suffix}"] = {**nominal, **queries({**base, obj: build(events, mapping[obj], factor)}, affected, n)}
    weights = dict.fromkeys(names, weight)
    for name, (up, down) in variations.items() if not context.is_data and len(names) > 1 else ():
        for suffix, branch in (("up", up), ("down", down)):
            weights[f"{name}_{suffix}"] = weight * _column(events[branch])[1].astype(np.float64)
    for syst in names:
        for name, (x, index) in values[syst].items():
            out[name].fill(systematic=syst, x=x, weight=weights[syst][index])
    return out


def processor_spec(file_branches: Mapping[str, Iterable[str]], args: Mapping[str, Any], tree: str = "Events",
                   function: str = "portaflow.cores.hep.adl:process") -> tuple[Any, dict[str, str]]:
    """(the ProcessorSpec that runs the queries these files can answer, {skipped query: why}); SchemaError if none
    can run. The weight-variation branches are read for simulation only (every simulated file must have them); data
    takes its nominal weight under every variation."""
    from portaflow.cores.hep.processor import ProcessorSpec

    unknown = sorted(set(args) - ARGS)
    if unknown:
        raise SchemaError(f"adl processor: unknown args {unknown}; allowed: {sorted(ARGS)}")
    run, skipped, read = plan(file_branches, args.get("objects"), args.get("queries"))
    if not run:
        raise SchemaError("no ADL query can run: " + " | ".join(f"{q}: {why}" for q, why in skipped.items()))
    variations = args.get("weight_variations") or {}
    mc_read: list[str] = []
    for name, pair in variations.items():
        if not isinstance(pair, (list, tuple)) or len(pair) != 2 or not all(isinstance(b, str) for b in pair):
            raise SchemaError(f"weight_variations.{name}: [up_branch, down_branch], got {pair!r}")
        mc_read += [b for b in pair if b not in mc_read]
    return ProcessorSpec(function, tuple(read), {**args, "queries": run}, tree, tuple(mc_read)), skipped
