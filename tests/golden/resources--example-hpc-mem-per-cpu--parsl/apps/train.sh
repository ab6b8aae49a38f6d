set -eo pipefail
pf_t0=${EPOCHREALTIME:-$(date +%s.%N)}
cd /work/portaflow-golden
module load apptainer/1.3
source $HOME/portaflow-venv/bin/activate
export OMP_NUM_THREADS=4
timeout --kill-after=10 1500 bash -c 'echo "${CUDA_VISIBLE_DEVICES:-none}" > gpu.txt' &
pf_step=$!
trap 'kill -TERM "$pf_step" 2>/dev/null' TERM INT HUP
pf_status=0
wait "$pf_step" || pf_status=$?
while kill -0 "$pf_step" 2>/dev/null; do pf_status=0; wait "$pf_step" || pf_status=$?; done
{ echo "try $pf_t0 ${EPOCHREALTIME:-$(date +%s.%N)} $pf_status"; times; } 2>/dev/null >><RENDER_DIR>/logs/train.usage || true
test "$pf_status" -eq 0 || exit "$pf_status"
