"""The in-memory observation every part of the radio core exchanges.

One small dataclass instead of loose arrays so that the simulator, the Measurement Set and zarr
readers/writers and the imager agree on shapes and units (and round trips can be compared field by
field).  One Stokes parameter at a time (I by default; Q, U or V when the reader is asked for one): its
``selection["stokes"]`` says which.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Observation:
    """Visibilities plus the metadata needed to image them.

    Shapes: ``nrow`` = baselines x times, ``nchan`` channels.

    * ``uvw``: (nrow, 3) float64, metres (MS convention; divide by wavelength for uvw in wavelengths).
    * ``freq``: (nchan,) float64, Hz.
    * ``vis``: (nrow, nchan) complex128 or complex64 (as stored in a standard MS), Jy (one Stokes parameter).
    * ``weight``: (nrow, nchan) float32 (natural weights, 1/sigma^2; float32 as in an MS).
    * ``flag``: (nrow, nchan) bool, True = bad.
    * ``antenna1``/``antenna2``: (nrow,) int32; ``time``: (nrow,) float64 MJD seconds.
    * ``antenna_positions``: (nant, 3) float64 ITRF-like XYZ metres.
    * ``phase_centre``: (ra, dec) radians.
    * ``meta``: plain JSON-able dict (simulation settings, the true sky, suggested image geometry).
    * ``telescope``, ``field_name``: as the MS's OBSERVATION and FIELD tables name them (for FITS headers).
    * ``dish_diameter_m``: median DISH_DIAMETER of the antennas (0 when unknown): sizes the default image.
    * ``selection``: what was read (field id, SPW ids, data and weight columns, rows dropped): JSON-able.
    """

    uvw: np.ndarray
    freq: np.ndarray
    vis: np.ndarray
    weight: np.ndarray
    flag: np.ndarray
    antenna1: np.ndarray
    antenna2: np.ndarray
    time: np.ndarray
    antenna_positions: np.ndarray
    phase_centre: tuple[float, float]
    meta: dict[str, Any] = field(default_factory=dict)
    telescope: str = ""
    field_name: str = ""
    dish_diameter_m: float = 0.0
    selection: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        nrow, nchan = self.vis.shape
        if self.uvw.shape != (nrow, 3):
            raise ValueError(f"uvw has shape {self.uvw.shape}, expected ({nrow}, 3)")
        if self.freq.shape != (nchan,):
            raise ValueError(f"freq has shape {self.freq.shape}, expected ({nchan},)")
        for name in ("weight", "flag"):
            if getattr(self, name).shape != (nrow, nchan):
                raise ValueError(f"{name} has shape {getattr(self, name).shape}, expected ({nrow}, {nchan})")

    @property
    def nrow(self) -> int:
        return int(self.vis.shape[0])

    @property
    def nchan(self) -> int:
        return int(self.vis.shape[1])

    @property
    def nvis(self) -> int:
        return int(self.vis.size)

    def imaging_weights(self) -> np.ndarray:
        """Natural weights with flagged samples set to zero (what the gridder multiplies in)."""
        return np.where(self.flag, 0.0, self.weight).astype(np.float64)
