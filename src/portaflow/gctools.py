"""Pause Python's cyclic garbage collector around bulk building of long-lived objects."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def paused_gc() -> Iterator[None]:
    """Why: building a plan or a Snakefile for 100k tasks allocates millions of objects that all stay
    alive; the collector's repeated full passes over them made the time grow faster than the task count."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
