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
    """Left: the full opposite-charge dimuon spectrum (log scale); right: the Z region with the fit."""
    import mplhep

    with _style():
        fig = Figure(figsize=(16, 7), layout="constrained")
        left, right = fig.subplots(1, 2)
        mplhep.histplot(np.asarray(spectrum["counts"]), np.asarray(spectrum["edges"]), ax=left, histtype="fill",
                        alpha=0.6, label="opposite-charge pairs")
        left.set_yscale("log")
        left.set_xlabel(spectrum["label"])
        left.set_ylabel("Pairs / bin")
        left.legend(loc="upper left", fontsize=14)
        edges, counts = np.asarray(fine["edges"]), np.asarray(fine["counts"], dtype=float)
        mplhep.histplot(counts, edges, yerr=np.sqrt(counts), ax=right, histtype="errorbar", color="black", label="data")
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
