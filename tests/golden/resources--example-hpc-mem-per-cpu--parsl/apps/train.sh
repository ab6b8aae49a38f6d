set -eo pipefail
cd /work/portaflow-golden
module load apptainer/1.3
source $HOME/portaflow-venv/bin/activate
export OMP_NUM_THREADS=4
echo "${CUDA_VISIBLE_DEVICES:-none}" > gpu.txt
