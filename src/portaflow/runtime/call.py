"""`python -m portaflow.runtime.call '<json>'`: run a workflow step's Python or Dask callable.

Why an entry point: both engines then run every step as a plain shell command (a Parsl bash app, a
Snakemake `shell:` rule), inside a container or not, and the callable sees the same arguments.
On failure the step's outputs are removed, so nothing half-written looks complete.

This is a process's entry point, so when run as one it configures logging (the step's log is its
stderr): portaflow's INFO and up, other libraries' warnings, each line marked with where it came from.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import platform
import shutil
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger("portaflow.runtime.call")  # not __name__: run with -m, that is "__main__"


def load_target(target: str) -> Callable[..., Any]:
    """Import 'module:function'."""
    module_name, _, func_name = target.partition(":")
    module = importlib.import_module(module_name)
    try:
        return getattr(module, func_name)
    except AttributeError:
        raise SystemExit(f"portaflow: {module_name} has no function {func_name!r}") from None


def remove_outputs(outputs: dict[str, str], root: str | Path | None = None) -> list[str]:
    """Delete whatever a failed step left at its output paths; return the paths refused.

    Only inside `root` (the work directory; the current directory, where a step runs, by default): the
    planner refuses output paths that leave it, and this is the second line of defence. A path that is
    absolute outside it, climbs out with '..', is the root itself, or lies under a symlink that leads out
    of it is left alone and logged. A symlink at an output path is removed as a link, never followed.
    """
    base = Path(os.path.abspath(root if root is not None else Path.cwd()))
    real_base = base.resolve()
    refused = []
    for path in outputs.values():
        p = Path(os.path.normpath(base / path))  # lexical: '..' is resolved against base, symlinks are not followed
        if not p.is_relative_to(base) or p == base or not p.parent.resolve().is_relative_to(real_base):
            log.error("not removing output %s: it is outside the work directory %s", path, base)
            refused.append(path)
            continue
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        elif p.exists() or p.is_symlink():
            p.unlink()
    return refused


def container_seen() -> str | None:
    """Which container runtime this process runs under, from the marks each leaves (None on the host)."""
    if Path("/run/.containerenv").exists():
        return "podman"
    if Path("/.dockerenv").exists():
        return "docker"
    if Path("/.singularity.d").is_dir():
        return "apptainer"
    return None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m portaflow.runtime.call '<json payload>'", file=sys.stderr)
        return 2
    payload = json.loads(argv[0])
    outputs: dict[str, str] = payload["outputs"]
    for path in outputs.values():
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    # Where the step really ran, in its log: a container claimed by the site is proven, not assumed.
    where = container_seen()
    log.info("%s on %s, Python %s, %s", payload["target"], platform.node(), sys.executable,
             f"in a container ({where})" if where else "on the host (no container)")
    try:
        func = load_target(payload["target"])
        kwargs: dict[str, Any] = {"inputs": payload["inputs"], "outputs": outputs, "args": payload["args"]}
        if payload.get("dask"):
            from portaflow.runtime.dask_cluster import dask_client

            with dask_client() as client:
                func(client=client, **kwargs)
        else:
            func(**kwargs)
    except BaseException as exc:
        remove_outputs(outputs)
        if isinstance(exc, KeyboardInterrupt):
            return 130
        traceback.print_exc()  # the step's own traceback belongs in its log, whatever the log level
        log.error("step %s failed: %s: %s", payload["target"], type(exc).__name__, exc)
        return 1
    missing = [p for p in outputs.values() if not Path(p).exists()]
    if missing:
        remove_outputs(outputs)
        log.error("step %s finished without writing: %s", payload["target"], ", ".join(missing))
        return 1
    return 0


class _StepLogFormatter(logging.Formatter):
    """'portaflow: message' for portaflow's own records (as the step logs always read), 'name: LEVEL: message' for others'."""

    def format(self, record: logging.LogRecord) -> str:
        ours = record.name == "portaflow" or record.name.startswith("portaflow.")
        prefix = "portaflow" if ours and not record.name.startswith("portaflow.cores.") else record.name
        level = "" if record.levelno == logging.INFO else f"{record.levelname.lower()}: "
        return f"{prefix}: {level}{record.getMessage()}" + (f"\n{self.formatException(record.exc_info)}" if record.exc_info else "")


def configure_step_logging() -> None:
    """stderr (the step's log) gets portaflow's INFO and other libraries' WARNING, flushed line by line."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_StepLogFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    logging.getLogger("portaflow").setLevel(logging.INFO)


if __name__ == "__main__":
    configure_step_logging()
    sys.exit(main())
