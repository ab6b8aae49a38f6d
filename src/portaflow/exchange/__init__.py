"""Exchange with other workflow systems: a portaflow workflow written as CWL (cwl_export)."""
