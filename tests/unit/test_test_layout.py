"""The test tree itself: pytest imports test modules by basename (rootdir-relative, no packages), so two modules
with one basename in different folders make a collection error in a full run, which a run of one folder never
sees (it happened twice: test_lifecycle.py, then test_cwl_export.py and test_cwl_import.py)."""

from __future__ import annotations

from collections import defaultdict

from testlib import ROOT


def test_no_two_test_modules_share_a_basename():
    by_name: dict[str, list[str]] = defaultdict(list)
    for path in (ROOT / "tests").rglob("test_*.py"):
        by_name[path.name].append(str(path.relative_to(ROOT)))
    clashes = {name: paths for name, paths in by_name.items() if len(paths) > 1}
    assert not clashes, f"rename one of each: {clashes}"
