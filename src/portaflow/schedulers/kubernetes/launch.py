"""The JobCompleter of a run, from its launch file: what portaflow's Snakemake executor plugin (`portaflow-kubernetes`)
calls when it starts, in Snakemake's process.

Its own module, imported by nothing in portaflow: the plugin and render's capture import it, and it imports the adapter.
"""

from __future__ import annotations

import json

from portaflow.schedulers.kubernetes import KubernetesScheduler
from portaflow.schedulers.kubernetes.snakemake_jobs import JobCompleter
from portaflow.spec.loading import load_site


def job_completer(launch_path: str) -> JobCompleter:
    """The completer for the run the launch file describes (the same profile, read the same way as the driver did)."""
    with open(launch_path) as f:
        launch = json.load(f)
    loaded = load_site(launch["site"], launch["overrides"])
    return JobCompleter(KubernetesScheduler(loaded), launch["tasks"], launch["run_id"])
