"""Engines compile a plan and run it: Parsl (in-process) and Snakemake (a generated Snakefile).

`driver` holds what both share (run directory, staleness records, manifest, the task's shell line);
each engine module only turns the chosen tasks into its own program and runs it.
"""

from __future__ import annotations

from portaflow.engines.base import Engine


def engine_for(name: str) -> Engine:
    """The engine named on the command line."""
    if name == "parsl":
        from portaflow.engines.parsl_engine import ParslEngine

        return ParslEngine()
    if name == "snakemake":
        from portaflow.engines.snakemake_engine import SnakemakeEngine

        return SnakemakeEngine()
    raise ValueError(f"unknown engine {name!r} (engines: parsl, snakemake)")


ENGINES = ("parsl", "snakemake")
__all__ = ["ENGINES", "Engine", "engine_for"]
