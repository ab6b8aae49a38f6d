set -eo pipefail
cd /work/portaflow-golden
echo prepared > prepared.txt
