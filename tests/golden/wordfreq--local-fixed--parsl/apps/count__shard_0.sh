set -eo pipefail
cd /work/portaflow-golden
timeout --kill-after=10 300 bash -c 'tr -s '"'"' '"'"' '"'"'\n'"'"' < text/shard_0.txt | sort | uniq -c | sort -k2 | awk '"'"'{print $2"\t"$1}'"'"' > counts/shard_0.tsv'
