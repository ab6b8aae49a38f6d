# The two commands a new machine needs (see README.md):
#   make run    install everything, then run the main workflow on the local site
#   make test   install everything, then run the test suite
.PHONY: setup run test slurm-up slurm-down

MAIN_WORKFLOW ?= workflows/hep/zmumu.yaml
ENGINE ?= parsl

setup:
	./scripts/setup.sh

run: setup
	.venv/bin/portaflow run $(MAIN_WORKFLOW) --engine $(ENGINE)

test: setup
	.venv/bin/python -m pytest $(PYTEST_ARGS)
