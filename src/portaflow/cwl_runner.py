"""`portaflow-cwl-runner [--outdir DIR] [--quiet] TOOL [JOB]`: a `cwl-runner` that runs through portaflow.

Why: the CWL conformance suite (`cwltest --tool portaflow-cwl-runner`) and every tool that drives a `cwl-runner` can
then run CWL on any portaflow site: the document is planned on the site (`--site`, default local), each step a job
there through the engine (`--engine`), and the output object is printed on stdout as JSON, its files moved into
--outdir, as cwltool prints it. Exit status as cwl-runner's: 0 success, 1 permanent failure (and invalid input),
33 an unsupported requirement.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from portaflow.errors import PortaflowError

log = logging.getLogger(__name__)

PERMANENT_FAIL = 1
UNSUPPORTED = 33


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="portaflow-cwl-runner", description=__doc__.split("\n\n")[0])
    p.add_argument("tool", help="a CWL v1.2 CommandLineTool, ExpressionTool or Workflow document (.cwl)")
    p.add_argument("job", nargs="?", help="its input object (YAML or JSON)")
    p.add_argument("--outdir", default=".", help="where output files go (default: the current directory)")
    p.add_argument("--quiet", action="store_true", help="only errors on stderr")
    p.add_argument("--site", default="local", help="site profile: a name or a YAML file (default: local)")
    p.add_argument("--site-set", action="append", default=[], metavar="KEY=VALUE", help="override a site value; repeatable")
    p.add_argument("--engine", choices=["parsl", "snakemake"], default="parsl")
    p.add_argument("--workdir", help="portaflow's work directory (default: a new temporary one, removed after a success)")
    p.add_argument("--debug", action="store_true", help="log everything, tracebacks included")
    return p


@contextlib.contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    """While the run goes on, file descriptor 1 is stderr: stdout carries only the output object, whatever the engine
    and the processes it starts print."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def _relocate(workdir: Path, outdir: Path) -> dict[str, Any]:
    """The run's output object with its files moved from the work directory's output/ into `outdir` (cwltool's own
    relocation, checksums and `path` fields as cwltool prints them)."""
    from cwltool.process import relocateOutputs
    from cwltool.stdfsaccess import StdFsAccess
    from cwltool.utils import visit_class

    from portaflow.runtime.cwlstep import location_to_path
    from portaflow.spec.cwl import OUTPUT_DIR, OUTPUT_OBJECT

    out = json.loads((workdir / OUTPUT_OBJECT).read_text())
    outdir.mkdir(parents=True, exist_ok=True)
    out = relocateOutputs(out, str(outdir.resolve()), {str((workdir / OUTPUT_DIR).resolve())}, "move", StdFsAccess(""),
                          compute_checksum=True)
    visit_class(out, ("File", "Directory"), functools.partial(location_to_path))
    return out


def run(argv: list[str] | None = None) -> int:
    """The runner: plan on the site, run, print the output object; the exit status cwl-runner gives."""
    from portaflow import driver
    from portaflow.cli import CliOptions, configure_logging
    from portaflow.spec.cwl import load_cwl
    from portaflow.spec.loading import load_site, parse_assignments

    args, unknown = parser().parse_known_args(argv)
    configure_logging(CliOptions(quiet=args.quiet and not args.debug, debug=args.debug))
    if unknown:
        log.warning("ignoring options portaflow-cwl-runner does not know: %s", " ".join(unknown))
    temporary = args.workdir is None
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="portaflow-cwl-"))
    try:
        overrides = parse_assignments(args.site_set, "--site-set")
        loaded_wf = load_cwl(args.tool, args.job, load_site(args.site, overrides).site.container)
        _, loaded_site, plan = driver.load_plan(loaded_wf, args.site, overrides, {})
        with _stdout_to_stderr():
            result = driver.run(plan, loaded_site, args.engine, workdir, quiet=True)
    except PortaflowError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return UNSUPPORTED if exc.exit_code == UNSUPPORTED else PERMANENT_FAIL
    if not result.ok:
        for task_id, outcome in result.failed.items():
            print(f"error: {task_id} failed: {outcome.message} (log: {result.run_dir / 'logs' / f'{task_id}.log' if result.run_dir else '-'})",
                  file=sys.stderr)
        codes = {outcome.exit_code for outcome in result.failed.values()}
        return UNSUPPORTED if UNSUPPORTED in codes else PERMANENT_FAIL
    print(json.dumps(_relocate(workdir, Path(args.outdir)), indent=4, ensure_ascii=False))
    if temporary:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


def main() -> None:
    sys.exit(run())


if __name__ == "__main__":
    main()
