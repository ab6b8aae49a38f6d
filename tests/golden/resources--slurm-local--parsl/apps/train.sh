set -eo pipefail
cd /work/portaflow-golden
export OMP_NUM_THREADS=4
nvidia-smi -L > gpu.txt || echo no-gpu > gpu.txt
