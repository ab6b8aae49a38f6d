set -eo pipefail
cd /work/portaflow-golden
python3 -m portaflow.runtime.call '{"args":{"top":10},"dask":false,"inputs":{"counts":["counts/shard_0.tsv","counts/shard_1.tsv"]},"outputs":{"table":"results/top_words.json"},"target":"portaflow.examples.wordfreq:merge"}'
