"""Workflow x site -> concrete tasks. Pure: no file system, no processes, no network.

Checks that touch the world (inputs exist, runtimes and images are there, the scheduler answers)
live in `portaflow.preflight`, so a plan can be made, printed and golden-tested anywhere.
"""

from portaflow.plan.model import DaskPlan, OutputPlan, Plan, Task, TaskResources
from portaflow.plan.planner import make_plan, resolve_parameters

__all__ = ["DaskPlan", "OutputPlan", "Plan", "Task", "TaskResources", "make_plan", "resolve_parameters"]
