"""Load workflows and site profiles from YAML into validated models.

Site profiles may `extend` another profile, and users may set their own values (an account, say)
with `--site-set key=value` or `PORTAFLOW_SITE_<KEY>` environment variables, without editing the
admin's file. The merged, validated result is what a run records as its effective profile.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from ruamel.yaml import YAML

from portaflow import shipped
from portaflow.errors import InputError, Location, Problem, SpecError
from portaflow.safetext import looks_secret
from portaflow.spec.limits import MAX_NESTING_DEPTH, MAX_YAML_VALUES, limit_message
from portaflow.spec.site import SiteProfile
from portaflow.spec.slurm import MOVED_TO_SLURM
from portaflow.spec.templates import workflow_template_problems
from portaflow.spec.validation import depth_present, dotted, moved_message, problems_from_validation
from portaflow.spec.workflow import Workflow
from portaflow.spec.yamlfile import YamlDocument, did_you_mean, read_yaml, to_plain

ENV_PREFIX = "PORTAFLOW_SITE_"


@dataclass
class LoadedWorkflow:
    workflow: Workflow
    document: YamlDocument

    @property
    def path(self) -> str:
        return self.document.path


@dataclass
class LoadedSite:
    site: SiteProfile
    documents: list[YamlDocument]
    overrides: dict[str, Any] = field(default_factory=dict)

    @property
    def path(self) -> str:
        return self.documents[0].path

    def problem(self, keypath: tuple, message: str, hint: str | None = None) -> Problem:
        """A Problem at `keypath`, located in the document of the `extends` chain that sets the most of it
        (an admin fixes the file that says it, not the one that inherits it)."""
        doc = max(self.documents, key=lambda d: depth_present(d.data, keypath))  # the first, on a tie
        return Problem(doc.locate(keypath), dotted(keypath), message, hint)


def load_workflow(path: str | Path, document: YamlDocument | None = None) -> LoadedWorkflow:
    """Read and validate a workflow file (SpecError with locations on any problem, templates' fields included);
    `document`: the file already read."""
    doc = document or read_yaml(path)
    try:
        workflow = Workflow.model_validate(to_plain(doc.data))
    except ValidationError as exc:
        raise SpecError(problems_from_validation(exc, [doc], Workflow)) from None
    problems = workflow_template_problems(workflow, doc)
    if problems:
        raise SpecError(problems)
    return LoadedWorkflow(workflow, doc)


def site_search_path() -> list[Path]:
    """Where site names are looked up: $PORTAFLOW_SITE_PATH, the user's config, then shipped profiles."""
    dirs = [Path(p) for p in os.environ.get("PORTAFLOW_SITE_PATH", "").split(os.pathsep) if p]
    dirs.append(Path(os.environ.get("XDG_CONFIG_HOME", Path.home() / ".config")) / "portaflow" / "sites")
    dirs.append(shipped.site_profiles_dir())
    return dirs


def find_site_file(name_or_path: str, relative_to: Path | None = None) -> Path:
    """A site profile's file from a name ('slurm-local') or a path."""
    candidate = Path(name_or_path)
    if relative_to is not None and not candidate.is_absolute():
        near = relative_to / candidate
        if near.is_file():
            return near
    if candidate.suffix in (".yaml", ".yml") or os.sep in name_or_path:
        if candidate.exists():  # reading it says what is wrong with it, if it is not a regular file
            return candidate
        raise InputError(f"site profile file not found: {name_or_path}")
    for directory in site_search_path():
        for suffix in (".yaml", ".yml"):
            path = directory / f"{name_or_path}{suffix}"
            if path.is_file():
                return path
    known = sorted({p.stem for d in site_search_path() if d.is_dir() for p in d.glob("*.y*ml")})
    hint = did_you_mean(name_or_path, known)
    raise InputError(
        f"unknown site {name_or_path!r}" + (f"; {hint}" if hint else "") + f" (known sites: {', '.join(known) or 'none'})"
    )


def load_site(
    name_or_path: str | Path = "local",
    overrides: Mapping[str, str] | None = None,
    environ: Mapping[str, str] | None = None,
    document: YamlDocument | None = None,
) -> LoadedSite:
    """Read a site profile, apply `extends`, then user overrides (command line wins over environment);
    `document`: the profile's file already read."""
    path = find_site_file(str(name_or_path))
    docs = _extends_chain(path, seen=[], document=document)
    merged: dict[str, Any] = {}
    for doc in reversed(docs):
        merged = _deep_merge(merged, to_plain(doc.data))
    merged.pop("extends", None)
    _refuse_secrets_in_files(docs)
    from_env = _env_overrides(environ if environ is not None else os.environ)
    from_cli = {k: parse_value(v) for k, v in (overrides or {}).items()}
    _refuse_moved_overrides(from_env, from_cli)
    _refuse_secret_overrides(from_env, from_cli)
    user = {**from_env, **from_cli}
    for keypath, value in user.items():
        _set_dotted(merged, keypath, value)
    try:
        site = SiteProfile.model_validate(merged)
    except ValidationError as exc:
        problems = problems_from_validation(exc, docs, SiteProfile, moved=MOVED_TO_SLURM)
        if user:
            problems.append(Problem(Location("(user overrides)"), "", f"set from --site-set or {ENV_PREFIX}*: {shown_overrides(user)}"))
        raise SpecError(problems) from None
    return LoadedSite(site, docs, user)


def _extends_chain(path: Path, seen: list[Path], document: YamlDocument | None = None) -> list[YamlDocument]:
    resolved = path.resolve()
    if resolved in seen:
        chain = " -> ".join(str(p) for p in [*seen, resolved])
        raise SpecError([Problem(Location(str(path)), "extends", f"profiles extend each other in a cycle: {chain}")])
    doc = document or read_yaml(path)
    parent = doc.data.get("extends")
    if not parent:
        return [doc]
    try:
        parent_path = find_site_file(str(parent), relative_to=path.parent)
    except InputError as exc:
        raise SpecError([Problem(doc.value_location(("extends",)), "extends", str(exc))]) from None
    return [doc, *_extends_chain(parent_path, [*seen, resolved])]


def _deep_merge(base: dict[str, Any], over: dict[str, Any], path: tuple[str, ...] = ()) -> dict[str, Any]:
    """Mappings merge key by key; everything else (lists included) is replaced by the child's value.

    A partition the child sets to null (`partitions: {develbooster: null}`) is dropped: a user's profile that extends
    the admin's can keep a queue out of its runs. (Only partitions: elsewhere null is a value, e.g.
    `htcondor.runtime_attribute: null`.)"""
    out = dict(base)
    for key, value in over.items():
        if value is None and path == ("partitions",):
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value, (*path, key))
        else:
            out[key] = value
    return out


def _env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    """PORTAFLOW_SITE_ACCOUNT=x -> account; PORTAFLOW_SITE_DASK__MODE=jobs -> dask.mode."""
    out = {}
    for key, value in environ.items():
        if key.startswith(ENV_PREFIX) and key != "PORTAFLOW_SITE_PATH":
            dotted = key[len(ENV_PREFIX):].lower().replace("__", ".")
            out[dotted] = parse_value(value)
    return out


SECRET_HINT = ("name the variable instead of giving its value: export {name} in the environment you run portaflow from "
               "(jobs on local and SLURM sites inherit it; for steps in containers add it to container.env_passthrough: "
               "--site-set 'container.env_passthrough=[{name}]'); its value is then passed to jobs through the environment "
               "only and never written into a rendered file, the run record or a log")


def _refuse_secret_overrides(from_env: Mapping[str, Any], from_cli: Mapping[str, Any]) -> None:
    """A credential given as a value (`--site-set environment.env.API_TOKEN=...`) is refused, without repeating the value:
    set there, it would be written into the Snakefile, the job scripts, the run's site.yaml and its logs."""
    problems = []
    for source, values in (("--site-set", from_cli), ("environment", from_env)):
        for dotted_key, value in values.items():
            keys = dotted_key.split(".")
            if source == "environment":
                where = ENV_PREFIX + dotted_key.upper().replace(".", "__")
            else:
                where = source
            names = [keys[2]] if keys[:2] == ["environment", "env"] and len(keys) == 3 else []
            if keys == ["environment", "env"] and isinstance(value, dict):
                names = [str(k) for k in value]
            for name in names:
                if looks_secret(name):
                    name = name.upper() if source == "environment" else name
                    problems.append(Problem(Location(where), f"environment.env.{name}",
                                            f"{name} looks like a credential (its name has TOKEN, SECRET, PASSWORD or KEY), and "
                                            "credentials are not accepted as values", SECRET_HINT.format(name=name)))
    if problems:
        raise SpecError(problems)


def _refuse_secrets_in_files(docs: list[YamlDocument]) -> None:
    """A credential written literally in a profile file (`environment.env: {API_TOKEN: glpat-...}`) is refused at its
    line, without repeating the value: profiles are shared and kept in git, and the value would be copied into the
    Snakefile, the job scripts, the run's site.yaml and its logs. Each file of the `extends` chain is checked."""
    problems = []
    for doc in docs:
        environment = doc.data.get("environment") if isinstance(doc.data, Mapping) else None
        env = environment.get("env") if isinstance(environment, Mapping) else None
        if not isinstance(env, Mapping):
            continue
        for name in env:
            if isinstance(name, str) and looks_secret(name):
                problems.append(Problem(doc.locate(("environment", "env", name)), f"environment.env.{name}",
                                        f"{name} looks like a credential (its name has TOKEN, SECRET, PASSWORD or KEY), and credentials "
                                        "are not accepted as values in a profile file: pass it by the environment variable's name",
                                        SECRET_HINT.format(name=name)))
    if problems:
        raise SpecError(problems)


def shown_overrides(user: Mapping[str, Any]) -> dict[str, Any]:
    """User overrides as an error message may show them: values under a credential-like name hidden."""
    return {k: ("<hidden>" if any(looks_secret(part) for part in k.split(".")) else v) for k, v in user.items()}


def _refuse_moved_overrides(from_env: Mapping[str, Any], from_cli: Mapping[str, Any]) -> None:
    """A user value set under a key that has moved (`--site-set qos=x`) is refused with the new spelling:
    applied as written it would only be an unknown key located, misleadingly, at the top of the profile."""
    problems = []
    for source, values in (("environment", from_env), ("--site-set", from_cli)):
        for dotted_key, value in values.items():
            new = MOVED_TO_SLURM.get(tuple(dotted_key.split(".")))
            if new is None:
                continue
            message, _ = moved_message(new)
            if source == "--site-set":
                where, hint = source, f"write --site-set {dotted(new)}={value}"
            else:
                where = ENV_PREFIX + dotted_key.upper().replace(".", "__")
                hint = f"set {ENV_PREFIX}{'__'.join(new).upper()} instead"
            problems.append(Problem(Location(where), dotted_key, message, hint))
    if problems:
        raise SpecError(problems)


def parse_value(text: str) -> Any:
    """A command-line value (--param, --site-set, environment) read as YAML would read it:
    '4' -> 4, 'true' -> True, 'a b' -> 'a b'."""
    try:
        value = YAML(typ="safe").load(text)
    except Exception:
        return text
    if _expanded_size(value) > MAX_YAML_VALUES:  # an alias bomb on the command line: shared references until expanded
        raise InputError(limit_message(f"the value {text[:40]!r}... has a number of values, with aliases expanded, that",
                                       MAX_YAML_VALUES, "MAX_YAML_VALUES"))
    return text if value is None and text.strip() not in ("null", "~") else value


def _expanded_size(value: Any, sizes: dict[int, int] | None = None, active: frozenset[int] = frozenset()) -> int:
    """How many values `value` stands for with shared references expanded (memoised per object; a structure that
    contains itself counts as over every limit)."""
    sizes = {} if sizes is None else sizes
    if not isinstance(value, (list, dict)):
        return 1
    key = id(value)
    if key in active or len(active) > MAX_NESTING_DEPTH:
        return MAX_YAML_VALUES + 1
    if key not in sizes:
        children = value.values() if isinstance(value, dict) else value
        sizes[key] = 1 + sum(_expanded_size(child, sizes, active | {key}) for child in children)
    return sizes[key]


def _set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node = data
    for key in keys[:-1]:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise InputError(f"cannot set {dotted}: {key} is not a mapping")
    node[keys[-1]] = value


def load_any(path: str | Path) -> LoadedWorkflow | LoadedSite:
    """Load a file as a site profile (it has `scheduler`, or `extends` another) or a workflow (it has `steps`)."""
    doc = read_yaml(path)
    if ("scheduler" in doc.data or "extends" in doc.data) and "steps" not in doc.data:
        return load_site(str(path), environ={}, document=doc)
    return load_workflow(path, document=doc)


def parse_assignments(pairs: list[str] | tuple[str, ...], flag: str) -> dict[str, str]:
    """'k=v' strings from the command line as a dict; a malformed one is an input error."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise InputError(f"{flag} expects key=value, found {pair!r}")
        out[key.strip()] = value
    return out
