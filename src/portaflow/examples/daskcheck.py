"""A Dask step for tests and demos: where did each task run?

It records, for CPU tasks and GPU-tagged tasks, which workers ran them, so a test can show that
GPU-tagged tasks ran only on workers advertising the site's GPU resource.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def _where(i: int, pause: float = 0.0) -> tuple[int, str]:
    import time

    from distributed import get_worker

    time.sleep(pause)  # a reduction long enough to lose a worker in the middle of it (tests)
    return i * i, get_worker().address


def survey(*, inputs: Mapping[str, Any], outputs: Mapping[str, str], args: Mapping[str, Any], client: Any) -> None:
    """Run `n` CPU tasks (each pausing `pause` seconds, default 0) and `n` GPU-tagged tasks; write who ran what and the
    sum of squares."""
    n = int(args["n"])
    resource = os.environ.get("PORTAFLOW_DASK_GPU_RESOURCE", "GPU")
    info = client.scheduler_info()["workers"]
    gpu_workers = sorted(a for a, w in info.items() if w.get("resources", {}).get(resource))
    cpu_workers = sorted(a for a in info if a not in gpu_workers)
    pause = float(args.get("pause", 0))
    cpu = client.gather(client.map(_where, range(n), pause=pause, key=[f"cpu-{i}" for i in range(n)], workers=cpu_workers or None,
                                   allow_other_workers=True))
    gpu = client.gather(client.map(_where, range(n), key=[f"gpu-{i}" for i in range(n)], resources={resource: 1})) if gpu_workers else []
    result = {
        "workers": {"cpu": len(cpu_workers), "gpu": len(gpu_workers)},
        "sum_of_squares": sum(v for v, _ in cpu),
        "gpu_tasks_on_gpu_workers": all(w in gpu_workers for _, w in gpu),
        "gpu_tasks": len(gpu),
    }
    Path(outputs["report"]).write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
