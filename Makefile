# The two commands a new machine needs (see README.md):
#   make run    install everything, then run the main workflow on the local site
#   make test   install everything, then run the test suite
.PHONY: setup browser run test slurm-up slurm-down

MAIN_WORKFLOW ?= workflows/hep/zmumu.yaml
ENGINE ?= parsl

setup:
	./scripts/setup.sh

run: setup
	.venv/bin/portaflow run $(MAIN_WORKFLOW) --engine $(ENGINE)

# Tests run side by side in TEST_WORKERS processes (pytest-xdist): most of the suite waits on SLURM's queue and
# polling or on subprocesses, so more workers than the CI machine's 2 cores pay. `--dist loadgroup` keeps tests
# marked with one xdist_group on one worker (see tests/conftest.py). TEST_WORKERS=0 runs them in one process.
TEST_WORKERS ?= 4

# chromium for the report tests (installed as root; otherwise a note, and those tests skip)
browser:
	-./scripts/setup-browser.sh

test: setup browser
	.venv/bin/python -m pytest -n $(TEST_WORKERS) --dist loadgroup $(PYTEST_ARGS)
