"""The local 'scheduler': steps run as processes on this machine; nothing to translate."""

from __future__ import annotations

from portaflow.schedulers.base import Scheduler


class LocalScheduler(Scheduler):
    name = "local"
