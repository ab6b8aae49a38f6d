set -eo pipefail
cd /work/portaflow-golden
module load apptainer/1.3
source $HOME/portaflow-venv/bin/activate
export OMP_NUM_THREADS=4
timeout --kill-after=10 1500 bash -c 'echo "${CUDA_VISIBLE_DEVICES:-none}" > gpu.txt'
