"""`python -m portaflow.runtime.peak NOTE -- COMMAND...`: run a step's command, then note the peak resident memory of
its processes, for the run report's memory efficiency on sites whose scheduler keeps no accounting (the local site).

Why a process of its own: the job's shell (bash) reports its children's CPU time (`times`) but not their memory. The
kernel keeps, for each process, the largest resident set size of any descendant it has reaped (`getrusage`'s
RUSAGE_CHILDREN `ru_maxrss`: a child's peak, or the peak of that child's own reaped descendants, whichever is larger),
and only the process itself can ask for it. This one starts the step's command (`timeout ... bash -c STEP`), waits for
it and appends `rss <KiB>` to NOTE, the task's usage note, just before the shell's `try` line for the same try
(`schedulers.context.read_tries` reads both). It passes SIGTERM, SIGINT and SIGHUP on to the command (the job's shell
sends them to it when an engine cancels the task) and exits with its status (128 + N for a command killed by signal N).

What it cannot see: a process that leaves its parent (daemonised, reparented to init) and, for a step in a container, the
container's processes (the container runtime's client is the child here, not the step)."""

from __future__ import annotations

import resource
import signal
import subprocess
import sys
from pathlib import Path
from types import FrameType

ENTRY = "portaflow.runtime.peak"
"""The module a job runs (`python -m ENTRY`)."""
USAGE = "usage: python -m portaflow.runtime.peak NOTE -- COMMAND [ARG...]"
FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def peak_rss_kib() -> int:
    """The largest resident set size of any reaped descendant, in KiB (Linux gives KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return peak // 1024 if sys.platform == "darwin" else peak


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) < 3 or args[1] != "--":
        print(USAGE, file=sys.stderr)
        return 2
    note, command = Path(args[0]), args[2:]
    proc = subprocess.Popen(command)

    def forward(signum: int, frame: FrameType | None) -> None:
        try:
            proc.send_signal(signum)
        except ProcessLookupError:
            pass

    for sig in FORWARDED:
        signal.signal(sig, forward)
    status = proc.wait()
    try:
        with note.open("a") as out:
            out.write(f"rss {peak_rss_kib()}\n")
    except OSError:  # a note that cannot be written costs the report its memory figure, never the step
        pass
    return 128 - status if status < 0 else status


if __name__ == "__main__":
    sys.exit(main())
