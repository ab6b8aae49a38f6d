set -eo pipefail
cd /work/portaflow-golden
timeout --kill-after=10 1200 bash -c 'echo prepared > prepared.txt'
