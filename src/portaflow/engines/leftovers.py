"""After `kill -9` of a driver: find the processes its run left running on this host, and stop them.

Why: a driver killed with SIGKILL cannot stop what it started. Parsl's interchange and worker pools, Snakemake and
the steps they run (and the Dask clusters of Dask steps) keep running with no parent; they no longer hold the work
directory's lock, so a rerun would run the same tasks beside them, both writing the same outputs.

How they are found, and why it is safe: while a run goes on, the driver puts `PORTAFLOW_RUN_ID=<run id>` in its
environment, so every process it starts on this host inherits it, also those that start process groups of their
own (`timeout` around each step, Parsl's worker pools). The lock file records the driver's session id, the boot
and its start time. A process is the killed run's only if all of these hold: its environment, as it was when it
started (/proc/<pid>/environ), carries that run id (a random token); it is in the driver's session (a job that a
batch scheduler started on this host is in a session of its own, and is the scheduler adapter's to cancel); it
started after the driver, in the same boot; and it belongs to this user (/proc hides other users' environments).
Each process is checked again (same start time) right before each signal, so a reused pid is never signalled.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

RUN_ENV = "PORTAFLOW_RUN_ID"
"""Set in the driver's environment while a run goes on; every process the run starts inherits it."""

PROC = Path("/proc")


@dataclass(frozen=True)
class Leftover:
    """A process a killed run left running."""

    pid: int
    start_ticks: int
    command: str

    def describe(self) -> str:
        return f"{self.pid} ({self.command})"


def boot_id() -> str | None:
    """This boot's id (a process from an earlier boot cannot be running)."""
    try:
        return (PROC / "sys" / "kernel" / "random" / "boot_id").read_text().strip()
    except OSError:
        return None


def _stat_fields(pid: int) -> list[str] | None:
    """/proc/<pid>/stat after the command name (which may hold spaces): field 3 (state) is index 0."""
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    return text[text.rfind(")") + 2:].split()


def start_ticks(pid: int) -> int | None:
    """When a process started, in clock ticks since boot (stat field 22): with the pid, names one process for good."""
    fields = _stat_fields(pid)
    return int(fields[19]) if fields and len(fields) > 19 else None


def _session(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return int(fields[3]) if fields and len(fields) > 3 else None


def _command(pid: int) -> str:
    try:
        words = (PROC / str(pid) / "cmdline").read_bytes().rstrip(b"\0").split(b"\0")
    except OSError:
        return "?"
    text = " ".join(" ".join(w.decode(errors="replace").split()) for w in words)  # a `bash -c` script on one line
    return text if len(text) <= 100 else text[:97] + "..."


def this_process() -> dict:
    """What tells this driver's processes from others on this host after it is gone: its session, the boot it runs in,
    and its start time (clock ticks since boot, as /proc says); the work directory's lock records it."""
    return {"sid": os.getsid(0), "boot_id": boot_id(), "start_ticks": start_ticks(os.getpid())}


def find_leftovers(holder: dict) -> list[Leftover]:
    """The processes of the run named by a lock's content (`WorkdirLock.previous`) still running on this host."""
    run_id = holder.get("run_id")
    if not run_id or holder.get("host") != socket.gethostname() or not PROC.is_dir():
        return []
    if holder.get("boot_id") and holder["boot_id"] != boot_id():
        return []
    marker = f"{RUN_ENV}={run_id}".encode()
    sid, since = holder.get("sid"), holder.get("start_ticks")
    found = []
    for entry in PROC.iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        pid = int(entry.name)
        try:
            if marker not in (entry / "environ").read_bytes().split(b"\0"):
                continue
        except OSError:  # gone, or another user's
            continue
        started = start_ticks(pid)
        if started is None or (since is not None and started < since) or (sid is not None and _session(pid) != sid):
            continue
        found.append(Leftover(pid, started, _command(pid)))
    return found


def _signal(process: Leftover, sig: int) -> bool:
    """Signal the process if it is still the one found (not a reused pid); whether it was."""
    if start_ticks(process.pid) != process.start_ticks:
        return False
    try:
        os.kill(process.pid, sig)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _alive(process: Leftover) -> bool:
    fields = _stat_fields(process.pid)
    return bool(fields) and start_ticks(process.pid) == process.start_ticks and fields[0] != "Z"


def stop_leftovers(found: list[Leftover], grace_s: float = 10.0) -> tuple[list[Leftover], list[Leftover]]:
    """SIGTERM to each (a step's shell passes it to the step; Snakemake, Parsl and Dask stop), SIGKILL to what is still
    there after `grace_s`. Returns (stopped, still running)."""
    for process in found:
        _signal(process, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while any(_alive(p) for p in found) and time.monotonic() < deadline:
        time.sleep(0.2)
    for process in found:
        if _alive(process):
            _signal(process, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while any(_alive(p) for p in found) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = [p for p in found if _alive(p)]
    return [p for p in found if p not in left], left


def stop_previous_run(holder: dict, grace_s: float = 10.0) -> list[Leftover]:
    """Before a rerun changes anything: stop what the killed run named by `holder` left running here, and say so.
    Returns the processes stopped."""
    found = find_leftovers(holder)
    if not found:
        if holder.get("run_id") and holder.get("host") == socket.gethostname():
            log.info("run %s left no process running on this host", holder["run_id"])
        return []
    log.warning("run %s (killed) left %d process(es) running on this host; stopping them: %s", holder["run_id"], len(found),
                ", ".join(p.describe() for p in found))
    stopped, left = stop_leftovers(found, grace_s)
    log.warning("stopped %d process(es) of run %s%s", len(stopped), holder["run_id"],
                f"; {len(left)} could not be stopped: {', '.join(p.describe() for p in left)}" if left else "")
    return stopped


def stop_run_processes(run_id: str, grace_s: float = 10.0) -> list[Leftover]:
    """Stop the processes of this driver's own run on this host (not this process): where the engine has no process
    group of its own to stop (Parsl's bash apps in threads of the driver). Found as after `kill -9` (`find_leftovers`),
    by the run id in their environment, this driver's session, started after it."""
    found = find_leftovers({"run_id": run_id, "host": socket.gethostname(), **this_process()})
    log.debug("run %s: stopping its %d process(es) on this host: %s", run_id, len(found), ", ".join(p.describe() for p in found))
    stopped, left = stop_leftovers(found, grace_s)
    if left:
        log.warning("run %s: %d process(es) could not be stopped: %s", run_id, len(left), ", ".join(p.describe() for p in left))
    return stopped
