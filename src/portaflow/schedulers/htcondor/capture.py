"""For `portaflow render` only: what Snakemake's htcondor plugin hands to HTCondor, captured at the hand-off.

The plugin builds each job's submit description itself (`htcondor2.Submit`, in its `run_job`) and
passes it to `htcondor2.Schedd().submit()`. This entry point runs the real Snakemake command line
with the real plugin, in Snakemake's own `--immediate-submit` mode (every job is handed to the
executor at once, without waiting for upstream jobs), and replaces only the bindings' `Schedd`
with a recorder that writes each description to a file instead of contacting a schedd.
`Submit.issue_credentials()` (a call to the pool's credd, made just before submitting) is
recorded as not needed. Nothing here is used by `portaflow run`.

Usage: python -m portaflow.schedulers.htcondor.capture OUT_DIR SNAKEMAKE_ARGUMENT...
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any


class _Result:
    """What `Schedd.submit()` returns, as far as the plugin reads it."""

    def __init__(self, cluster: int):
        self._cluster = cluster

    def cluster(self) -> int:
        return self._cluster

    def num_procs(self) -> int:
        return 1


def recording_schedd(out_dir: Path) -> type:
    """A stand-in for `htcondor2.Schedd` whose `submit` writes the description to OUT_DIR/<rule>.sub."""

    class RecordingSchedd:
        submitted = 0

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            pass

        def submit(self, description: Any, *args: Any, **kwargs: Any) -> _Result:
            RecordingSchedd.submitted += 1
            rule = str(description.get("batch_name", f"job-{RecordingSchedd.submitted}")).rsplit("-", 1)[0]
            out_dir.mkdir(parents=True, exist_ok=True)
            (out_dir / f"{rule}.sub").write_text(str(description))
            return _Result(RecordingSchedd.submitted)

    return RecordingSchedd


def main(argv: list[str]) -> None:
    import htcondor2

    out_dir = Path(argv[0])
    htcondor2.Schedd = recording_schedd(out_dir)  # the plugin looks it up at each submission
    htcondor2.Submit.issue_credentials = lambda self: None
    from portaflow.schedulers import snakemake_cli

    snakemake_cli.main(argv[1:])


if __name__ == "__main__":
    main(sys.argv[1:])
