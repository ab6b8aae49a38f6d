"""Synthetic NanoAOD-like events: Z -> mu mu signal on top of background muons and jets.

Why synthetic: tests and benchmarks need data with a known truth (how many signal events have an
opposite-charge pair in the Z window) and must not download anything. The layout is NanoAOD's
(a TTree `Events`, `nMuon` int32 counters + jagged `Muon_*` float32 branches), so the reduction reads
it the way it would read real NanoAOD.

Physics, deliberately simple: the Z mass follows a (truncated, non-relativistic) Breit-Wigner, the Z gets
an exponential pT and a Gaussian rapidity, decays isotropically in its rest frame, and each muon's pT is
smeared by a Gaussian resolution. Background: Poisson numbers of soft muons of random charge and of jets.
MET is a 2D Gaussian vector in every event (it is not "background", so it stays when background is off).
Everything is drawn from numpy's PCG64 seeded by (seed, file_index): the same arguments give the same
events, different files of one dataset give different events.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np
import uproot

from portaflow.cores.hep.selections import Z_WINDOW

Z_MASS = 91.1876
Z_WIDTH = 2.4952
MUON_MASS = 0.1056583755
TREE = "Events"
TRUTH_KEY = "portaflow_truth"


@dataclass(frozen=True)
class GeneratorConfig:
    """What one file holds. `events` per file; defaults give ~15% signal events and busy backgrounds."""

    events: int = 200_000
    seed: int = 1
    file_index: int = 0
    signal_fraction: float = 0.15
    background: bool = True
    pt_resolution: float = 0.01  # relative Gaussian muon pT resolution
    mass_range: tuple[float, float] = (40.0, 200.0)  # Breit-Wigner truncation
    background_muons: float = 0.4  # Poisson mean per event
    jets: float = 2.5  # Poisson mean per event
    met_sigma: float = 20.0  # GeV, per MET component
    gen_weight: bool = False  # write a signed `genWeight` branch, as simulated NanoAOD has
    negative_weight_fraction: float = 0.13  # share of events with a negative genWeight (NLO generators)
    sf_weights: bool = False  # write per-event muon scale-factor variations `muonSF_up/down` (weight variations)


@dataclass
class Truth:
    """Generator-level counts, computed from the very float32 values written to the file."""

    events: int = 0
    signal_events: int = 0
    signal_in_window: int = 0  # signal events whose Z muon pair has 60 < m < 120 GeV
    muons: int = 0
    jets: int = 0
    config: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


def _rng(seed: int, file_index: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([int(seed), int(file_index)])))


def _breit_wigner(rng: np.random.Generator, n: int, lo: float, hi: float) -> np.ndarray:
    """Inverse-CDF sampling of a Cauchy(M, Gamma/2) truncated to [lo, hi]."""
    half = Z_WIDTH / 2
    u_lo, u_hi = (math.atan((x - Z_MASS) / half) for x in (lo, hi))
    return Z_MASS + half * np.tan(rng.uniform(u_lo, u_hi, n))


def _z_decays(rng: np.random.Generator, n: int, config: GeneratorConfig) -> tuple[np.ndarray, ...]:
    """Lab-frame (px, py, pz) of the two muons of n Z decays, shape (2, n) each."""
    mass = _breit_wigner(rng, n, *config.mass_range)
    z_pt = rng.exponential(8.0, n)
    z_y = rng.normal(0.0, 1.2, n)
    z_phi = rng.uniform(-np.pi, np.pi, n)
    mt = np.sqrt(mass**2 + z_pt**2)
    z_e, z_p = mt * np.cosh(z_y), np.stack([z_pt * np.cos(z_phi), z_pt * np.sin(z_phi), mt * np.sinh(z_y)])
    # muon momentum in the Z rest frame, isotropic
    p_star = np.sqrt(mass**2 / 4 - MUON_MASS**2)
    cos_t = rng.uniform(-1.0, 1.0, n)
    phi_s = rng.uniform(-np.pi, np.pi, n)
    sin_t = np.sqrt(1 - cos_t**2)
    rest = p_star * np.stack([sin_t * np.cos(phi_s), sin_t * np.sin(phi_s), cos_t])
    e_star = mass / 2
    beta = z_p / z_e
    gamma = z_e / mass
    out = []
    for sign in (1.0, -1.0):
        p = sign * rest
        bp = (beta * p).sum(axis=0)
        out.append(p + (gamma**2 / (gamma + 1) * bp + gamma * e_star) * beta)
    return out[0], out[1]


def _to_pt_eta_phi(p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    pt = np.hypot(p[0], p[1])
    return pt, np.arcsinh(p[2] / pt), np.arctan2(p[1], p[0])


def _pair_mass32(pt: np.ndarray, eta: np.ndarray, phi: np.ndarray) -> np.ndarray:
    """Mass of muon pairs stored as float32 (shape (2, n)), recomputed in float64 for the truth count."""
    pt, eta, phi = (x.astype(np.float32).astype(np.float64) for x in (pt, eta, phi))
    m = np.float64(np.float32(MUON_MASS))
    px, py, pz = pt * np.cos(phi), pt * np.sin(phi), pt * np.sinh(eta)
    e = np.sqrt(px**2 + py**2 + pz**2 + m**2)
    m2 = e.sum(0) ** 2 - px.sum(0) ** 2 - py.sum(0) ** 2 - pz.sum(0) ** 2
    return np.sqrt(np.maximum(m2, 0.0))


def generate_events(config: GeneratorConfig) -> tuple[dict[str, Any], Truth]:
    """All branches of one file as numpy/awkward arrays, plus the generator's truth counts."""
    rng = _rng(config.seed, config.file_index)
    n = int(config.events)
    is_signal = rng.uniform(size=n) < config.signal_fraction
    signal_events = np.nonzero(is_signal)[0]
    n_sig = signal_events.size
    mu_a, mu_b = _z_decays(rng, n_sig, config)
    (pt_a, eta_a, phi_a), (pt_b, eta_b, phi_b) = _to_pt_eta_phi(mu_a), _to_pt_eta_phi(mu_b)
    pt_a = pt_a * (1 + config.pt_resolution * rng.standard_normal(n_sig))
    pt_b = pt_b * (1 + config.pt_resolution * rng.standard_normal(n_sig))
    charge_a = np.where(rng.uniform(size=n_sig) < 0.5, 1, -1)
    sig_pt, sig_eta, sig_phi = np.stack([pt_a, pt_b]), np.stack([eta_a, eta_b]), np.stack([phi_a, phi_b])
    sig_mass = _pair_mass32(sig_pt, sig_eta, sig_phi)
    in_window = int(((sig_mass > Z_WINDOW[0]) & (sig_mass < Z_WINDOW[1])).sum())

    owner = [np.repeat(signal_events, 2)]
    pt, eta, phi = [sig_pt.T.ravel()], [sig_eta.T.ravel()], [sig_phi.T.ravel()]
    charge = [np.stack([charge_a, -charge_a]).T.ravel()]
    if config.background:
        n_bkg = rng.poisson(config.background_muons, n)
        total = int(n_bkg.sum())
        owner.append(np.repeat(np.arange(n), n_bkg))
        pt.append(5.0 + rng.exponential(15.0, total))
        eta.append(rng.uniform(-2.4, 2.4, total))
        phi.append(rng.uniform(-np.pi, np.pi, total))
        charge.append(np.where(rng.uniform(size=total) < 0.5, 1, -1))
    owner_all = np.concatenate(owner)
    pt_all = np.concatenate(pt).astype(np.float32)
    order = np.lexsort((-pt_all, owner_all))  # by event, then pT descending, as NanoAOD sorts
    n_muon = np.bincount(owner_all, minlength=n).astype(np.int32)
    muons = ak.zip({
        "pt": ak.unflatten(pt_all[order], n_muon),
        "eta": ak.unflatten(np.concatenate(eta).astype(np.float32)[order], n_muon),
        "phi": ak.unflatten(np.concatenate(phi).astype(np.float32)[order], n_muon),
        "mass": ak.unflatten(np.full(order.size, MUON_MASS, dtype=np.float32), n_muon),
        "charge": ak.unflatten(np.concatenate(charge).astype(np.int32)[order], n_muon),
    })

    n_jet = rng.poisson(config.jets, n).astype(np.int32) if config.background else np.zeros(n, np.int32)
    total_jets = int(n_jet.sum())
    jet_pt = 25.0 + rng.exponential(35.0, total_jets)
    jet_eta = rng.uniform(-2.5, 2.5, total_jets)
    jet_phi = rng.uniform(-np.pi, np.pi, total_jets)
    jet_mass = jet_pt * rng.uniform(0.05, 0.2, total_jets)
    jet_order = np.lexsort((-jet_pt, np.repeat(np.arange(n), n_jet)))
    jets = ak.zip({name: ak.unflatten(values[jet_order].astype(np.float32), n_jet)
                   for name, values in (("pt", jet_pt), ("eta", jet_eta), ("phi", jet_phi), ("mass", jet_mass))})
    met_xy = rng.normal(0.0, config.met_sigma, (2, n))
    first = config.file_index * n
    branches = {
        "run": np.ones(n, dtype=np.uint32),
        "luminosityBlock": (1 + (first + np.arange(n)) // 1000).astype(np.uint32),
        "event": (first + np.arange(n) + 1).astype(np.uint64),
        "Muon": muons,
        "Jet": jets,
        "MET_pt": np.hypot(met_xy[0], met_xy[1]).astype(np.float32),
        "MET_phi": np.arctan2(met_xy[1], met_xy[0]).astype(np.float32),
    }
    if config.gen_weight:
        # Magnitudes are multiples of 1/4 up to 2: every sum of them is exact in float64, whatever the order,
        # so tests can compare weighted sums exactly. Drawn last: the other branches do not change.
        magnitude = rng.integers(1, 9, n) / 4.0
        sign = np.where(rng.uniform(size=n) < config.negative_weight_fraction, -1.0, 1.0)
        branches["genWeight"] = (sign * magnitude).astype(np.float32)
    if config.sf_weights:
        # A muon efficiency scale factor's up/down variation, 1 +- 1/32 per muon (dyadic: exact sums); no draws.
        n_muons = ak.to_numpy(ak.num(muons)).astype(np.float64)
        branches["muonSF_up"] = (1.0 + n_muons / 32).astype(np.float32)
        branches["muonSF_down"] = np.maximum(1.0 - n_muons / 32, 0.0).astype(np.float32)
    truth = Truth(events=n, signal_events=int(n_sig), signal_in_window=in_window, muons=int(order.size),
                  jets=total_jets, config={k: v for k, v in asdict(config).items()
                                               if (config.gen_weight or k not in ("gen_weight", "negative_weight_fraction"))
                                               and (config.sf_weights or k != "sf_weights")})
    return branches, truth


def compression_from_name(name: str) -> Any:
    """'zlib', 'lz4', 'zstd', 'lzma' with an optional ':level' (default 1), or 'none'."""
    algorithm, _, level = name.lower().partition(":")
    if algorithm in ("none", ""):
        return None
    makers = {"zlib": uproot.ZLIB, "lz4": uproot.LZ4, "zstd": uproot.ZSTD, "lzma": uproot.LZMA}
    if algorithm not in makers:
        raise ValueError(f"unknown compression {name!r}; use one of {sorted(makers)} or 'none', e.g. 'lz4:1'")
    return makers[algorithm](int(level) if level else 1)


BRANCH_TYPES: dict[str, Any] = {
    "run": np.uint32,
    "luminosityBlock": np.uint32,
    "event": np.uint64,
    "Muon": "var * {pt: float32, eta: float32, phi: float32, mass: float32, charge: int32}",
    "Jet": "var * {pt: float32, eta: float32, phi: float32, mass: float32}",
    "MET_pt": np.float32,
    "MET_phi": np.float32,
}


def write_events_file(path: str | Path, config: GeneratorConfig, compression: str = "zlib:1",
                      basket_entries: int = 100_000) -> Truth:
    """Write one NanoAOD-like ROOT file (a TTree made with mktree, never an RNTuple) and return its truth.

    Baskets hold `basket_entries` events (one `extend` each), like NanoAOD's clusters; the reader aligns its
    chunks to them. The truth is also stored in the file (a TObjString) so a reduction can report it.
    """
    branches, truth = generate_events(config)
    types = {k: (ak.types.from_datashape(v, highlevel=False) if isinstance(v, str) else v) for k, v in BRANCH_TYPES.items()}
    for name in ("genWeight", "muonSF_up", "muonSF_down"):
        if name in branches:
            types[name] = np.float32
    with uproot.recreate(path, compression=compression_from_name(compression)) as file:
        tree = file.mktree(TREE, types, title="Events")
        for start in range(0, max(config.events, 1), basket_entries):
            stop = min(start + basket_entries, config.events)
            if stop <= start:
                break
            tree.extend({name: values[start:stop] for name, values in branches.items()})
        file[TRUTH_KEY] = truth.to_json()
    return truth


def read_truth(path: str | Path) -> dict[str, Any]:
    """The generator truth stored in a file written by write_events_file."""
    with uproot.open(path) as file:
        return json.loads(str(file[TRUTH_KEY]))


def write_events_rntuple(path: str | Path, config: GeneratorConfig, compression: str = "zlib:1",
                         cluster_entries: int = 100_000) -> Truth:
    """The same events as write_events_file, as an RNTuple `Events` (ROOT's format for Run 4) with NanoAOD's
    flat field names (`nMuon`, `Muon_pt`, ...), one cluster per `cluster_entries` events; truth as there.

    Why: the reduction must give the same histograms from either format; uproot writes an RNTuple when a dict
    of arrays is assigned to a file key, and `extend` adds clusters.
    """
    branches, truth = generate_events(config)
    fields: dict[str, Any] = {}
    for name, values in branches.items():
        if isinstance(values, ak.Array) and values.fields:  # a collection: its counter and one field per member
            fields[f"n{name}"] = ak.to_numpy(ak.num(values)).astype(np.int32)
            fields.update({f"{name}_{member}": values[member] for member in values.fields})
        else:
            fields[name] = values
    with uproot.recreate(path, compression=compression_from_name(compression)) as file:
        for start in range(0, max(config.events, 1), cluster_entries):
            stop = min(start + cluster_entries, config.events)
            chunk = {name: values[start:stop] for name, values in fields.items()}
            if start == 0:
                file[TREE] = chunk
            elif stop > start:
                file[TREE].extend(chunk)
        file[TRUTH_KEY] = truth.to_json()
    return truth
