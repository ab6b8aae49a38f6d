"""The files portaflow ships besides its code: site profiles, workflows and container recipes.

Why one module: they live at the repository's top level (`site_profiles/`, `workflows/`, `containers/`),
where users and the docs refer to them, but an installed wheel carries them inside the package
(`portaflow/_shipped/...`, mapped there by pyproject.toml's `package-dir`). Everything that needs one
of them asks here, so no other module guesses where the package sits on disk.

Where they are looked for, first match wins:
1. inside the package (`importlib.resources`): a normal wheel install;
2. the source checkout the package is imported from (`src/portaflow` -> the repository root): a
   development checkout, with `PYTHONPATH=src` or an editable install (`pip install -e .`), so an
   edit to a shipped file takes effect without reinstalling.
"""

from __future__ import annotations

import logging
from functools import cache
from importlib.resources import files
from pathlib import Path

from portaflow.errors import InputError, PortaflowError

log = logging.getLogger(__name__)

KINDS = ("site_profiles", "workflows", "containers")


@cache
def source_checkout() -> Path | None:
    """The repository root when portaflow is imported from a source checkout, else None.

    `portaflow containers build` needs it: the image gets portaflow's own wheel, built from the source.
    """
    package = Path(str(files("portaflow"))).resolve()
    root = package.parents[1]
    if package.parent.name == "src" and (root / "pyproject.toml").is_file() and all((root / k).is_dir() for k in KINDS):
        return root
    return None


@cache
def shipped_root() -> Path:
    """The directory holding site_profiles/, workflows/ and containers/ (see the module docstring for where).

    A Path, not a Traversable: callers glob these directories and hand the files to engines and
    subprocesses; pip always installs a wheel as plain files.
    """
    inside = files("portaflow").joinpath("_shipped")
    if inside.is_dir():
        if not isinstance(inside, Path):
            raise PortaflowError(f"portaflow's shipped files are not plain files ({inside!r}): install portaflow unzipped")
        return inside
    checkout = source_checkout()
    if checkout is not None:
        return checkout
    raise PortaflowError(
        f"portaflow's shipped files (site profiles, workflows, container recipes) are missing: neither "
        f"{inside} nor a source checkout around {files('portaflow')}; reinstall portaflow"
    )


def site_profiles_dir() -> Path:
    """The shipped site profiles (the last place a site name is looked up)."""
    return shipped_root() / "site_profiles"


def site_profiles() -> list[Path]:
    """Every shipped site profile file, sorted by name."""
    return sorted(site_profiles_dir().glob("*.yaml"))


def workflows_dir() -> Path:
    """The shipped workflows, one folder per domain (examples/, hep/, radio/)."""
    return shipped_root() / "workflows"


def workflows() -> list[Path]:
    """Every shipped workflow file (DOMAIN/NAME.yaml), sorted."""
    return sorted(workflows_dir().glob("*/*.yaml"))


def workflow_name(path: Path) -> str:
    """A shipped workflow's short name, as `portaflow workflows` lists it: 'examples/wordfreq'."""
    return path.relative_to(workflows_dir()).with_suffix("").as_posix()


def find_workflow(name: str) -> Path | None:
    """A shipped workflow by name: 'examples/wordfreq', 'examples/wordfreq.yaml', or its bare 'wordfreq'
    when no other shipped workflow has that file name. None when it names none (ambiguity is an error)."""
    stem = name.removesuffix(".yaml").removesuffix(".yml")
    shipped = {workflow_name(p): p for p in workflows()}
    if stem in shipped:
        return shipped[stem]
    matches = [p for short, p in shipped.items() if short.rpartition("/")[2] == stem]
    if len(matches) > 1:
        raise InputError(f"{name!r} names several shipped workflows: {', '.join(workflow_name(p) for p in matches)}")
    return matches[0] if matches else None


def resolve_workflow(arg: str) -> str:
    """A command's WORKFLOW argument: an existing file as given, else a shipped workflow's file when `arg`
    names one, else `arg` unchanged (so a missing file is reported as the user typed it)."""
    if Path(arg).is_file():
        return arg
    found = find_workflow(arg)
    if found is None:
        return arg
    log.info("workflow %s: the shipped %s", arg, found)
    return str(found)


def containers_dir() -> Path:
    """The shipped container recipes (NAME.yaml, with the rendered NAME.def and NAME.Containerfile)."""
    return shipped_root() / "containers"
