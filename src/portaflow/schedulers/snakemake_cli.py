"""Snakemake's own command line, started by portaflow for sites whose jobs start Snakemake themselves.

Why not `python -m snakemake` there: the htcondor and kubernetes executor plugins ask Snakemake to
"auto-deploy" storage plugins, so every job's command begins with `pip install --target
.snakemake/pip-deployments <every storage plugin installed on the driver>`: a download from PyPI on
worker nodes that often have no route to it, of code that may differ from the driver's (and the
htcondor plugin 0.3.0 then submits `python install ...`). portaflow's images and the site provide
the plugins instead (containers/*.yaml install portaflow's `objectstore` extra), so the launchers
(`schedulers.kubernetes.snakemake_launch`, `schedulers.htcondor.capture`) and HTCondor runs start Snakemake here.
"""

from __future__ import annotations

import dataclasses
import importlib
import sys

REMOTE_PLUGINS = ("htcondor", "kubernetes")
"""Executor plugins whose jobs start Snakemake in an environment of the site's (an image, a worker node)."""


def without_plugin_deployment() -> None:
    """Tell those plugins (in this process) not to pip-install storage plugins in their jobs."""
    for name in REMOTE_PLUGINS:
        try:
            module = importlib.import_module(f"snakemake_executor_plugin_{name}")
        except ImportError:
            continue
        module.common_settings = dataclasses.replace(module.common_settings, auto_deploy_default_storage_provider=False)


def snakemake_cli_command() -> list[str]:
    """The command that starts Snakemake's CLI through this module (its arguments follow)."""
    return [sys.executable, "-m", __name__]


def main(args: list[str]) -> None:
    """Run Snakemake's CLI with ARGS, as `snakemake ARGS` would, after without_plugin_deployment()."""
    without_plugin_deployment()
    from snakemake.cli import main as snakemake_main

    sys.argv = ["snakemake", *args]
    snakemake_main()


if __name__ == "__main__":
    main(sys.argv[1:])
