"""The docs document every field users can write (a new field without docs fails here)."""

from __future__ import annotations

from pydantic import BaseModel

from portaflow.spec.site import SiteProfile
from portaflow.spec.workflow import Output, Resources, Step, Workflow

from testlib import ROOT


def fields_of(model: type[BaseModel], seen: set | None = None) -> set[str]:
    seen = seen if seen is not None else set()
    names = set(model.model_fields)
    for field in model.model_fields.values():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel) and annotation not in seen:
            seen.add(annotation)
            names |= fields_of(annotation, seen)
    return names


def test_every_site_field_is_documented():
    text = (ROOT / "docs" / "site-profiles.md").read_text()
    missing = sorted(f for f in fields_of(SiteProfile) if f"`{f}`" not in text and f".{f}`" not in text and f"`{f}:`" not in text)
    assert not missing, f"undocumented site profile fields: {missing}"


def test_every_workflow_field_is_documented():
    text = (ROOT / "docs" / "workflows.md").read_text()
    names = fields_of(Workflow) | fields_of(Step) | fields_of(Resources) | fields_of(Output)
    missing = sorted(f for f in names if f"`{f}`" not in text)
    assert not missing, f"undocumented workflow fields: {missing}"
