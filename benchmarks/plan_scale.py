"""Plan + render time of a fan-out workflow with 1k, 10k and 100k tasks.

Prints seconds per size and the growth ratio between sizes (linear growth: ratio ~10 for 10x tasks).
Target: 10k tasks planned and rendered in under 2 s. Run: .venv/bin/python benchmarks/plan_scale.py
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from portaflow.engines.parsl_engine import resource_classes
from portaflow.engines.snakemake_engine import SnakemakeEngine
from portaflow.plan import make_plan
from portaflow.schedulers import adapter_for
from portaflow.schedulers.context import RunContext
from portaflow.spec.loading import load_site
from portaflow.spec.workflow import Workflow


def fanout(n: int) -> Workflow:
    return Workflow.model_validate({
        "name": "fanout", "parameters": {"n": n, "scale": 2},
        "steps": {
            "work": {"scatter": {"i": {"range": "{n}"}}, "command": "echo $(( {i} * {scale} )) > {outputs.o}",
                     "outputs": {"o": "parts/{i}.txt"}, "resources": {"cores": 1, "memory": "1GB", "walltime": "10m"}},
            "python_step": {"scatter": {"i": {"range": "{n}"}}, "python": "mod:func", "args": {"i": "{i}"},
                            "inputs": {"p": "parts/{i}.txt"}, "outputs": {"o": "py/{i}.json"}},
            "gather": {"command": "cat {inputs.parts} | wc -l > {outputs.o}", "inputs": {"parts": "py/{i}.json"}, "outputs": {"o": "total.txt"}},
        },
    })


def measure(n: int, site_name: str) -> dict[str, float]:
    loaded = load_site(site_name, environ={})
    wf = fanout(n)
    t0 = time.perf_counter()
    plan = make_plan(wf, loaded.site)
    t1 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        ctx = RunContext(plan, loaded, Path("/work/bench"), Path(tmp), plan.tasks, adapter_for(loaded))
        SnakemakeEngine().snakefile(ctx)
        t2 = time.perf_counter()
        for task in plan.tasks:  # what the Parsl engine hands to each bash app
            ctx.shell_line(task)
        resource_classes(plan.tasks)  # one executor per class (the Config itself is built once per run)
        t3 = time.perf_counter()
    return {"tasks": len(plan.tasks), "plan": t1 - t0, "snakefile": t2 - t1, "parsl_apps": t3 - t2, "total": t3 - t0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--site", default="slurm-local")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    rows = [measure(n // 2, args.site) for n in sizes]  # two scattered steps: n//2 each, ~n tasks in all
    print(f"{'tasks':>8} {'plan s':>8} {'snakefile s':>12} {'parsl apps s':>13} {'total s':>8} {'growth':>8}")
    previous = None
    for row in rows:
        growth = f"{row['total'] / previous['total']:.2f}x" if previous else "-"
        size_ratio = f" (tasks {row['tasks'] / previous['tasks']:.1f}x)" if previous else ""
        print(f"{row['tasks']:>8} {row['plan']:>8.3f} {row['snakefile']:>12.3f} {row['parsl_apps']:>13.3f} {row['total']:>8.3f} "
              f"{growth:>8}{size_ratio}")
        previous = row
    ten_k = next((r for r in rows if 9000 <= r["tasks"] <= 11000), None)
    if ten_k:
        print(f"10k tasks: {ten_k['total']:.2f} s (target < 2 s: {'met' if ten_k['total'] < 2 else 'NOT met'})")


if __name__ == "__main__":
    main()
