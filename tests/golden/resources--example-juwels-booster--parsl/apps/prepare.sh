set -eo pipefail
cd /work/portaflow-golden
module load Stages/2025
module load Apptainer-Tools
source $PROJECT/portaflow-venv/bin/activate
timeout --kill-after=10 1200 bash -c 'echo prepared > prepared.txt'
