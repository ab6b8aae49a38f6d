set -eo pipefail
cd /work/portaflow-golden
source /project/portaflow-venv/bin/activate
echo prepared > prepared.txt
