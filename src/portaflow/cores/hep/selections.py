"""The event selection as array code on flat (offsets + content) columns, for NumPy or CuPy alike.

Why flat arrays and an `xp` module instead of awkward's high-level API: the same few lines then run on
the CPU (NumPy) and on a GPU (CuPy) with no separate implementation to keep in step, and the binning
is done here too, so both devices give bit-identical histograms (no dependence on boost-histogram's or
CuPy's own bin-index arithmetic). Awkward is still what reads and holds the jagged columns (reduce.py);
this module sees their offsets and contents.

Definitions (documented in docs/cores/hep.md):
- a muon pair is an unordered pair (i < j) of muons of the same event with charge_i * charge_j < 0;
- its mass is the invariant mass of the two four-vectors built from (pt, eta, phi, mass), in float64;
- the spectrum histograms get one entry per opposite-charge pair (all of them, no best-pair choice);
- an event is a "Z candidate" when at least one of its opposite-charge pairs has 60 < mass < 120 GeV;
- a "two-jet" event has at least two jets with pt > 40 GeV.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

Z_WINDOW = (60.0, 120.0)
JET_PT_MIN = 40.0
MIN_JETS = 2


@dataclass(frozen=True)
class HistSpec:
    """A regular axis. Bin widths are powers of two and edges integers, so (x - lo) * scale is exact
    and every implementation (this kernel, an event loop, a GPU) puts a value in the same bin."""

    name: str
    label: str
    bins: int
    lo: float
    hi: float
    title: str

    @property
    def scale(self) -> float:
        return self.bins / (self.hi - self.lo)

    def edges(self) -> np.ndarray:
        return self.lo + np.arange(self.bins + 1, dtype=np.float64) / self.scale


HISTOGRAMS: tuple[HistSpec, ...] = (
    HistSpec("dimuon_mass", r"$m_{\mu^+\mu^-}$ [GeV]", 150, 0.0, 150.0, "All opposite-charge muon pairs"),
    HistSpec("dimuon_mass_fine", r"$m_{\mu^+\mu^-}$ [GeV]", 160, 70.0, 110.0, "Opposite-charge pairs, Z region (fit input)"),
    HistSpec("met_all", r"$p_T^{miss}$ [GeV]", 100, 0.0, 200.0, "MET, all events"),
    HistSpec("met_2jets40", r"$p_T^{miss}$ [GeV]", 100, 0.0, 200.0, "MET, events with >= 2 jets of pt > 40 GeV"),
    HistSpec("met_zmumu", r"$p_T^{miss}$ [GeV]", 100, 0.0, 200.0, "MET, events with an opposite-charge muon pair, 60 < m < 120 GeV"),
)
HIST_BY_NAME = {spec.name: spec for spec in HISTOGRAMS}
COUNT_NAMES = ("events", "os_pairs", "os_pairs_in_window", "events_2jets40", "events_zmumu")


@dataclass
class Muons:
    """The muons of a chunk of events as flat columns (all `xp` arrays on one device)."""

    offsets: Any  # int64, n_events + 1, starting at 0
    pt: Any
    eta: Any
    phi: Any
    mass: Any
    charge: Any

    @property
    def n_events(self) -> int:
        return int(self.offsets.shape[0]) - 1


@dataclass
class FlatChunk:
    """One chunk of events as flat columns: what `select` needs."""

    muons: Muons
    jet_offsets: Any  # int64, n_events + 1, starting at 0
    jet_pt: Any
    met_pt: Any

    @property
    def n_events(self) -> int:
        return int(self.met_pt.shape[0])


def bin_index(values: Any, spec: HistSpec, xp: Any) -> Any:
    """Flow-bin layout indices [0 = underflow, 1..bins, bins + 1 = overflow] of `values`; NaN -> overflow.

    floor((x - lo) * scale) clipped to [-1, bins], computed in place in one float64 temporary (memory: the
    kernel's peak is set by these per-event temporaries, not by the inputs).
    """
    z = values.astype(xp.float64, copy=True)
    z -= spec.lo
    z *= spec.scale
    xp.floor(z, out=z)
    xp.clip(z, -1.0, float(spec.bins), out=z)  # NaN stays NaN here
    z[xp.isnan(z)] = float(spec.bins)
    z += 1.0
    return z.astype(xp.int64)


def bin_counts(values: Any, spec: HistSpec, xp: Any) -> Any:
    """Counts with flow bins in hist's layout: [underflow, bin 0 .. bin n-1, overflow]; NaN -> overflow."""
    return xp.bincount(bin_index(values, spec, xp), minlength=spec.bins + 2).astype(xp.int64)


def opposite_charge_pairs(offsets: Any, charge: Any, xp: Any) -> tuple[Any, Any, Any]:
    """Flat indices (a, b) of both muons and the event index of every opposite-charge pair.

    Loops over the second muon's position j (at most the largest multiplicity, a handful) and, for each,
    over all first positions i < j at once; events with fewer than two muons never enter.
    """
    counts = offsets[1:] - offsets[:-1]
    events = xp.nonzero(counts >= 2)[0]
    starts, n = offsets[:-1][events], counts[events]
    max_n = int(n.max()) if events.shape[0] else 0
    firsts, seconds, owners = [], [], []
    for j in range(1, max_n):
        keep = n > j
        events, starts, n = events[keep], starts[keep], n[keep]
        for i in range(j):
            firsts.append(starts + i)
            seconds.append(starts + j)
            owners.append(events)
    if not firsts:
        empty = xp.zeros(0, dtype=xp.int64)
        return empty, empty, empty
    a, b, owner = xp.concatenate(firsts), xp.concatenate(seconds), xp.concatenate(owners)
    opposite = charge[a].astype(xp.int64) * charge[b].astype(xp.int64) < 0
    return a[opposite], b[opposite], owner[opposite]


def pair_masses(pt: Any, eta: Any, phi: Any, mass: Any, xp: Any) -> Any:
    """Invariant masses in float64 from the two muons' (pt, eta, phi, mass), each given as a pair
    (first-muon values, second-muon values) of arrays with one entry per pair."""
    px = py = pz = energy = 0.0
    for k in (0, 1):
        p_t, e_ta, p_hi, m = (x[k].astype(xp.float64) for x in (pt, eta, phi, mass))
        mx, my, mz = p_t * xp.cos(p_hi), p_t * xp.sin(p_hi), p_t * xp.sinh(e_ta)
        px, py, pz = px + mx, py + my, pz + mz
        energy = energy + xp.sqrt(mx * mx + my * my + mz * mz + m * m)
    m2 = energy * energy - (px * px + py * py + pz * pz)
    return xp.sqrt(xp.maximum(m2, 0.0))


def pair_masses_cartesian(px: Any, py: Any, pz: Any, energy: Any, xp: Any) -> Any:
    """Invariant masses in float64 from the two muons' stored four-vectors (px, py, pz, E), each given as a
    pair of arrays: m = sqrt(max((E1 + E2)^2 - |p1 + p2|^2, 0))."""
    x, y, z, e = (a[0].astype(xp.float64) + a[1].astype(xp.float64) for a in (px, py, pz, energy))
    m2 = e * e - (x * x + y * y + z * z)
    return xp.sqrt(xp.maximum(m2, 0.0))


MUON_KINEMATICS = {"polar": ("pt", "eta", "phi", "mass"), "cartesian": ("px", "py", "pz", "energy")}
SUMW, SUMW2 = ":sumw", ":sumw2"  # suffixes of the weighted sums next to each count array


@dataclass
class MuonSelection:
    """What the muon part of the selection leaves: pair masses and a per-event Z-candidate flag."""

    masses: Any  # float64, one per opposite-charge pair
    in_window: Any  # bool, per pair
    zmumu: Any  # bool, per event
    owner: Any = None  # int64, the event of each pair (for pair weights)


def select_muons(read: Callable[[str], Any], offsets: Any, n_events: int, xp: Any, form: str = "polar") -> MuonSelection:
    """The muon part, asking `read(field)` for one flat column ('charge', then 'pt', 'eta', 'phi', 'mass' for
    form "polar" or 'px', 'py', 'pz', 'energy' for "cartesian") at a time and keeping only its values at the
    pair ends: a reader can thus hold one column, not five."""
    a, b, owner = opposite_charge_pairs(offsets, read("charge"), xp)
    ends = {}
    for name in MUON_KINEMATICS[form]:
        column = read(name)
        ends[name] = (column[a], column[b])
        del column
    if form == "polar":
        masses = pair_masses(ends["pt"], ends["eta"], ends["phi"], ends["mass"], xp)
    else:
        masses = pair_masses_cartesian(ends["px"], ends["py"], ends["pz"], ends["energy"], xp)
    in_window = (masses > Z_WINDOW[0]) & (masses < Z_WINDOW[1])
    zmumu = xp.zeros(n_events, dtype=bool)
    zmumu[owner[in_window]] = True
    return MuonSelection(masses, in_window, zmumu, owner)


def select_jets(offsets: Any, pt: Any, xp: Any) -> Any:
    """Per-event flag: at least MIN_JETS jets with pt > JET_PT_MIN."""
    # running[k]: passing jets among the first k (int32: a chunk holds far fewer than 2**31 jets)
    running = xp.concatenate([xp.zeros(1, dtype=xp.int32), xp.cumsum(pt > JET_PT_MIN, dtype=xp.int32)])
    return running[offsets[1:]] - running[offsets[:-1]] >= MIN_JETS


def fill(muons: MuonSelection | None, two_jets: Any, met_pt: Any, xp: Any, *, n_events: int | None = None,
         weights: Any = None) -> dict[str, Any]:
    """Histogram counts (flow bins included) and selected counts, as `xp` int64 arrays, for the queries whose
    inputs are given (None: that object is missing, its queries produce nothing). With `weights` (float64, one
    per event) every count array also gets its sum of weights (name + SUMW) and of squared weights (+ SUMW2);
    a pair is weighted by its event's weight."""
    n = int(met_pt.shape[0]) if met_pt is not None else int(n_events if n_events is not None else muons.zmumu.shape[0])
    out: dict[str, Any] = {}

    def histogram(name: str, values: Any, w: Any) -> None:
        spec = HIST_BY_NAME[name]
        index = bin_index(values, spec, xp)
        out[name] = xp.bincount(index, minlength=spec.bins + 2).astype(xp.int64)
        if w is not None:
            out[name + SUMW] = xp.bincount(index, weights=w, minlength=spec.bins + 2).astype(xp.float64)
            out[name + SUMW2] = xp.bincount(index, weights=w * w, minlength=spec.bins + 2).astype(xp.float64)

    def count(name: str, selected: Any, w: Any) -> None:
        """`selected`: a bool mask over the entries `w` weights, or None for all of them."""
        total = n if name == "events" else (selected.sum() if selected is not None else w.shape[0])
        out[name] = xp.asarray(total, dtype=xp.int64).reshape(1)
        if weights is not None:
            chosen = w if selected is None else w[selected]
            out[name + SUMW] = xp.asarray(chosen.sum(), dtype=xp.float64).reshape(1)
            out[name + SUMW2] = xp.asarray((chosen * chosen).sum(), dtype=xp.float64).reshape(1)

    pair_w = weights[muons.owner] if weights is not None and muons is not None else None
    if muons is not None:
        histogram("dimuon_mass", muons.masses, pair_w)
        histogram("dimuon_mass_fine", muons.masses, pair_w)
    if met_pt is not None:
        histogram("met_all", met_pt, weights)
        if two_jets is not None:
            histogram("met_2jets40", met_pt[two_jets], None if weights is None else weights[two_jets])
        if muons is not None:
            histogram("met_zmumu", met_pt[muons.zmumu], None if weights is None else weights[muons.zmumu])
    count("events", None, weights)
    if muons is not None:
        out["os_pairs"] = xp.asarray(muons.masses.shape[0], dtype=xp.int64).reshape(1)
        if weights is not None:
            out["os_pairs" + SUMW] = xp.asarray(pair_w.sum(), dtype=xp.float64).reshape(1)
            out["os_pairs" + SUMW2] = xp.asarray((pair_w * pair_w).sum(), dtype=xp.float64).reshape(1)
        count("os_pairs_in_window", muons.in_window, pair_w)
    if met_pt is not None and two_jets is not None:
        count("events_2jets40", two_jets, weights)
    if muons is not None:
        count("events_zmumu", muons.zmumu, weights)
    return {name: out[name] for name in _order(out)}


def _order(out: dict[str, Any]) -> list[str]:
    """Histograms first, then counts, in the documented order (as before weights and partial queries)."""
    names = [spec.name for spec in HISTOGRAMS] + list(COUNT_NAMES)
    ordered = [name + suffix for name in names for suffix in ("", SUMW, SUMW2) if name + suffix in out]
    return ordered


def select(chunk: FlatChunk, xp: Any = np) -> dict[str, Any]:
    """The whole selection of one chunk (the reader runs the same three parts one column group at a time)."""
    muons = select_muons(lambda name: getattr(chunk.muons, name), chunk.muons.offsets, chunk.n_events, xp)
    return fill(muons, select_jets(chunk.jet_offsets, chunk.jet_pt, xp), chunk.met_pt, xp)
