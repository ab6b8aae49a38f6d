"""SLURM overhead: a 20-task fan-out of short sleeps on slurm-local through each engine, against the same
20 jobs submitted directly with sbatch in a loop (then waiting, with one squeue call a second, until all
have left the queue). All measured in this run, on this cluster; prints wall times, ratios to direct sbatch
and the per-job overhead ((engine - direct) / jobs).

Each engine gets one SLURM job per task, like the reference: Snakemake always does; Parsl does with
`parsl.max_blocks` = tasks (one single-worker block per task). `--parsl-pilot` adds a row for Parsl with the
profile's own max_blocks (4), where blocks are pilots that run several tasks each.

Needs the test cluster: `bash tests/slurm/cluster.sh up`. The node has 8 CPUs: 20 one-core jobs run in
about three waves, the same for every variant.
Run: .venv/bin/python benchmarks/slurm_overhead.py [--tasks 20] [--seconds 5] [--repeat 1] [--parsl-pilot]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from portaflow import driver
from portaflow.plan import make_plan
from portaflow.schedulers.slurm import SlurmScheduler
from portaflow.spec.loading import load_site, load_workflow

ROOT = Path(__file__).resolve().parents[1]
FANOUT = ROOT / "tests" / "data" / "workflows" / "fanout.yaml"
SITE = "slurm-local"


def via_portaflow(engine: str, tasks: int, seconds: int, workdir: Path, max_blocks: int) -> float:
    """Wall time of `portaflow run` (in-process) from planning to the last output, on slurm-local."""
    loaded = load_site(SITE, overrides={"parsl.max_blocks": str(max_blocks)}, environ={})
    start = time.perf_counter()
    plan = make_plan(load_workflow(FANOUT).workflow, loaded.site, {"tasks": tasks, "seconds": seconds})
    result = driver.run(plan, loaded, engine, workdir, quiet=True)
    elapsed = time.perf_counter() - start
    assert result.ok and len(result.ran) == tasks, result.failed
    return elapsed


def direct_sbatch(tasks: int, seconds: int, workdir: Path) -> float:
    """Wall time of the same jobs through sbatch in a loop, waiting until none is left in the queue.

    The options are the ones portaflow computes for a task of the fan-out (partition, account, QOS, time,
    cores, memory), so SLURM is asked for exactly the same jobs.
    """
    loaded = load_site(SITE, environ={})
    plan = make_plan(load_workflow(FANOUT).workflow, loaded.site, {"tasks": tasks, "seconds": seconds})
    scheduler = SlurmScheduler(loaded)
    (workdir / "nap").mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    ids = []
    for i, task in enumerate(plan.tasks):
        options = scheduler.directives(task.resources, task.partition)
        proc = subprocess.run(["sbatch", "--parsable", *options, f"--output={workdir}/slurm-%j.out",
                               "--wrap", f"sleep {seconds}; echo {i} > {workdir}/nap/{i}.txt"],
                              capture_output=True, text=True, check=True)
        ids.append(proc.stdout.strip().split(";")[0])
    while True:
        queue = subprocess.run(["squeue", "--noheader", "--format=%i", "--jobs", ",".join(ids)], capture_output=True, text=True)
        if queue.returncode == 0 and not queue.stdout.split():
            break
        time.sleep(1)
    elapsed = time.perf_counter() - start
    missing = [i for i in range(tasks) if not (workdir / "nap" / f"{i}.txt").exists()]
    assert not missing, f"direct sbatch: outputs missing for tasks {missing}"
    return elapsed


def cluster_up() -> None:
    """Stop with a clear message when the test cluster does not answer."""
    ping = subprocess.run(["scontrol", "ping"], capture_output=True, text=True)
    if "is UP" not in ping.stdout:
        sys.exit(f"the SLURM test cluster does not answer (`bash tests/slurm/cluster.sh up`): {ping.stdout or ping.stderr}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=20)
    parser.add_argument("--seconds", type=int, default=5, help="how long each task sleeps")
    parser.add_argument("--repeat", type=int, default=1, help="alternate measurements; the best of each is kept")
    parser.add_argument("--parsl-pilot", action="store_true", help="also Parsl with the profile's max_blocks (pilot blocks)")
    args = parser.parse_args()
    cluster_up()
    # Parsl starts interchange.py from PATH: the environment's bin/ must be on it (as `portaflow` ensures).
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    variants = {
        "direct sbatch": lambda d: direct_sbatch(args.tasks, args.seconds, d),
        "parsl": lambda d: via_portaflow("parsl", args.tasks, args.seconds, d, max_blocks=args.tasks),
        "snakemake": lambda d: via_portaflow("snakemake", args.tasks, args.seconds, d, max_blocks=args.tasks),
    }
    if args.parsl_pilot:
        pilot_blocks = load_site(SITE, environ={}).site.parsl.max_blocks
        variants[f"parsl, {pilot_blocks} pilot blocks"] = lambda d: via_portaflow("parsl", args.tasks, args.seconds, d, pilot_blocks)
    best: dict[str, float] = {}
    with tempfile.TemporaryDirectory(dir=os.environ.get("PORTAFLOW_BENCH_DIR")) as tmp:
        for r in range(args.repeat):
            for name, fn in variants.items():
                elapsed = fn(Path(tmp) / f"{name.replace(' ', '_').replace(',', '')}_{r}")
                best[name] = min(best.get(name, elapsed), elapsed)
                print(f"  run {r + 1}: {name:<26} {elapsed:7.2f} s", file=sys.stderr)
    direct = best["direct sbatch"]
    print(f"{args.tasks} tasks x sleep {args.seconds} s on {SITE} (8 CPUs; one job per task but for pilot blocks); best of {args.repeat}")
    print(f"{'variant':<26} {'wall s':>8} {'vs direct':>10} {'overhead s/job':>15}")
    for name, elapsed in best.items():
        print(f"{name:<26} {elapsed:>8.2f} {elapsed / direct:>9.2f}x {(elapsed - direct) / args.tasks:>15.2f}")


if __name__ == "__main__":
    main()
