"""What users write: workflow descriptions and site profiles, as typed models loaded from YAML."""

from portaflow.spec.loading import load_any, load_site, load_workflow
from portaflow.spec.site import SiteProfile
from portaflow.spec.workflow import Workflow

__all__ = ["SiteProfile", "Workflow", "load_any", "load_site", "load_workflow"]
