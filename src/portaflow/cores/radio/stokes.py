"""Stokes I, Q, U or V from the correlations a Measurement Set holds, as its POLARIZATION table names them.

Why by name: real MSs store their correlations in any order (XX YY XY YX from OVRO-LWA, XX XY YX YY from
MWA, RR RL LR LL from the VLA) or a subset of them; averaging "the first and the last" images (XX+YX)/2
for the first of those.

The formulas are the IAU/IEEE convention as CASA defines the MS correlations (Hamaker & Bregman 1996),
checked against casacore's ``Flux<T>::stokesToLinear``/``stokesToCircular`` (CASA's component models) and
current WSClean's ``aocommon::Polarization::LinearToStokes`` (V = Im(XY - YX)/2 of a real image; early WSClean
versions swapped X and Y, flipping the sign of Q)::

    linear feeds    XX = I + Q    XY = U + iV    YX = U - iV    YY = I - Q
    circular feeds  RR = I + V    RL = Q + iU    LR = Q - iU    LL = I - V

hence ``I = (XX+YY)/2, Q = (XX-YY)/2, U = (XY+YX)/2, V = -i (XY-YX)/2`` and ``I = (RR+LL)/2,
Q = (RL+LR)/2, U = -i (RL-LR)/2, V = (RR-LL)/2``.  A correlation already labelled I, Q, U or V is taken as it
is.  No parallactic-angle rotation is applied (the feeds are taken as the sky frame, as a calibrated MS of an
equatorial array or WSClean without beam correction takes them).  When the MS lacks the correlations a Stokes
parameter needs, reading stops with an InputError naming what it holds and what is needed.
"""

from __future__ import annotations

import numpy as np

from portaflow.errors import InputError

# casacore's Stokes enumeration (measures/Measures/Stokes.h)
CORR_NAMES = {1: "I", 2: "Q", 3: "U", 4: "V", 5: "RR", 6: "RL", 7: "LR", 8: "LL", 9: "XX", 10: "XY", 11: "YX",
              12: "YY"}
STOKES = ("I", "Q", "U", "V")
STOKES_CODE = {name: code for code, name in CORR_NAMES.items() if name in STOKES}  # FITS STOKES axis: I=1 .. V=4
# Each Stokes parameter: the correlations that give it and their coefficients, tried in this order.
RECIPES: dict[str, tuple[tuple[tuple[int, ...], tuple[complex, ...]], ...]] = {
    "I": (((1,), (1.0,)), ((9, 12), (0.5, 0.5)), ((5, 8), (0.5, 0.5))),
    "Q": (((2,), (1.0,)), ((9, 12), (0.5, -0.5)), ((6, 7), (0.5, 0.5))),
    "U": (((3,), (1.0,)), ((10, 11), (0.5, 0.5)), ((6, 7), (-0.5j, 0.5j))),
    "V": (((4,), (1.0,)), ((10, 11), (-0.5j, 0.5j)), ((5, 8), (0.5, -0.5))),
}


def corr_names(corr_types: list[int]) -> list[str]:
    return [CORR_NAMES.get(int(c), f"#{int(c)}") for c in corr_types]


def check_stokes(stokes: str) -> str:
    """The Stokes parameter named (case-insensitive), or an InputError listing the four."""
    name = str(stokes).strip().upper()
    if name not in STOKES:
        raise InputError(f"stokes {stokes!r} is not one of {', '.join(STOKES)}")
    return name


def stokes_recipe(corr_types: list[int], stokes: str, source: str) -> tuple[tuple[int, ...], tuple[complex, ...]]:
    """Positions of the correlations that make ``stokes`` and their coefficients."""
    name = check_stokes(stokes)
    corr = [int(c) for c in corr_types]
    for needed, coeffs in RECIPES[name]:
        if all(c in corr for c in needed):
            return tuple(corr.index(c) for c in needed), coeffs
    options = ", ".join(" and ".join(CORR_NAMES[c] for c in needed) for needed, _ in RECIPES[name][1:])
    raise InputError(f"{source}: cannot form Stokes {name}: its POLARIZATION table holds {' '.join(corr_names(corr))} "
                     f"(Stokes {name} needs {options}, or {name})")


def stokes_i_indices(corr_types: list[int], source: str) -> tuple[int, ...]:
    """Positions of the correlations that make Stokes I: ``(k,)`` for an I correlation, else a parallel-hand pair."""
    return stokes_recipe(corr_types, "I", source)[0]


def form_stokes(data: np.ndarray, flag: np.ndarray, weight: np.ndarray, corr_types: list[int], stokes: str,
                source: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(vis, flag, weight) of one Stokes parameter from (nrow, nchan, ncorr) data, flags and weights.

    A sample is flagged when either correlation is; the weight of ``(a +- b)/2`` (or ``-+i (a - b)/2``) with
    weights wa, wb (1/variance) is ``4 wa wb / (wa + wb)`` (zero where either is zero)."""
    idx, coeffs = stokes_recipe(corr_types, stokes, source)
    if len(idx) == 1:
        k = idx[0]
        return data[..., k], flag[..., k], weight[..., k].astype(np.float32)
    (a, b), (ca, cb) = idx, coeffs
    if ca.imag == 0 and cb.imag == 0:  # stay in the data's precision (complex64 stays complex64)
        vis = ca.real * data[..., a] + cb.real * data[..., b]
    else:
        vis = (data[..., a] - data[..., b]) * np.asarray(ca, dtype=data.dtype)
    wa, wb = weight[..., a].astype(np.float64), weight[..., b].astype(np.float64)
    total = wa + wb
    w = np.divide(4.0 * wa * wb, total, out=np.zeros_like(total), where=total > 0)
    return vis, flag[..., a] | flag[..., b], w.astype(np.float32)


def stokes_i(data: np.ndarray, flag: np.ndarray, weight: np.ndarray, corr_types: list[int],
             source: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(vis, flag, weight) of Stokes I (see :func:`form_stokes`)."""
    return form_stokes(data, flag, weight, corr_types, "I", source)
