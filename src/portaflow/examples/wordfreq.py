"""Steps of workflows/examples/wordfreq.yaml: deterministic text, then a merge of word counts."""

from __future__ import annotations

import json
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

VOCABULARY = ("muon jet electron photon tau neutrino quark gluon boson hadron lepton "
              "antenna baseline visibility beam pulsar quasar galaxy spectrum flux pixel").split()


def make_text(*, inputs: Mapping[str, Any], outputs: Mapping[str, str], args: Mapping[str, Any]) -> None:
    """One shard of words drawn with a seed that depends on the shard, so shards differ but repeat."""
    rng = random.Random(int(args["seed"]) * 1000 + int(args["shard"]))
    weights = [1.0 / (rank + 1) for rank in range(len(VOCABULARY))]  # Zipf-like, as in real text
    words = rng.choices(VOCABULARY, weights=weights, k=int(args["words"]))
    lines = [" ".join(words[i:i + 12]) for i in range(0, len(words), 12)]
    Path(outputs["text"]).write_text("\n".join(lines) + "\n")


def merge(*, inputs: Mapping[str, Any], outputs: Mapping[str, str], args: Mapping[str, Any]) -> None:
    """Sum the per-shard counts; ties are broken by the word so the result is deterministic."""
    paths = inputs["counts"]
    totals: dict[str, int] = {}
    for path in [paths] if isinstance(paths, str) else paths:
        for line in Path(path).read_text().splitlines():
            if line.strip():
                word, count = line.split("\t")
                totals[word] = totals.get(word, 0) + int(count)
    ranked = sorted(totals.items(), key=lambda kv: (-kv[1], kv[0]))[: int(args["top"])]
    result = {"shards": len(paths), "total_words": sum(totals.values()), "top": [{"word": w, "count": c} for w, c in ranked]}
    Path(outputs["table"]).write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
