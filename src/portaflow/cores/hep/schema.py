"""Input schemas: which tree, which branches hold the muons, jets, MET and the event weight, and which queries
a set of files can answer.

Why a declared mapping instead of a fixed layout: real CMS files come in several layouts. NanoAOD has a TTree
`Events` with `Muon_pt/eta/phi/mass` + `Muon_charge`; older open-data ntuples have a tree `events` with
four-vectors `Muon_Px/Py/Pz/E`; flat dimuon ntuples have one scalar branch per muon (`px1`, `px2`, ...); skims
drop whole collections. The reduction computes the same quantities from any of them once the workflow says
where they are (docs/cores/hep.md, "Input schemas"). A query whose branches a file lacks is skipped for the
whole reduction (a histogram filled from only some of the files would be wrong without saying so), and one
message names the files and the branches; the other queries run.

Branch values in a mapping: a branch name (a jagged collection, or a per-event scalar for MET), or a list of
per-event scalar branch names (a collection of fixed size, one branch per object: `[px1, px2]`).
"""

from __future__ import annotations

import glob
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

Branch = str | tuple[str, ...]

# The two ways a muon's kinematics can be stored; charge always comes with them.
MUON_FORMS = {"polar": ("pt", "eta", "phi", "mass"), "cartesian": ("px", "py", "pz", "energy")}
# Jets and MET: the transverse momentum, or its components (pt = sqrt(px^2 + py^2)).
PT_FORMS = {"pt": ("pt",), "cartesian": ("px", "py")}

NANOAOD_MUON: dict[str, Branch] = {"pt": "Muon_pt", "eta": "Muon_eta", "phi": "Muon_phi", "mass": "Muon_mass",
                                   "charge": "Muon_charge"}
NANOAOD_JET: dict[str, Branch] = {"pt": "Jet_pt"}
NANOAOD_MET: dict[str, Branch] = {"pt": "MET_pt"}
NANOAOD_WEIGHT = "genWeight"

# query -> the objects it needs; "events" (the event count) needs none and always runs.
QUERIES: dict[str, tuple[str, ...]] = {
    "dimuon": ("muon",),
    "met_all": ("met",),
    "met_2jets40": ("jet", "met"),
    "met_zmumu": ("muon", "met"),
}
# query -> the histograms and counts it produces
QUERY_OUTPUTS: dict[str, tuple[str, ...]] = {
    "dimuon": ("dimuon_mass", "dimuon_mass_fine", "os_pairs", "os_pairs_in_window", "events_zmumu"),
    "met_all": ("met_all",),
    "met_2jets40": ("met_2jets40", "events_2jets40"),
    "met_zmumu": ("met_zmumu",),
}


class SchemaError(ValueError):
    """A mapping that cannot be right, or files that do not fit it (message names the file and the branches)."""


def _branch(value: Any, where: str) -> Branch:
    if isinstance(value, str) and value:
        return value
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, str) and v for v in value):
        return tuple(value)
    raise SchemaError(f"{where}: a branch name or a list of branch names, got {value!r}")


def _object(value: Any, forms: Mapping[str, tuple[str, ...]], extra: tuple[str, ...], name: str) -> dict[str, Branch]:
    if not isinstance(value, Mapping):
        raise SchemaError(f"columns.{name}: a mapping of field -> branch, got {value!r}")
    keys = set(value)
    for fields in forms.values():
        if keys == set(fields) | set(extra):
            mapping = {key: _branch(value[key], f"columns.{name}.{key}") for key in (*fields, *extra)}
            lists = [v for v in mapping.values() if isinstance(v, tuple)]
            if lists and (len(lists) != len(mapping) or len({len(v) for v in lists}) > 1):
                raise SchemaError(f"columns.{name}: either every field is a list of scalar branches of one length, "
                                  f"or none is; got {dict(value)}")
            return mapping
    allowed = " or ".join("{" + ", ".join((*fields, *extra)) + "}" for fields in forms.values())
    raise SchemaError(f"columns.{name}: fields {sorted(keys)}; expected {allowed}")


@dataclass(frozen=True)
class Schema:
    """Where the reduction finds its inputs. `weight`: "auto" (genWeight when the files have it), a branch
    name (every file must have it) or None (unweighted)."""

    tree: str = "Events"
    muon: Mapping[str, Branch] = field(default_factory=lambda: dict(NANOAOD_MUON))
    jet: Mapping[str, Branch] = field(default_factory=lambda: dict(NANOAOD_JET))
    met: Mapping[str, Branch] = field(default_factory=lambda: dict(NANOAOD_MET))
    weight: str | None = "auto"

    @classmethod
    def from_args(cls, tree: Any = None, columns: Any = None, weight: Any = None) -> Schema:
        """From a step's args: `tree`, `columns` ({muon: {...}, jet: {...}, met: {...}}, each replacing
        NanoAOD's mapping of that object), `weight` ("auto", a branch name, or "none")."""
        columns = columns or {}
        if not isinstance(columns, Mapping) or set(columns) - {"muon", "jet", "met"}:
            raise SchemaError(f"columns: a mapping with keys among muon, jet, met; got {columns!r}")
        muon = _object(columns["muon"], MUON_FORMS, ("charge",), "muon") if "muon" in columns else dict(NANOAOD_MUON)
        jet = _object(columns["jet"], PT_FORMS, (), "jet") if "jet" in columns else dict(NANOAOD_JET)
        met = _object(columns["met"], PT_FORMS, (), "met") if "met" in columns else dict(NANOAOD_MET)
        if weight is None or weight == "auto":
            weight_value: str | None = "auto"
        elif weight in ("none", False):
            weight_value = None
        elif isinstance(weight, str):
            weight_value = weight
        else:
            raise SchemaError(f"weight: 'auto', 'none' or a branch name, got {weight!r}")
        return cls(tree=str(tree) if tree else "Events", muon=muon, jet=jet, met=met, weight=weight_value)

    def objects(self) -> dict[str, Mapping[str, Branch]]:
        return {"muon": self.muon, "jet": self.jet, "met": self.met}

    def muon_form(self) -> str:
        return "polar" if "pt" in self.muon else "cartesian"

    @staticmethod
    def branches(mapping: Mapping[str, Branch]) -> list[str]:
        out: list[str] = []
        for value in mapping.values():
            out.extend([value] if isinstance(value, str) else value)
        return out


@dataclass(frozen=True)
class Resolution:
    """What a set of files can answer under a schema: the queries that run, a message per skipped query,
    and the weight branch (None: unweighted)."""

    queries: tuple[str, ...]
    skipped: dict[str, str]
    weight: str | None


def resolve(schema: Schema, file_branches: Mapping[str, Iterable[str]]) -> Resolution:
    """Decide the queries and the weight from the branch names of every file (path -> names)."""
    missing: dict[str, dict[str, list[str]]] = {}  # object -> file -> missing branches
    for path, names in file_branches.items():
        present = set(names)
        for obj, mapping in schema.objects().items():
            lacking = [b for b in Schema.branches(mapping) if b not in present]
            if lacking:
                missing.setdefault(obj, {})[path] = lacking
    queries, skipped = [], {}
    for query, needs in QUERIES.items():
        lacking_objects = [obj for obj in needs if obj in missing]
        if not lacking_objects:
            queries.append(query)
            continue
        per_file: dict[str, list[str]] = {}
        for obj in lacking_objects:
            for path, branches in missing[obj].items():
                per_file.setdefault(path, []).extend(b for b in branches if b not in per_file.get(path, []))
        skipped[query] = "; ".join(f"{path} lacks {', '.join(branches)}" for path, branches in per_file.items())
    weight = _resolve_weight(schema.weight, file_branches)
    return Resolution(tuple(queries), skipped, weight)


def _resolve_weight(weight: str | None, file_branches: Mapping[str, Iterable[str]]) -> str | None:
    if weight is None:
        return None
    branch = NANOAOD_WEIGHT if weight == "auto" else weight
    having = {path for path, names in file_branches.items() if branch in set(names)}
    if weight == "auto" and not having:
        return None  # data: no generator weights
    lacking = [path for path in file_branches if path not in having]
    if lacking:
        raise SchemaError(f"weight branch {branch!r} is missing from {', '.join(lacking)}"
                          + (" while other files have it: reduce data and simulation separately, or set weight: none"
                             if having else ""))
    return branch


def skipped_message(skipped: Mapping[str, str]) -> str:
    """The one message for every skipped query."""
    return "queries skipped for missing branches: " + " | ".join(f"{q}: {why}" for q, why in skipped.items())


GLOB_CHARS = set("*?[")
LIST_SUFFIXES = (".txt", ".list", ".lst")


def is_remote(path: str) -> bool:
    return "://" in path


def expand_paths(values: str | Path | Sequence[str | Path]) -> list[str]:
    """Input files from explicit paths, file lists (.txt/.list/.lst: one path per line, '#' comments, relative
    paths relative to the list) and globs (sorted); `root://`, `https://` ... URLs are kept unchanged for
    uproot. A glob that matches nothing or a list that names nothing raises: an empty dataset is a mistake."""
    items = [values] if isinstance(values, (str, Path)) else list(values)
    out: list[str] = []
    for item in items:
        text = str(item)
        if is_remote(text):
            out.append(text)
        elif text.endswith(LIST_SUFFIXES):
            listing = Path(text)
            if not listing.is_file():
                raise SchemaError(f"file list {text} does not exist")
            entries = [line.split("#", 1)[0].strip() for line in listing.read_text().splitlines()]
            entries = [e for e in entries if e]
            if not entries:
                raise SchemaError(f"file list {text} names no files")
            resolved = [e if is_remote(e) or Path(e).is_absolute() else str(listing.parent / e) for e in entries]
            out.extend(expand_paths(resolved))
        elif not Path(text).exists() and GLOB_CHARS & set(text):
            matches = sorted(glob.glob(text))
            if not matches:
                raise SchemaError(f"no file matches {text}")
            out.extend(matches)
        else:
            out.append(text)
    return out
