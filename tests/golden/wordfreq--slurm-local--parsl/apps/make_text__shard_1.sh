set -eo pipefail
cd /work/portaflow-golden
timeout --kill-after=10 300 bash -c 'python3 -m portaflow.runtime.call '"'"'{"args":{"seed":7,"shard":1,"words":2000},"dask":false,"inputs":{},"outputs":{"text":"text/shard_1.txt"},"target":"portaflow.examples.wordfreq:make_text"}'"'"''
