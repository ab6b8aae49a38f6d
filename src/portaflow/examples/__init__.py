"""Callables for the small example workflows in workflows/examples/."""
