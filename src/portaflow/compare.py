"""Compare two runs' copies of an output under the output's declared comparator.

Why more than sha256: ROOT files written by uproot carry a random UUID and a timestamp, FITS headers
carry dates, and multi-threaded floating point (ducc0 with >1 thread) is not bit-reproducible. Each
output names how its copies must agree; the tests and the portability matrix both use this module.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from portaflow.hashing import sha256_path
from portaflow.spec.workflow import Comparison

if TYPE_CHECKING:
    from portaflow.plan.model import Plan


@dataclass(frozen=True)
class Verdict:
    same: bool
    detail: str = ""


def compare(a: str | Path, b: str | Path, how: Comparison) -> Verdict:
    """Do `a` and `b` agree under `how`? A missing file never agrees."""
    a, b = Path(a), Path(b)
    for p in (a, b):
        if not p.exists():
            return Verdict(False, f"{p} does not exist")
    try:
        comparator = COMPARATORS[how.method]
    except KeyError:
        raise ValueError(f"unknown comparator {how.method!r} (known: {', '.join(sorted(COMPARATORS))})") from None
    return comparator(a, b, how)


def _sha256(a: Path, b: Path, how: Comparison) -> Verdict:
    da, db = sha256_path(a), sha256_path(b)
    return Verdict(da == db, "" if da == db else f"sha256 differs: {da[:12]} vs {db[:12]}")


def _exists(a: Path, b: Path, how: Comparison) -> Verdict:
    return Verdict(True, "both exist (content not compared)")


def _text(a: Path, b: Path, how: Comparison) -> Verdict:
    la, lb = a.read_text().splitlines(), b.read_text().splitlines()
    ignore = tuple(how.ignore)
    la = [line for line in la if not line.startswith(ignore)] if ignore else la
    lb = [line for line in lb if not line.startswith(ignore)] if ignore else lb
    for i, (x, y) in enumerate(zip(la, lb, strict=False)):  # a length difference is reported after the common lines
        if x != y:
            return Verdict(False, f"line {i + 1} differs: {x!r} vs {y!r}")
    return Verdict(len(la) == len(lb), "" if len(la) == len(lb) else f"{len(la)} vs {len(lb)} lines")


def close(x: float, y: float, how: Comparison) -> bool:
    """numpy.isclose's rule (|x - y| <= atol + rtol * |y|), with NaN equal to NaN."""
    if math.isnan(x) and math.isnan(y):
        return True
    return abs(x - y) <= how.atol + how.rtol * abs(y)


def _json_diff(x: Any, y: Any, how: Comparison, path: str) -> str | None:
    if isinstance(x, dict) and isinstance(y, dict):
        keys = (set(x) | set(y)) - set(how.ignore)
        for key in sorted(keys, key=str):
            if key not in x or key not in y:
                return f"{path}.{key}: present in only one"
            diff = _json_diff(x[key], y[key], how, f"{path}.{key}")
            if diff:
                return diff
        return None
    if isinstance(x, list) and isinstance(y, list):
        if len(x) != len(y):
            return f"{path}: lengths {len(x)} vs {len(y)}"
        for i, (u, v) in enumerate(zip(x, y, strict=True)):
            diff = _json_diff(u, v, how, f"{path}[{i}]")
            if diff:
                return diff
        return None
    numbers = (int, float)
    if isinstance(x, numbers) and isinstance(y, numbers) and not isinstance(x, bool) and not isinstance(y, bool):
        return None if close(float(x), float(y), how) else f"{path}: {x} vs {y}"
    return None if x == y else f"{path}: {x!r} vs {y!r}"


def _json(a: Path, b: Path, how: Comparison) -> Verdict:
    diff = _json_diff(json.loads(a.read_text()), json.loads(b.read_text()), how, "$")
    return Verdict(diff is None, diff or "")


def _arrays_close(x: Any, y: Any, how: Comparison, what: str) -> Verdict:
    import numpy as np

    x, y = np.asarray(x), np.asarray(y)
    if x.shape != y.shape:
        return Verdict(False, f"{what}: shapes {x.shape} vs {y.shape}")
    ok = np.allclose(x, y, rtol=how.rtol, atol=how.atol, equal_nan=True)
    if ok:
        return Verdict(True)
    worst = float(np.nanmax(np.abs(x.astype(float) - y.astype(float))))
    return Verdict(False, f"{what}: values differ (max abs difference {worst:g}, rtol {how.rtol}, atol {how.atol})")


FITS_IGNORED = ("DATE", "DATE-OBS", "DATE-MAP", "ORIGIN", "CHECKSUM", "DATASUM", "COMMENT", "HISTORY")
"""Header cards that differ between runs of the same step (dates, the writer, checksums over them, free text)."""


def _fits(a: Path, b: Path, how: Comparison) -> Verdict:
    """astropy's FITSDiff: HDUs, header values (floats within tolerance) and data within tolerance; dates,
    checksums, comments and the cards listed in `ignore` are not compared."""
    from astropy.io.fits.diff import FITSDiff

    diff = FITSDiff(str(a), str(b), ignore_keywords=[*FITS_IGNORED, *how.ignore], ignore_comments=["*"],
                    rtol=how.rtol, atol=how.atol, numdiffs=3)
    if diff.identical:
        return Verdict(True)
    return Verdict(False, fits_report(diff.report()))


def fits_report(report: str, limit: int = 600) -> str:
    """FITSDiff's report on one line: its differences without its preamble (file names, settings) and without
    difflib's marker lines (`?  ++`)."""
    body = report.split("Absolute tolerance", 1)[-1].split("\n", 1)[-1]
    words = " ".join(line.strip() for line in body.splitlines() if line.strip() and not line.strip().startswith("?"))
    return words if len(words) <= limit else words[: limit - 3] + "..."


def _root(a: Path, b: Path, how: Comparison) -> Verdict:
    """Same objects; histograms' contents and edges within tolerance; trees' branches equal (ignores UUID and time)."""
    import uproot

    with uproot.open(a) as fa, uproot.open(b) as fb:
        ka, kb = sorted(fa.keys(cycle=False)), sorted(fb.keys(cycle=False))
        if ka != kb:
            return Verdict(False, f"keys differ: {ka} vs {kb}")
        for key in ka:
            x, y = fa[key], fb[key]
            if hasattr(x, "values") and hasattr(x, "axes"):
                for what, u, v in (("values", x.values(flow=True), y.values(flow=True)),
                                   ("variances", x.variances(flow=True), y.variances(flow=True)),
                                   ("edges", x.axis().edges(), y.axis().edges())):
                    verdict = _arrays_close(u, v, how, f"{key} {what}")
                    if not verdict.same:
                        return verdict
            elif hasattr(x, "arrays"):
                if x.num_entries != y.num_entries:
                    return Verdict(False, f"{key}: {x.num_entries} vs {y.num_entries} entries")
                import awkward as ak

                for branch in x.keys():
                    if not ak.all(ak.ravel(x[branch].array() == y[branch].array())):
                        return Verdict(False, f"{key}/{branch} differs")
    return Verdict(True)


def _png(a: Path, b: Path, how: Comparison) -> Verdict:
    """Decoded pixels within tolerance (PNG bytes differ with metadata and compression)."""
    from matplotlib import image

    return _arrays_close(image.imread(a), image.imread(b), how, "pixels")


COMPARATORS: dict[str, Callable[[Path, Path, Comparison], Verdict]] = {
    "sha256": _sha256, "exists": _exists, "text": _text, "json": _json, "fits": _fits, "root": _root, "png": _png,
}


def compare_workdirs(plan: Plan, a: str | Path, b: str | Path) -> list[tuple[str, Verdict]]:
    """Every output of `plan` in work directory `a` against `b`, each under its own comparator."""
    return [(out.path, compare(Path(a) / out.path, Path(b) / out.path, out.compare))
            for task in plan.tasks for out in task.outputs.values()]
