"""Helpers shared by portaflow's tests (a plain module: conftest.py files are not importable by name
when several directories have one)."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = ROOT / "workflows"
SITES = ROOT / "site_profiles"


def small_preset(path: Path) -> list[str]:
    """A workflow's `small` preset as `KEY=VALUE` strings (the size CI and the portability matrix run)."""
    from portaflow.spec.loading import load_workflow

    return [f"{k}={v}" for k, v in load_workflow(path).workflow.preset("small").items()]


SCIENCE_CASES = {name: (path, small_preset(path)) for name, path in
                 {"hep": WORKFLOWS / "hep" / "zmumu.yaml", "radio": WORKFLOWS / "radio" / "imaging.yaml"}.items()}
"""Each science workflow with parameters small enough for a test (its `small` preset)."""


def param_args(params: list[str]) -> list[str]:
    """['a=1', 'b=2'] -> ['--param', 'a=1', '--param', 'b=2']."""
    return [word for p in params for word in ("--param", p)]


def export_outputs_agree(objects: dict, workdir: Path, workflow: Path, args: list[str]) -> list[str]:
    """Each output of a portaflow run of `workflow` (on the local site, with `args`: --preset/--param) in `workdir`
    against the file a run of its CWL export gave for it (`objects`: the CWL output object, whose arrays follow the
    export's scatter order), under the output's comparator. Returns the disagreements; every output is checked."""
    from portaflow.compare import compare
    from portaflow.driver import load_plan
    from portaflow.exchange import cwl_export
    from portaflow.spec.loading import load_workflow

    params: dict = {}
    loaded = load_workflow(workflow)
    if "--preset" in args:
        params.update(loaded.workflow.preset(args[args.index("--preset") + 1]))
    params.update(dict(a.split("=", 1) for a in args[1::2] if "=" in a))
    loaded_wf, _, plan = load_plan(loaded, "local", {}, params)
    checked, problems = 0, []
    for name, step in loaded_wf.workflow.steps.items():
        tasks = cwl_export.scatter_order(plan, loaded_wf, name)
        for key in step.outputs:
            value = objects[cwl_export.output_id(name, key)]
            files = value if isinstance(value, list) else [value]
            assert len(files) == len(tasks), (name, key)
            for task, cwl_file in zip(tasks, files, strict=True):
                out = task.outputs[key]
                verdict = compare(workdir / out.path, cwl_file["path"], out.compare)
                checked += 1
                if not verdict.same:
                    problems.append(f"{out.path}: {verdict.detail}")
    assert checked == sum(len(t.outputs) for t in plan.tasks)
    return problems


def run_portaflow(*args: str, cwd: Path | None = None, env: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run the real `portaflow` command in a subprocess (exit codes and stderr as a user sees them)."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "portaflow", *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout)


def start_portaflow(*args: str, cwd: Path | None = None, env: dict | None = None) -> subprocess.Popen:
    """`run_portaflow` without waiting: for runs that go side by side (read them with `communicate`)."""
    return subprocess.Popen([sys.executable, "-m", "portaflow", *args], cwd=cwd, env={**os.environ, **(env or {})},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@functools.cache
def gpu_unavailable() -> str | None:
    """Why GPU tests cannot run here (None: CuPy just computed on a device). Asked once per test process, and
    through portaflow.gpuprobe, so that asking imports no science core."""
    from portaflow.gpuprobe import unavailable_reason

    return unavailable_reason()


def unavailable(reason: str) -> None:
    """Skip a test whose test bed is missing; under PORTAFLOW_CI=1 (where CI set it up on purpose) fail instead,
    so a broken test bed cannot pass as a row of skips."""
    import pytest

    if os.environ.get("PORTAFLOW_CI") == "1":
        pytest.fail(f"PORTAFLOW_CI=1 and {reason}", pytrace=False)
    pytest.skip(reason)


CHROMIUM = ("chromium", "chromium-browser", "google-chrome")


def chromium() -> str:
    """The headless browser the report tests render pages in (Debian's chromium; `scripts/setup-browser.sh` installs it),
    or skip (fail under PORTAFLOW_CI=1)."""
    import shutil

    for name in CHROMIUM:
        found = shutil.which(name)
        if found:
            return found
    unavailable("no chromium on PATH (bash scripts/setup-browser.sh installs Debian's)")
    raise AssertionError("unreachable")


def browser_render(page: Path, out_dir: Path, size: tuple[int, int] = (1300, 1800)) -> tuple[str, Path]:
    """Open PAGE in headless chromium: the DOM after its scripts ran (`--dump-dom`) and a screenshot (PNG) of it.

    Why a real browser: the report is HTML, SVG and a script that a person opens; only a browser says that it parses,
    that its script runs and that its drawings are there to see."""
    browser = chromium()
    common = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--disable-extensions",
              "--no-first-run", f"--user-data-dir={out_dir / 'chromium-profile'}", "--virtual-time-budget=3000"]
    url = page.resolve().as_uri()
    dom = subprocess.run([*common, "--dump-dom", url], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0 and dom.stdout.strip(), f"chromium --dump-dom failed: {dom.stderr[-2000:]}"
    shot = out_dir / f"{page.stem}.png"
    result = subprocess.run([*common, f"--screenshot={shot}", f"--window-size={size[0]},{size[1]}", url], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0 and shot.is_file(), f"chromium --screenshot failed: {result.stderr[-2000:]}"
    keep = os.environ.get("PORTAFLOW_SCREENSHOTS")  # a folder to keep the screenshots in, to look at them
    if keep:
        import shutil

        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(keep) / f"{out_dir.name}-{shot.name}")
    return dom.stdout, shot


def colour_share(png: Path, rgb: tuple[int, int, int], tolerance: int = 12) -> float:
    """The share of a screenshot's pixels within TOLERANCE of a colour (how much of the page a drawing in it covers)."""
    import numpy as np
    from PIL import Image

    pixels = np.asarray(Image.open(png).convert("RGB")).reshape(-1, 3).astype(int)
    return float((np.abs(pixels - np.array(rgb)).max(axis=1) <= tolerance).mean())


def distinct_colours(png: Path) -> int:
    """How many different colours a screenshot holds (a blank page: one or two)."""
    from PIL import Image

    return len(Image.open(png).convert("RGB").getcolors(maxcolors=1 << 24) or [])
