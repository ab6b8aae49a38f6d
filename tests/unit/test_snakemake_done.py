"""When the Snakemake engine counts a task as finished (and the driver records it, with its outputs' size and mtime).

Snakemake touches a job's outputs after the job's shell has ended and only then reports the job finished. A task
counted on portaflow's marker alone was recorded with the outputs' mtime from before that touch, so the next run
saw them "changed by hand" and ran the task again (CI under load: test_failed_step_leaves_no_output_and_reports)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from portaflow.engines.snakemake_engine import finished_well


class _SharedFilesystem:
    def jobs_see_driver_filesystem(self) -> bool:
        return True


def _ctx(tmp_path: Path) -> SimpleNamespace:
    return SimpleNamespace(scheduler=_SharedFilesystem(), marker_path=lambda task: tmp_path / "done" / task.id)


@pytest.mark.parametrize(("marker", "reported", "done"), [
    (True, False, False),  # the step's shell ended, Snakemake has not yet touched its outputs: not yet
    (False, True, False),  # Snakemake says finished, but the step's shell never reached its last line
    (True, True, True),
    (False, False, False),
])
def test_a_task_is_done_when_its_marker_exists_and_snakemake_reported_it(tmp_path, marker, reported, done):
    task = SimpleNamespace(id="step")
    (tmp_path / "done").mkdir()
    if marker:
        (tmp_path / "done" / "step").touch()
    assert finished_well(_ctx(tmp_path), task, {"step"} if reported else set()) is done
