set -eo pipefail
cd /work/portaflow-golden
timeout --kill-after=10 300 bash -c 'python3 -m portaflow.runtime.call '"'"'{"args":{"top":10},"dask":false,"inputs":{"counts":["counts/shard_0.tsv","counts/shard_1.tsv"]},"outputs":{"table":"results/top_words.json"},"target":"portaflow.examples.wordfreq:merge"}'"'"''
