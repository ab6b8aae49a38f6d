set -eo pipefail
pf_t0=${EPOCHREALTIME:-$(date +%s.%N)}
cd /work/portaflow-golden
<PYTHON_BIN>/python -m portaflow.runtime.peak <RENDER_DIR>/logs/count__shard_1.usage -- timeout --kill-after=10 300 bash -c 'tr -s '"'"' '"'"' '"'"'\n'"'"' < text/shard_1.txt | sort | uniq -c | sort -k2 | awk '"'"'{print $2"\t"$1}'"'"' > counts/shard_1.tsv' &
pf_step=$!
trap 'kill -TERM "$pf_step" 2>/dev/null' TERM INT HUP
pf_status=0
wait "$pf_step" || pf_status=$?
while kill -0 "$pf_step" 2>/dev/null; do pf_status=0; wait "$pf_step" || pf_status=$?; done
{ echo "try $pf_t0 ${EPOCHREALTIME:-$(date +%s.%N)} $pf_status"; times; } 2>/dev/null >><RENDER_DIR>/logs/count__shard_1.usage || true
test "$pf_status" -eq 0 || exit "$pf_status"
