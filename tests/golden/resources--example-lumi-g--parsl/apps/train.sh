set -eo pipefail
cd /work/portaflow-golden
source /project/portaflow-venv/bin/activate
export OMP_NUM_THREADS=4
echo "${CUDA_VISIBLE_DEVICES:-none}" > gpu.txt
