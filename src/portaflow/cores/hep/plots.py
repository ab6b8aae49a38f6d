"""PNG plots in the HEP style (mplhep), byte-deterministic for the same histograms.

Why Figure + Agg canvas instead of pyplot: no global figure state, so plotting inside a Dask worker or a
long-lived process leaks nothing; the style is applied in a context so it does not change the caller's
rcParams. PNG metadata carries no software version or date, so reruns give identical files.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from portaflow.cores.hep.fit import FitResult, ZPeakModel

PNG_METADATA = {"Software": None}


def _style() -> Any:
    import matplotlib
    import mplhep

    return matplotlib.style.context(mplhep.style.ROOT)


def _save(fig: Figure, path: str | Path) -> None:
    FigureCanvasAgg(fig)
    fig.savefig(path, format="png", dpi=100, metadata=PNG_METADATA)  # PNG whatever the name ends with


def plot_mass(path: str | Path, spectrum: Mapping[str, Any], fine: Mapping[str, Any],
              fit: FitResult | None, model: ZPeakModel | None) -> None:
    """Left: the full opposite-charge dimuon spectrum (log scale); right: the Z region with the fit. Weighted
    products show their sums of weights with sqrt(sum w^2) errors."""
    import mplhep

    with _style():
        fig = Figure(figsize=(16, 7), layout="constrained")
        left, right = fig.subplots(1, 2)
        mplhep.histplot(np.asarray(spectrum.get("values", spectrum["counts"])), np.asarray(spectrum["edges"]), ax=left, histtype="fill",
                        alpha=0.6, label="opposite-charge pairs")
        left.set_yscale("log")
        left.set_xlabel(spectrum["label"])
        left.set_ylabel("Pairs / bin")
        left.legend(loc="upper left", fontsize=14)
        edges, counts = np.asarray(fine["edges"]), np.asarray(fine.get("values", fine["counts"]), dtype=float)
        errors = np.sqrt(np.asarray(fine["variances"], dtype=float))  # = sqrt(counts) when unweighted
        mplhep.histplot(counts, edges, yerr=errors, ax=right, histtype="errorbar", color="black", label="data")
        if fit is not None and model is not None:
            x = np.linspace(fit.fit_range[0], fit.fit_range[1], 800)
            width = edges[1] - edges[0]
            right.plot(x, model.density(x, fit.values) * width, color="tab:red", label="Voigt + exponential")
            v, e = fit.values, fit.errors
            right.text(0.03, 0.95, f"m = {v['mass']:.3f} ± {e['mass']:.3f} GeV\nΓ = {v['width']:.3f} ± {e['width']:.3f} GeV\n"
                       f"σ = {v['sigma']:.3f} ± {e['sigma']:.3f} GeV\nχ²/ndf = {fit.chi2:.1f}/{fit.ndof}",
                       transform=right.transAxes, va="top", fontsize=14)
        right.set_xlim(edges[0], edges[-1])
        right.set_xlabel(fine["label"])
        right.set_ylabel(f"Pairs / {edges[1] - edges[0]:g} GeV")
        right.set_ylim(0, 1.35 * max(counts.max(), 1.0))
        right.legend(loc="upper right", fontsize=14)
        _save(fig, path)


def plot_met(path: str | Path, histograms: Mapping[str, Mapping[str, Any]], names: tuple[str, ...]) -> None:
    """The MET histograms of the ADL-style queries, overlaid (counts, log scale)."""
    import mplhep

    with _style():
        fig = Figure(figsize=(9, 7), layout="constrained")
        ax = fig.subplots()
        for name in names:
            h = histograms[name]
            mplhep.histplot(np.asarray(h["counts"]), np.asarray(h["edges"]), ax=ax, label=h["title"])
        ax.set_yscale("log")
        ax.set_xlabel(histograms[names[0]]["label"])
        ax.set_ylabel("Events / bin")
        ax.legend(loc="upper right", fontsize=12)
        _save(fig, path)


def stack_components(document: Mapping[str, Any], name: str, systematic: str = "nominal") -> dict[str, Any]:
    """From a processor product: edges, the summed data (values, variances), each simulated sample's values for
    `systematic`, and the total simulation per systematic (for the band). Why a function of its own: the plot
    and the tests read the same numbers."""
    h = document["histograms"][name]
    axes = [a["name"] for a in h["axes"]]
    if axes[:1] != ["dataset"] or "edges" not in h["axes"][-1]:
        raise ValueError(f"histogram {name}: expected axes (dataset, [systematic,] x), got {axes}")
    datasets = h["axes"][0]["categories"]
    systematics = h["axes"][1]["categories"] if len(axes) == 3 else ["nominal"]
    values, variances = np.asarray(h["values"], dtype=float), np.asarray(h["variances"], dtype=float)
    if len(axes) == 2:
        values, variances = values[:, None, :], variances[:, None, :]
    kinds = {s: info.get("kind", "mc") for s, info in document.get("samples", {}).items()}
    nominal = systematics.index(systematic)
    data = [k for k, d in enumerate(datasets) if kinds.get(d) == "data"]
    mc = [k for k, d in enumerate(datasets) if kinds.get(d) != "data"]
    return {
        "edges": np.asarray(h["axes"][-1]["edges"]), "label": h["axes"][-1].get("label", ""),
        "data": values[data, nominal].sum(axis=0) if data else None,
        "data_variance": variances[data, nominal].sum(axis=0) if data else None,
        "mc": {datasets[k]: values[k, nominal] for k in mc},
        "mc_total": {s: values[mc, j].sum(axis=0) for j, s in enumerate(systematics)},
        "mc_variance": variances[mc, nominal].sum(axis=0),
    }


def systematic_band(totals: Mapping[str, np.ndarray], systematic: str = "nominal") -> np.ndarray:
    """Per bin: the quadrature sum over sources (`x_up`/`x_down` pairs) of the larger |variation - nominal|."""
    nominal = totals[systematic]
    band = np.zeros_like(nominal)
    for name in totals:
        if name.endswith("_up") and name[:-3] + "_down" in totals:
            shift = np.maximum(np.abs(totals[name] - nominal), np.abs(totals[name[:-3] + "_down"] - nominal))
            band += shift * shift
    return np.sqrt(band)


def plot_stack(path: str | Path, document: Mapping[str, Any], name: str, log_y: bool = False) -> None:
    """Data (points, sqrt(sum w^2) errors) over the normalised simulation stacked by sample, with the statistical
    and systematic uncertainty of the simulation as a hatched band and a data/simulation ratio panel."""
    import mplhep

    parts = stack_components(document, name)
    edges = parts["edges"]
    total = parts["mc_total"]["nominal"]
    band = np.sqrt(parts["mc_variance"] + systematic_band(parts["mc_total"]) ** 2)
    lumi = document.get("luminosity")
    with _style():
        fig = Figure(figsize=(9, 9), layout="constrained")
        top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1])
        if parts["mc"]:
            mplhep.histplot(list(parts["mc"].values()), edges, ax=top, stack=True, histtype="fill",
                            label=list(parts["mc"].keys()))
            top.stairs(total + band, edges, baseline=total - band, fill=True, hatch="///", alpha=0.3, color="grey",
                       label="stat. + syst.")
        if parts["data"] is not None:
            mplhep.histplot(parts["data"], edges, yerr=np.sqrt(parts["data_variance"]), ax=top, histtype="errorbar",
                            color="black", label="data")
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio = np.where(total > 0, parts["data"] / total, np.nan)
                error = np.where(total > 0, np.sqrt(parts["data_variance"]) / total, np.nan)
                rel = np.where(total > 0, band / total, 0.0)
            mplhep.histplot(ratio, edges, yerr=error, ax=bottom, histtype="errorbar", color="black")
            bottom.stairs(1 + rel, edges, baseline=1 - rel, fill=True, hatch="///", alpha=0.3, color="grey")
        bottom.axhline(1.0, color="grey", lw=1)
        bottom.set_ylim(0.5, 1.5)
        bottom.set_ylabel("data / sim.")
        bottom.set_xlabel(parts["label"])
        top.set_ylabel("Events / bin")
        if log_y:
            top.set_yscale("log")
        if lumi:
            top.set_title(f"{lumi:g} pb$^{{-1}}$", loc="right", fontsize=14)
        top.legend(loc="upper right", fontsize=12)
        _save(fig, path)
