"""Ctrl-C or SIGTERM on `portaflow run`: exit 130 or 143, running steps stopped, no partial outputs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from testlib import ROOT

SLOW = ROOT / "tests" / "data" / "workflows" / "slow.yaml"


@pytest.mark.parametrize("engine, sig, group", [("parsl", signal.SIGTERM, False), ("snakemake", signal.SIGINT, False),
                                                ("snakemake", signal.SIGTERM, False), ("parsl", signal.SIGINT, True)])
def test_interrupt_cleans_up(tmp_path, engine, sig, group):
    """`group`: the signal goes to the driver's whole process group, as the terminal sends Ctrl-C (it reached Parsl's
    interchange too, which died, and the driver then hung in its clean-up)."""
    proc = subprocess.Popen([sys.executable, "-m", "portaflow", "run", str(SLOW), "--engine", engine, "--workdir", str(tmp_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=group)
    partial = tmp_path / "slow.txt"
    deadline = time.time() + 240  # a loaded 2-core CI machine with tests side by side: Parsl can take minutes to start
    while not partial.exists() and time.time() < deadline:
        time.sleep(0.2)
    assert partial.exists(), "the step never started"
    if group:
        os.killpg(proc.pid, sig)
    else:
        proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + sig, out + err  # 130 for SIGINT, 143 for SIGTERM
    assert "Traceback" not in err
    assert not partial.exists(), "a partial output survived the interrupt"
    # No step process is left behind.
    time.sleep(1)
    leftover = subprocess.run(["pgrep", "-f", "sleep 120"], capture_output=True, text=True).stdout.split()
    for pid in leftover:  # only sleeps whose working directory is this test's
        try:
            cwd = os.readlink(f"/proc/{pid}/cwd")
        except OSError:
            continue
        assert not cwd.startswith(str(tmp_path)), f"step process {pid} still runs in {cwd}"
