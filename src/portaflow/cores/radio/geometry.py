"""The image grid and the gridder interface shared by every gridding backend.

Why a module of its own: :mod:`.gridding` (which picks a backend), :mod:`.esgridder` (the generic
algorithm) and :mod:`.gpu` (the CuPy backend) all need these two types; holding them here lets each of
those import downwards only, with no cycle between them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ImageGeometry:
    """Square image grid and accuracy: ``npix`` pixels of ``cell`` radians, relative error ``epsilon``."""

    npix: int
    cell: float
    epsilon: float = 1e-5
    do_wgridding: bool = True

    def __post_init__(self) -> None:
        if self.npix < 32 or self.npix % 2:
            raise ValueError(f"npix must be even and >= 32 (got {self.npix})")
        if not self.cell > 0:
            raise ValueError("cell must be positive")
        if not 1e-12 < self.epsilon < 0.1:
            raise ValueError(f"epsilon {self.epsilon} out of range (1e-12, 0.1)")


VisToDirty = Callable[..., np.ndarray]
DirtyToVis = Callable[..., np.ndarray]


@dataclass(frozen=True)
class Backend:
    """A device's gridder: ``vis2dirty(uvw, freq, vis, wgt, geom, nthreads)`` and
    ``dirty2vis(uvw, freq, dirty, geom, nthreads)``; uvw in metres, freq in Hz, images (npix, npix)."""

    name: str
    vis2dirty: VisToDirty
    dirty2vis: DirtyToVis
