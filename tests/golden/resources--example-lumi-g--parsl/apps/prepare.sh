set -eo pipefail
cd /work/portaflow-golden
source /project/portaflow-venv/bin/activate
timeout --kill-after=10 1200 bash -c 'echo prepared > prepared.txt'
