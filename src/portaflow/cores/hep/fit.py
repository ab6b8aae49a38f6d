"""The Z-peak fit: a Voigt profile (Breit-Wigner convolved with a Gaussian resolution) plus an exponential
background, fitted to a binned dimuon-mass histogram by an extended binned Poisson likelihood (iminuit).

Why binned and extended: the reduction produces histograms, not events, and a Poisson likelihood stays
correct in sparse bins where chi-square fits are biased. Expected bin contents are integrals of the model
over each bin (a fine trapezoid grid), not the density at the bin centre, so the fitted mass is not
pulled by the bin width. The Breit-Wigner here is non-relativistic, like the generator's; Gamma is its
full width at half maximum; sigma is the Gaussian mass resolution.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from iminuit import Minuit
from iminuit.cost import ExtendedBinnedNLL
from scipy.integrate import cumulative_trapezoid
from scipy.special import voigt_profile

PARAMETERS = ("n_signal", "mass", "width", "sigma", "n_background", "slope")
SUBDIVISIONS = 16  # grid points per bin for the bin integrals


@dataclass
class FitResult:
    """Values and HESSE uncertainties (0 for a parameter fixed because the background vanished);
    `valid` is Minuit's own verdict (converged, accurate covariance)."""

    values: dict[str, float]
    errors: dict[str, float]
    valid: bool
    accurate_covariance: bool
    nll: float
    chi2: float  # Pearson chi-square of the bins with expectation > 0 (weighted: over sum w^2), a goodness-of-fit figure
    ndof: int
    fit_range: tuple[float, float]
    correlation_mass_width: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class ZPeakModel:
    """Expected cumulative counts at bin edges, as iminuit's ExtendedBinnedNLL wants them."""

    def __init__(self, edges: np.ndarray) -> None:
        self.lo, self.hi = float(edges[0]), float(edges[-1])
        self.grid = np.linspace(self.lo, self.hi, (len(edges) - 1) * SUBDIVISIONS + 1)
        self.edge_index = np.arange(len(edges)) * SUBDIVISIONS

    def signal_cdf(self, mass: float, width: float, sigma: float) -> np.ndarray:
        density = voigt_profile(self.grid - mass, sigma, width / 2)
        cdf = cumulative_trapezoid(density, self.grid, initial=0.0)
        return cdf[self.edge_index] / cdf[-1]

    def background_cdf(self, x: np.ndarray, slope: float) -> np.ndarray:
        span = self.hi - self.lo
        if abs(slope * span) < 1e-8:
            return (x - self.lo) / span
        return np.expm1(slope * (x - self.lo)) / np.expm1(slope * span)

    def __call__(self, x: np.ndarray, n_signal: float, mass: float, width: float, sigma: float,
                 n_background: float, slope: float) -> np.ndarray:
        return n_signal * self.signal_cdf(mass, width, sigma) + n_background * self.background_cdf(x, slope)

    def density(self, x: np.ndarray, values: dict[str, float]) -> np.ndarray:
        """Expected counts per unit mass at x (for plots: multiply by the bin width)."""
        grid_norm = np.trapezoid(voigt_profile(self.grid - values["mass"], values["sigma"], values["width"] / 2), self.grid)
        signal = voigt_profile(x - values["mass"], values["sigma"], values["width"] / 2) / grid_norm
        slope, span = values["slope"], self.hi - self.lo
        if abs(slope * span) < 1e-8:
            background = np.full_like(x, 1.0 / span)
        else:
            background = slope * np.exp(slope * (x - self.lo)) / np.expm1(slope * span)
        return values["n_signal"] * signal + values["n_background"] * background


def fit_z_peak(edges: Sequence[float], counts: Sequence[float], fit_range: tuple[float, float] | None = None,
               variances: Sequence[float] | None = None) -> tuple[FitResult, ZPeakModel]:
    """Fit the histogram (in-range bins only) within fit_range (default: the whole histogram).

    Weighted histograms: `counts` are the sums of weights and `variances` their sums of squared weights; iminuit's
    ExtendedBinnedNLL then uses the scaled Poisson likelihood (Bohm and Zech), whose uncertainties reflect the
    effective number of entries sum(w)^2 / sum(w^2), not the sum of weights."""
    edges_all, counts_all = np.asarray(edges, dtype=np.float64), np.asarray(counts, dtype=np.float64)
    lo, hi = fit_range or (edges_all[0], edges_all[-1])
    first = int(np.searchsorted(edges_all, lo - 1e-9))
    last = int(np.searchsorted(edges_all, hi + 1e-9, side="right")) - 1
    edges_fit, n = edges_all[first:last + 1], counts_all[first:last]
    var = None if variances is None else np.asarray(variances, dtype=np.float64)[first:last]
    effective = n.sum() if var is None else (n.sum() ** 2 / var.sum() if var.sum() > 0 else 0.0)
    if len(n) < 8 or effective < 50:
        raise ValueError(f"too little to fit: {len(n)} bins with {effective:.0f} (effective) entries in {lo}-{hi} GeV")
    model = ZPeakModel(edges_fit)
    total = float(n.sum())
    peak = float(0.5 * (edges_fit[np.argmax(n)] + edges_fit[np.argmax(n) + 1]))
    cost = ExtendedBinnedNLL(n if var is None else np.stack([n, var], axis=-1), edges_fit, model)
    minuit = Minuit(cost, n_signal=0.9 * total, mass=peak, width=2.5, sigma=1.0, n_background=0.1 * total, slope=-0.02)
    minuit.limits["n_signal"] = (0, None)
    minuit.limits["n_background"] = (0, None)
    minuit.limits["mass"] = (edges_fit[0], edges_fit[-1])
    minuit.limits["width"] = (0.05, 20.0)
    minuit.limits["sigma"] = (0.01, 20.0)
    minuit.limits["slope"] = (-1.0, 1.0)
    minuit.migrad(ncall=20_000)
    if minuit.values["n_background"] < 1e-3 * max(1.0, minuit.errors["n_background"]):
        # No background at all (a limit-bound yield spoils HESSE): fix it at zero and its slope with it.
        minuit.values["n_background"] = 0.0
        minuit.fixed["n_background"] = minuit.fixed["slope"] = True
        minuit.migrad(ncall=20_000)
    minuit.hesse()
    values = {name: float(minuit.values[name]) for name in PARAMETERS}
    errors = {name: 0.0 if minuit.fixed[name] else float(minuit.errors[name]) for name in PARAMETERS}
    expected = np.diff(model(edges_fit, *[values[p] for p in PARAMETERS]))
    positive = expected > 0
    if var is None:
        chi2 = float((((n - expected) ** 2)[positive] / expected[positive]).sum())
    else:  # Neyman-like with the bins' own variances (sum w^2); empty bins left out
        positive &= var > 0
        chi2 = float((((n - expected) ** 2)[positive] / var[positive]).sum())
    correlation = float(minuit.covariance.correlation()["mass", "width"]) if minuit.covariance is not None else float("nan")
    result = FitResult(values=values, errors=errors, valid=bool(minuit.valid),
                       accurate_covariance=bool(minuit.accurate), nll=float(minuit.fval), chi2=chi2,
                       ndof=int(positive.sum()) - len(PARAMETERS), fit_range=(float(edges_fit[0]), float(edges_fit[-1])),
                       correlation_mass_width=correlation)
    return result, model
