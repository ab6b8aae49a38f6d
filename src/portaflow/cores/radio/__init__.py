"""Radio interferometric imaging core.

A plain library (no portaflow imports): simulate an interferometer observation, store it as a
Measurement Set or zarr, grid/degrid with ducc0 (CPU) or CuPy (GPU), image it on a Dask cluster
partitioned by w range and channel, deconvolve with Hogbom/Cotton-Schwab CLEAN, and write FITS, PNG
and JSON products.  Workflow steps live in :mod:`portaflow.cores.radio.steps`.

Conventions used throughout (and checked by the tests against independent formulas):

* Measurement equation, with the sign real Measurement Sets follow:
  ``V(u,v,w) = sum_s F_s exp(+2 pi i (u l + v m + w (n-1)))`` with uvw the MS UVW column (in wavelengths,
  baseline = antenna2 - antenna1), ``l`` towards east (increasing RA), ``m`` towards north,
  ``n = sqrt(1-l^2-m^2)``.  This is CASA's documented ``exp(-2 pi i (u l + v m + w (n-1)))`` with
  (u, v, w) the baseline antenna1 - antenna2; it is the convention of the software that writes MSs
  (pyuvdata phases with ``V *= exp(-2 pi i dw)``) and the one WSClean and pfb-imaging image with ducc0.
  Imaging the other way round mirrors the sky through the phase centre.
* Image arrays in memory follow ducc0: ``img[i, j]`` is at ``l = (i - N/2) cell``, ``m = (j - N/2) cell``.
  FITS files are transposed/flipped to the usual RA-left, Dec-up orientation (see ``products``).
* Images are not divided by ``n``: a model pixel holds a flux in Jy, so degridding a model that holds the
  simulated fluxes reproduces the simulated visibilities.
"""

from __future__ import annotations

C_LIGHT = 299_792_458.0  # m/s

__all__ = ["C_LIGHT"]
