"""Checking the RO-Crates runs write (`ro-crate-metadata.json` beside each manifest): a cheap structural check that
every crate any test run writes gets (tests/conftest.py), and the full roc-validator for a representative set.

roc-validator reads the JSON-LD context a crate names (https://w3id.org/ro/crate/1.1/context) over HTTP, through its
own cache (requests_cache); in `offline` mode it reads only that cache, and fails a crate whose context is not there.
Nothing can be downloaded here and no copy of the RO-Crate 1.1 context is installed (the `rocrate` library ships
1.3's, whose terms map to other IRIs: `ComputationalWorkflow` is `https://bioschemas.org/terms/...` there). So the
validator's cache is seeded, in a temporary file, with a stand-in for that one document: RO_CRATE_11_TERMS, the
mappings the RO-Crate 1.1 context gives the terms portaflow's crates use (taken from the published 1.1 context), and
`structural_problems` refuses a crate that uses a term outside it (so that no term is silently dropped). Everything
else is roc-validator as a user runs it, offline: a request for anything but the seeded context fails the check.
Where roc-validator's cache holds the real context (`rocrate-validator cache warm`, once, online), a user validates
the same crate with `rocrate-validator validate --offline -p provenance-run-crate-0.5 <run dir>`.
"""

from __future__ import annotations

import io
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from portaflow.crate import CRATE_FILE, PROFILES, WFRUN_TERMS

RO_CRATE_11_CONTEXT = "https://w3id.org/ro/crate/1.1/context"
RO_CRATE_11_TERMS = {
    "ActiveActionStatus": "http://schema.org/ActiveActionStatus", "Boolean": "http://schema.org/Boolean",
    "CompletedActionStatus": "http://schema.org/CompletedActionStatus",
    "ComputationalWorkflow": "https://bioschemas.org/ComputationalWorkflow",
    "ComputerLanguage": "http://schema.org/ComputerLanguage", "ControlAction": "http://schema.org/ControlAction",
    "CreateAction": "http://schema.org/CreateAction", "CreativeWork": "http://schema.org/CreativeWork",
    "Dataset": "http://schema.org/Dataset", "FailedActionStatus": "http://schema.org/FailedActionStatus",
    "File": "http://schema.org/MediaObject", "Float": "http://schema.org/Float",
    "FormalParameter": "https://bioschemas.org/FormalParameter", "HowTo": "http://schema.org/HowTo",
    "HowToStep": "http://schema.org/HowToStep", "Integer": "http://schema.org/Integer",
    "OrganizeAction": "http://schema.org/OrganizeAction", "PropertyValue": "http://schema.org/PropertyValue",
    "SoftwareApplication": "http://schema.org/SoftwareApplication",
    "SoftwareSourceCode": "http://schema.org/SoftwareSourceCode", "Text": "http://schema.org/Text",
    "about": "http://schema.org/about", "actionStatus": "http://schema.org/actionStatus",
    "additionalType": "http://schema.org/additionalType", "agent": "http://schema.org/agent",
    "alternateName": "http://schema.org/alternateName", "conformsTo": "http://purl.org/dc/terms/conformsTo",
    "datePublished": "http://schema.org/datePublished", "description": "http://schema.org/description",
    "encodingFormat": "http://schema.org/encodingFormat", "endTime": "http://schema.org/endTime",
    "error": "http://schema.org/error", "exampleOfWork": "http://schema.org/exampleOfWork",
    "hasPart": "http://schema.org/hasPart", "identifier": "http://schema.org/identifier",
    "input": "https://bioschemas.org/ComputationalWorkflow#input", "instrument": "http://schema.org/instrument",
    "license": "http://schema.org/license", "mainEntity": "http://schema.org/mainEntity",
    "mentions": "http://schema.org/mentions", "multipleValues": "http://schema.org/multipleValues",
    "name": "http://schema.org/name", "object": "http://schema.org/object",
    "output": "https://bioschemas.org/ComputationalWorkflow#output", "position": "http://schema.org/position",
    "programmingLanguage": "http://schema.org/programmingLanguage", "result": "http://schema.org/result",
    "softwareRequirements": "http://schema.org/softwareRequirements",
    "softwareVersion": "http://schema.org/softwareVersion", "startTime": "http://schema.org/startTime",
    "step": "http://schema.org/step", "subjectOf": "http://schema.org/subjectOf", "url": "http://schema.org/url",
    "value": "http://schema.org/value", "version": "http://schema.org/version",
    "workExample": "http://schema.org/workExample"
}
"""Term -> IRI, as https://w3id.org/ro/crate/1.1/context (version 1.1.3) maps them; only the terms the crates use."""

PROFILE = "provenance-run-crate-0.5"
"""roc-validator's profile: Provenance Run Crate 0.5 with all it includes (Workflow Run, Process Run, Workflow
RO-Crate 1.0, RO-Crate 1.1)."""

UNMET_RECOMMENDATIONS = {
    "process-run-crate-0.5_8.6": "an action's agent (a Person or Organization): portaflow does not know who ran it",
    "process-run-crate-0.5_5.1": "a tool's id as an absolute URI: a workflow's steps are not published anywhere",
    "process-run-crate-0.5_3.2": "a url for each step and for the workflow: the same",
    "process-run-crate-0.5_4.1": "a version for each step: steps have none",
    "process-run-crate-0.5_7.1": "a version for the workflow: only where its file states one (`version:`)",
    "ro-crate-1.1_22.1": "a license as a contextual entity: workflow descriptions state no license",
    "ro-crate-1.1_22.2": "an author of the crate: unknown",
    "ro-crate-1.1_22.3": "a publisher Organization: unknown",
    "workflow-ro-crate-1.0_6.1": "a README.md about the crate: the run directory has none",
    "workflow-ro-crate-1.0_6.2": "the same README.md's encodingFormat",
}
"""roc-validator's RECOMMENDED checks a run's crate does not meet, and why portaflow cannot meet them."""


def crate_paths(root: Path) -> list[Path]:
    """Every crate under `root` (run directories, not the `latest` link)."""
    return sorted(p for p in root.rglob(CRATE_FILE) if "latest" not in p.parts)


def structural_problems(run_dir: Path) -> list[str]:
    """What is wrong with a run's crate, found without RDF (milliseconds): JSON-LD shape, the profiles, every
    reference resolves, the main workflow, every task of the manifest that was to run as an action with its
    manifest's status, every file's sha256 the manifest's, every file of the run directory present."""
    path = run_dir / CRATE_FILE
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        return [f"{path}: not JSON ({exc})"]
    problems: list[str] = []
    if data.get("@context") != [RO_CRATE_11_CONTEXT, WFRUN_TERMS]:
        problems.append(f"@context is {data.get('@context')!r}")
    graph = {e["@id"]: e for e in data.get("@graph", [])}
    root = graph.get("./", {})
    if {p["@id"] for p in _refs(root.get("conformsTo"))} != set(PROFILES.values()):
        problems.append(f"root conformsTo {root.get('conformsTo')!r}")
    for entity in graph.values():
        for term in _terms(entity):
            if term not in RO_CRATE_11_TERMS and term not in WFRUN_TERMS:
                problems.append(f"{entity['@id']}: term {term!r} is in neither context (a typo, or add its 1.1 mapping)")
        for key, value in entity.items():
            for ref in _refs(value) if key not in ("@id", "@type") else []:
                target = ref["@id"]
                if target not in graph and not target.startswith(("http://", "https://", "file:")):
                    problems.append(f"{entity['@id']}.{key} -> {target}, which the crate does not describe")
    main = graph.get(root.get("mainEntity", {}).get("@id", ""), {})
    if not main or not (run_dir / main["@id"]).is_file():
        problems.append(f"main workflow {root.get('mainEntity')!r} missing")
    manifest = json.loads((run_dir / "manifest.json").read_text())
    for task_id, info in manifest["tasks"].items():
        if "inputs" not in info:  # up to date, or not asked for
            continue
        action = next((e for e in graph.values() if e.get("@type") == "CreateAction" and e.get("name") == f"task {info['display']}"), None)
        if action is None:
            problems.append(f"task {task_id} ({info['status']}) has no action")
            continue
        ok = action.get("actionStatus") == "http://schema.org/CompletedActionStatus"
        if ok != (info["status"] == "ran"):
            problems.append(f"task {task_id}: {info['status']} in the manifest, {action.get('actionStatus')} in the crate")
    outputs = manifest["outputs"]
    for entity in graph.values():
        if entity.get("@type") in ("File", "Dataset") and entity.get("name") in outputs:
            if entity.get("sha256") != outputs[entity["name"]]["sha256"]:
                problems.append(f"{entity['@id']}: sha256 {entity.get('sha256')} but the manifest has {outputs[entity['name']]['sha256']}")
        if entity.get("@type") == "File" and not entity["@id"].startswith(("../", "file:", "#")) and not (run_dir / entity["@id"]).is_file():
            problems.append(f"{entity['@id']}: a file of the run directory that is not there")
    return [f"{path}: {p}" for p in problems]


def _terms(entity: dict[str, Any]) -> set[str]:
    types = entity.get("@type", [])
    terms = {t for t in ([types] if isinstance(types, str) else types)}
    terms |= {k for k in entity if not k.startswith("@")}
    for key in ("additionalType",):
        terms |= {r["@id"] for r in _refs(entity.get(key)) if ":" not in r["@id"]}
    if isinstance(entity.get("additionalType"), str):
        terms.add(entity["additionalType"])
    return terms


def _refs(value: Any) -> list[dict[str, str]]:
    values = value if isinstance(value, list) else [value]
    return [v for v in values if isinstance(v, dict) and set(v) == {"@id"}]


@dataclass(frozen=True)
class Issue:
    severity: str
    check: str
    message: str
    entity: str


def validate(run_dir: Path, severity: str = "REQUIRED") -> tuple[bool, list[Issue]]:
    """roc-validator on a run's crate (PROFILE, `severity` and above), offline, with its cache seeded with the
    RO-Crate 1.1 context stand-in (the module's docstring). Returns whether it passed and its issues."""
    from rocrate_validator import services
    from rocrate_validator.models import ValidationSettings

    with tempfile.TemporaryDirectory(prefix="roc-cache-") as cache_dir:
        cache = str(Path(cache_dir) / "http")
        _seed(cache, {RO_CRATE_11_CONTEXT: json.dumps({"@context": RO_CRATE_11_TERMS}).encode()})
        settings = ValidationSettings(rocrate_uri=str(run_dir), profile_identifier=PROFILE, requirement_severity=severity,
                                      offline=True, cache_path=cache)
        result = services.validate(settings)
        issues = [Issue(i.severity.name, i.check.identifier, str(i.message), str(getattr(i, "violatingEntity", "") or ""))
                  for i in result.get_issues()]
        return result.passed(), issues


def _seed(cache: str, documents: dict[str, bytes]) -> None:
    """Put `documents` (URL -> body) into a requests_cache file as roc-validator's own cache would hold them after a
    download: a session on that file whose only transport answers from `documents` (and refuses any other URL)."""
    import requests
    import urllib3
    from requests.adapters import BaseAdapter
    from requests_cache import CachedSession

    class Documents(BaseAdapter):
        def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
            url = str(request.url)
            if url not in documents:
                raise requests.ConnectionError(f"no network in the tests: {url}")
            response = requests.Response()
            response.status_code, response.url, response.request = 200, url, request
            response.headers["Content-Type"] = "application/ld+json"
            response._content = documents[url]
            response.raw = urllib3.HTTPResponse(body=io.BytesIO(documents[url]), headers=dict(response.headers), status=200,
                                                preload_content=False, request_url=url)
            return response

        def close(self) -> None:
            pass

    with CachedSession(cache_name=cache, backend="sqlite", allowable_codes=(200,)) as session:
        session.mount("http://", Documents())
        session.mount("https://", Documents())
        for url in documents:
            session.get(url).raise_for_status()
