"""`portaflow report` of real local runs, opened in a real browser (headless chromium): a failed Parsl run (a retry, a
failure, a task never run, PNG and FITS outputs, markup in a parameter and in a log) and a successful Snakemake run.

The runs and each report's rendering are module fixtures: a run costs ~20-40 s here, a chromium start ~5 s."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from testlib import ROOT, WORKFLOWS, browser_render, colour_share, distinct_colours, run_portaflow

REPORT_WF = ROOT / "tests" / "data" / "workflows" / "report.yaml"
WORDFREQ = WORKFLOWS / "examples" / "wordfreq.yaml"
GREEN, RED, ORANGE = (0x2E, 0x7D, 0x32), (0xC6, 0x28, 0x28), (0xEF, 0x6C, 0x00)
pytestmark = pytest.mark.xdist_group("report-runs")  # the module's runs, once


def _images(workdir: Path) -> None:
    """The inputs the images step copies: a PNG and a FITS image (a source on noise)."""
    import numpy as np
    from astropy.io import fits
    from PIL import Image

    Image.fromarray((np.indices((60, 80)).sum(0) * 2 % 256).astype("uint8")).save(workdir / "pic.png")
    y, x = np.indices((64, 64))
    sky = np.exp(-((x - 32) ** 2 + (y - 20) ** 2) / 50.0) + np.random.default_rng(1).normal(0, 0.05, (64, 64))
    fits.PrimaryHDU(sky).writeto(workdir / "sky.fits")


@pytest.fixture(scope="module")
def failed_run(tmp_path_factory) -> dict:
    workdir = tmp_path_factory.mktemp("failed")
    _images(workdir)
    run = run_portaflow("run", str(REPORT_WF), "--engine", "parsl", "--workdir", str(workdir))
    assert run.returncode == 1, run.stdout + run.stderr
    made = run_portaflow("report", "--workdir", str(workdir))
    assert made.returncode == 0, made.stdout + made.stderr
    page = Path(made.stdout.strip())
    dom, shot = browser_render(page, tmp_path_factory.mktemp("failed-browser"), size=(1300, 2400))
    return {"workdir": workdir, "page": page, "html": page.read_text(), "dom": dom, "shot": shot}


@pytest.fixture(scope="module")
def good_run(tmp_path_factory) -> dict:
    workdir = tmp_path_factory.mktemp("good")
    run = run_portaflow("run", str(WORDFREQ), "--preset", "small", "--engine", "snakemake", "--workdir", str(workdir))
    assert run.returncode == 0, run.stdout + run.stderr
    out = tmp_path_factory.mktemp("good-report") / "wordfreq-report.html"
    made = run_portaflow("report", "--workdir", str(workdir), "-o", str(out))
    assert made.returncode == 0 and made.stdout.strip() == str(out), made.stdout + made.stderr
    dom, shot = browser_render(out, out.parent)
    return {"workdir": workdir, "page": out, "html": out.read_text(), "dom": dom, "shot": shot}


def nodes(dom: str) -> dict[str, str]:
    """The DAG's task boxes in the browser's DOM: task id -> state."""
    svg = re.search(r'<svg id="dag".*?</svg>', dom, re.S)
    assert svg, "no DAG in the page"
    return dict(re.findall(r'<g class="node" data-task="([^"]+)" data-state="([^"]+)"', svg.group(0)))


def test_successful_run_renders_with_dag_and_timeline(good_run):
    dom, shot = good_run["dom"], good_run["shot"]
    assert 'data-report-ready="1"' in dom  # the page's script ran to its end
    manifest = json.loads((good_run["workdir"] / ".portaflow" / "runs" / "latest" / "manifest.json").read_text())
    assert nodes(dom) == {t: "ran" for t in manifest["tasks"]}
    timeline = re.search(r'<svg id="timeline".*?</svg>', dom, re.S).group(0)
    assert timeline.count('class="running"') == len(manifest["tasks"])  # every task's one try drawn
    assert re.search(r'id="counts">5 ran<', dom)  # filled in by the script
    # What a person sees: a page with drawings, the DAG's green boxes among them.
    assert distinct_colours(shot) > 50
    assert colour_share(shot, GREEN) > 0.005
    # Every output linked relative to the report, and those links lead to the files.
    hrefs = re.findall(r'<a href="([^"]+)">', good_run["html"])
    assert len(hrefs) == len(manifest["outputs"]) and all((good_run["page"].parent / h).resolve().is_file() for h in hrefs)
    # The local site has no scheduler accounting: CPU from the step's shell, peak memory as runtime.peak noted it.
    assert "the step&#x27;s shell" in good_run["html"] and "peak resident memory" in good_run["html"]
    assert all(info["tries"][-1]["max_rss_mib"] > 5 for info in manifest["tasks"].values())  # a Python step's, at least


def test_failed_run_shows_failure_retry_and_the_task_never_run(failed_run):
    dom = failed_run["dom"]
    assert 'data-report-ready="1"' in dom
    assert nodes(dom) == {"images": "ran", "flaky": "ran", "broken": "failed", "after": "not run"}
    rows = dict(re.findall(r'<tr id="task-(\w+)" data-state="[^"]+"><td>[^<]*</td><td><span[^>]*>[^<]*</span></td><td>(\d+)</td>', dom))
    assert rows == {"images": "1", "flaky": "2", "broken": "1", "after": "0"}  # tries
    failures = re.search(r'<div id="failures">.*?</div>', dom, re.S).group(0)
    assert "first try fails" in failures and "try 1: exit 3" in failures and "try 2: exit 0" in failures
    assert "exit 7" in failures
    assert colour_share(failed_run["shot"], RED) > 0.002 and colour_share(failed_run["shot"], GREEN) > 0.002
    assert colour_share(failed_run["shot"], ORANGE) > 0.0005  # the task never run


def test_user_text_is_escaped_and_the_page_loads_nothing(failed_run):
    html, dom = failed_run["html"], failed_run["dom"]
    # The parameter and the failed step's log both hold <script>alert(1)</script>: text, never an element.
    assert "<script>alert" not in html and "<script>alert" not in dom
    assert html.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 2
    assert dom.count("<script") == 2  # the page's data and its own script, nothing more
    assert not re.search(r"(?:src|href)=\"(?:https?:)?//", html) and "http" not in html.lower().replace("http-equiv", "")


def test_png_and_fits_outputs_are_previewed_inline(failed_run):
    html = failed_run["html"]
    previews = re.findall(r'<img class="preview" alt="([^"]+)" src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    assert {name for name, _ in previews} == {"pic.png", "sky.fits"}
    import base64
    import io

    from PIL import Image

    sizes = {name: Image.open(io.BytesIO(base64.b64decode(data))).size for name, data in previews}
    assert sizes["pic.png"] == (80, 60) and sizes["sky.fits"] == (360, 360)
    # The FITS preview shows the image (a bright source on noise), not a blank square.
    assert colour_share(failed_run["shot"], (255, 255, 255)) < 0.95 and distinct_colours(failed_run["shot"]) > 100


def test_report_of_a_run_by_id_and_errors(failed_run, tmp_path):
    runs = sorted(p.name for p in (failed_run["workdir"] / ".portaflow" / "runs").iterdir() if not p.is_symlink())
    made = run_portaflow("report", runs[0][:15], "--workdir", str(failed_run["workdir"]), "-o", str(tmp_path / "r.html"))
    assert made.returncode == 0 and (tmp_path / "r.html").is_file(), made.stderr
    none = run_portaflow("report", "--workdir", str(tmp_path))
    assert none.returncode == 2 and "no runs in" in none.stderr and "Traceback" not in none.stderr
