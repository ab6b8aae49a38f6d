"""Stokes I from the correlations a Measurement Set holds, as its POLARIZATION table names them.

Why by name: real MSs store their correlations in any order (XX YY XY YX from OVRO-LWA, XX XY YX YY from
MWA, RR RL LR LL from the VLA) or a subset of them; averaging "the first and the last" images (XX+YX)/2
for the first of those.  Stokes I is (XX+YY)/2 for linear feeds and (RR+LL)/2 for circular ones
(the convention of CASA and WSClean); a correlation already labelled I is taken as it is.  When none of
these pairs is present the data cannot give Stokes I and reading stops with an InputError.
"""

from __future__ import annotations

import numpy as np

from portaflow.errors import InputError

# casacore's Stokes enumeration (measures/Measures/Stokes.h)
CORR_NAMES = {1: "I", 2: "Q", 3: "U", 4: "V", 5: "RR", 6: "RL", 7: "LR", 8: "LL", 9: "XX", 10: "XY", 11: "YX",
              12: "YY"}
STOKES_I_PAIRS = ((9, 12), (5, 8))  # XX+YY, RR+LL


def corr_names(corr_types: list[int]) -> list[str]:
    return [CORR_NAMES.get(int(c), f"#{int(c)}") for c in corr_types]


def stokes_i_indices(corr_types: list[int], source: str) -> tuple[int, ...]:
    """Positions of the correlations that make Stokes I: ``(k,)`` for an I correlation, else a parallel-hand pair."""
    corr = [int(c) for c in corr_types]
    if 1 in corr:
        return (corr.index(1),)
    for a, b in STOKES_I_PAIRS:
        if a in corr and b in corr:
            return corr.index(a), corr.index(b)
    raise InputError(f"{source}: cannot form Stokes I: its POLARIZATION table holds {' '.join(corr_names(corr))} "
                     "(Stokes I needs XX and YY, RR and LL, or I)")


def stokes_i(data: np.ndarray, flag: np.ndarray, weight: np.ndarray, corr_types: list[int],
             source: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(vis, flag, weight) of Stokes I from (nrow, nchan, ncorr) data, flags and weights.

    A sample is flagged when either hand is; the weight of the mean of two hands with weights wa, wb
    (1/variance) is ``4 wa wb / (wa + wb)`` (zero where either is zero)."""
    idx = stokes_i_indices(corr_types, source)
    if len(idx) == 1:
        k = idx[0]
        return data[..., k], flag[..., k], weight[..., k].astype(np.float32)
    a, b = idx
    vis = 0.5 * (data[..., a] + data[..., b])
    wa, wb = weight[..., a].astype(np.float64), weight[..., b].astype(np.float64)
    total = wa + wb
    w = np.divide(4.0 * wa * wb, total, out=np.zeros_like(total), where=total > 0)
    return vis, flag[..., a] | flag[..., b], w.astype(np.float32)
