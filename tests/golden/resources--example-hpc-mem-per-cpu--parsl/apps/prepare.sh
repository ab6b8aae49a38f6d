set -eo pipefail
cd /work/portaflow-golden
module load apptainer/1.3
source $HOME/portaflow-venv/bin/activate
echo prepared > prepared.txt
