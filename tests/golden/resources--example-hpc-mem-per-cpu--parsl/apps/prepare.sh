set -eo pipefail
cd /work/portaflow-golden
module load apptainer/1.3
source $HOME/portaflow-venv/bin/activate
timeout --kill-after=10 1200 bash -c 'echo prepared > prepared.txt'
