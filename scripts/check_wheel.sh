#!/usr/bin/env bash
# The installed package, as a user gets it: build portaflow's wheel, install it (base dependencies only) into a
# clean virtual environment outside the checkout, and use it from a scratch directory outside the checkout:
# `portaflow sites`, `workflows`, `validate`, `plan`, and a small local run of the wordfreq example with Parsl.
# Why: inside the checkout everything also works from the source tree, so only this shows that the wheel
# carries its site profiles, workflows and container recipes and finds them once installed.
# Prints each phase's time; exits non-zero on any failure. KEEP=1 keeps the temporary directory.
set -euo pipefail
cd "$(dirname "$0")/.."
checkout=$PWD
PYTHON=${PYTHON:-python3}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/portaflow-wheel.XXXXXX")
if [ "${KEEP:-0}" = 1 ]; then echo "keeping $tmp"; else trap 'rm -rf "$tmp"' EXIT; fi
t_all=$(date +%s)
t_phase=$t_all
phase() { echo "--- $1"; t_phase=$(date +%s); }
took() { echo "    $1 took $(( $(date +%s) - t_phase ))s"; }
fail() { echo "check_wheel: FAILED: $*" >&2; exit 1; }

phase "build the wheel (from a copy of the checkout's files, so stale build/ output cannot leak in)"
mkdir "$tmp/src" "$tmp/dist"
git ls-files -z --cached --others --exclude-standard | tar --null -T - -cf - | tar -C "$tmp/src" -xf -
"$PYTHON" -m venv "$tmp/venv"
venv=$tmp/venv
"$venv/bin/python" -m pip wheel -qq --no-deps --wheel-dir "$tmp/dist" "$tmp/src"
wheel=$(ls "$tmp/dist"/portaflow-*.whl)
echo "    $(basename "$wheel"): $("$venv/bin/python" -c 'import sys, zipfile; print(sum(n.startswith("portaflow/_shipped/") for n in zipfile.ZipFile(sys.argv[1]).namelist()))' "$wheel") shipped files"
# portaflow's Snakemake plugins (logger, executors) are top-level packages Snakemake finds by name: all in the wheel
"$venv/bin/python" - "$wheel" "$checkout/src" <<'EOF' || fail "the wheel lacks portaflow's Snakemake plugins"
import sys, zipfile
from pathlib import Path
names = set(zipfile.ZipFile(sys.argv[1]).namelist())
plugins = sorted(p.name for p in Path(sys.argv[2]).glob("snakemake_*_plugin_portaflow*") if (p / "__init__.py").exists())
missing = [p for p in plugins if f"{p}/__init__.py" not in names]
assert len(plugins) >= 3 and not missing, f"plugins {plugins}, missing from the wheel: {missing}"
print(f"    Snakemake plugins in the wheel: {', '.join(plugins)}")
EOF
took "build"

phase "install the wheel and its base dependencies into a clean venv ($venv)"
# -qq: errors only; --no-compile: no .pyc for every dependency up front (imports compile what they use)
"$venv/bin/python" -m pip install -qq --no-compile "$wheel"
took "install"

phase "use it from a scratch directory outside the checkout"
scratch=$tmp/scratch
mkdir -p "$scratch" "$tmp/config"
cd "$scratch"
# Nothing from the checkout or the caller's setup: no PYTHONPATH, no user or extra site profiles; and the venv
# is not activated (its bin/ is not on PATH), as with pipx: portaflow must find its own tools.
unset PYTHONPATH PORTAFLOW_SITE_PATH VIRTUAL_ENV
export XDG_CONFIG_HOME=$tmp/config
pf=$venv/bin/portaflow
"$venv/bin/python" - "$venv" "$checkout" <<'EOF' || fail "the installed package does not find its shipped files inside itself"
import sys
from pathlib import Path
import portaflow
from portaflow import shipped
venv, checkout = Path(sys.argv[1]).resolve(), Path(sys.argv[2]).resolve()
here = Path(portaflow.__file__).resolve()
assert here.is_relative_to(venv), f"portaflow imported from {here}, not from the venv"
root = shipped.shipped_root().resolve()
assert root.is_relative_to(venv) and not root.is_relative_to(checkout), f"shipped files found at {root}"
assert shipped.source_checkout() is None
for what, where, found in [("site profiles", shipped.site_profiles_dir(), shipped.site_profiles()),
                           ("workflows", shipped.workflows_dir(), shipped.workflows()),
                           ("container recipes", shipped.containers_dir(), sorted(shipped.containers_dir().glob("*.yaml")))]:
    assert found, f"no shipped {what} in {where}"
    print(f"    {len(found)} {what} in {where}")
EOF
"$pf" --version
"$pf" sites > sites.txt || fail "portaflow sites"
for name in local local-podman slurm-local; do
  grep -q "^│ $name " sites.txt || { cat sites.txt; fail "portaflow sites does not list $name"; }
done
"$pf" workflows > workflows.txt || fail "portaflow workflows"
grep -q "examples/wordfreq" workflows.txt || { cat workflows.txt; fail "portaflow workflows does not list examples/wordfreq"; }
wf=$("$venv/bin/python" -c 'from portaflow import shipped; print(shipped.find_workflow("examples/wordfreq"))')
cp "$wf" wordfreq-copy.yaml
"$pf" validate "$wf" wordfreq-copy.yaml examples/wordfreq || fail "portaflow validate"
"$pf" validate "$(dirname "$(dirname "$wf")")"/*/*.yaml || fail "portaflow validate (every shipped workflow)"
"$pf" plan wordfreq --preset small --site slurm-local > plan.txt || fail "portaflow plan"
grep -q "wordfreq on slurm-local (slurm): 5 task(s)" plan.txt || { cat plan.txt; fail "unexpected plan"; }
"$pf" containers build hep > build.txt 2>&1 && fail "containers build ran without portaflow's source"
grep -q "needs portaflow's source checkout" build.txt || { cat build.txt; fail "containers build: unexpected message"; }
took "sites, workflows, validate, plan"

phase "run the wordfreq example locally with Parsl (the copied file, from the scratch directory)"
"$pf" run wordfreq-copy.yaml --preset small --engine parsl || fail "portaflow run exited $?"
work=$scratch/work/wordfreq
for out in text/shard_0.txt text/shard_1.txt counts/shard_0.tsv counts/shard_1.tsv results/top_words.json \
           .portaflow/runs/latest/manifest.json; do
  [ -s "$work/$out" ] || fail "run output missing or empty: $work/$out"
done
"$venv/bin/python" -c 'import json, sys; top = json.load(open(sys.argv[1])); assert top, "empty top_words.json"' \
  "$work/results/top_words.json" || fail "results/top_words.json is not a non-empty JSON document"
took "run"

phase "the same run through Snakemake (its logger plugin, snakemake_logger_plugin_portaflow, comes from the wheel)"
"$pf" run wordfreq-copy.yaml --preset small --engine snakemake -w "$scratch/work-snakemake" || fail "portaflow run --engine snakemake exited $?"
cmp "$work/results/top_words.json" "$scratch/work-snakemake/results/top_words.json" || fail "Snakemake's results differ from Parsl's"
events=$scratch/work-snakemake/.portaflow/runs/latest/snakemake-events.jsonl
grep -q '"event": *"job_finished"' "$events" || fail "no structured Snakemake events in $events (is the logger plugin in the wheel?)"
# Snakemake imports every plugin it finds: portaflow's executor plugins must import (and be listed) even where the
# upstream htcondor and kubernetes plugins they subclass are not installed (base dependencies only, as here).
"$venv/bin/python" -m snakemake --help > snakemake-help.txt 2>&1 || { tail -20 snakemake-help.txt; fail "snakemake --help with portaflow's plugins"; }
grep -q "portaflow-kubernetes" snakemake-help.txt && grep -q "portaflow-htcondor" snakemake-help.txt \
  || fail "snakemake does not list portaflow's executor plugins"
took "run (Snakemake)"

echo "check_wheel: ok (total $(( $(date +%s) - t_all ))s)"
