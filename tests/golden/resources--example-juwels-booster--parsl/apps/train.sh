set -eo pipefail
cd /work/portaflow-golden
module load Stages/2025
module load Apptainer-Tools
source $PROJECT/portaflow-venv/bin/activate
export OMP_NUM_THREADS=4
echo "${CUDA_VISIBLE_DEVICES:-none}" > gpu.txt
