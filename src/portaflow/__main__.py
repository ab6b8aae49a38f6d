"""`python -m portaflow` is the `portaflow` command."""

from portaflow.cli import main

main()
