"""`python -m portaflow.schedulers.kubernetes.launcher LAUNCH.json -- SNAKEMAKE-ARGS...`: Snakemake's CLI with the
kubernetes plugin's Job creation completed from the site profile (schedulers/kubernetes/snakemake_launch.py).

Its own module, imported by nothing: the adapter names it in a command line, and it imports the adapter.
"""

from __future__ import annotations

import json
import sys

from portaflow.schedulers import snakemake_cli
from portaflow.schedulers.kubernetes import KubernetesScheduler
from portaflow.schedulers.kubernetes.snakemake_launch import install
from portaflow.spec.loading import load_site


def main(argv: list[str]) -> None:
    launch_path, dashdash, *snakemake_args = argv
    if dashdash != "--":
        raise SystemExit("usage: python -m portaflow.schedulers.kubernetes.launcher LAUNCH.json -- SNAKEMAKE-ARGS")
    with open(launch_path) as f:
        launch = json.load(f)
    loaded = load_site(launch["site"], launch["overrides"])  # the same profile, read the same way as the driver did
    install(KubernetesScheduler(loaded), launch["tasks"], launch["run_id"])
    snakemake_cli.main(snakemake_args)


if __name__ == "__main__":
    main(sys.argv[1:])
