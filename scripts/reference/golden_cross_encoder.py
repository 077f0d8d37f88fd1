"""Golden values for the burn cross-encoder, from an independent numpy BERT.

Run once (outputs are checked in as tests/golden/cross-encoder.json):
    "$(scripts/pyenv.sh)" scripts/reference/golden_cross_encoder.py "$(scripts/fetch-models.sh)"

The cross-encoder is what `trainer train-reranker` starts from: the
all-MiniLM-L6-v2 body (all six layers, and its first two) and pooler, and a
new one-output classifier drawn from SplitMix64 + Box-Muller (seed 7,
standard deviation 0.02, bias 0), written out here independently of the
Rust code. For each (question, passage) pair it records the ids and token
types of Python `tokenizers` (pair template, truncation `only_second` to
the model's 256 tokens) and the logit of
`classifier(tanh(pooler([CLS] state)))` in float64.
"""

import json
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from golden_encoders import bert, load  # noqa: E402

SEED = 7
STD = 0.02
MAX_LENGTH = 256
MASK = (1 << 64) - 1

PAIRS = [
    ("What is the capital of France?", "Paris is the capital and largest city of France."),
    ("What is the capital of France?", "Berlin is the capital of Germany."),
    (
        "Which film whose director is younger, Count Cohn or Key House Mirror?",
        "Key House Mirror is a 1976 film directed by Michael Dorn.",
    ),
    ("0-dimensional biomaterials show inductive properties.", "a"),
    # A passage past 256 tokens: cut to fill the model's length.
    ("Who wrote it?", " ".join(["The committee reviewed the evidence again."] * 60)),
]


def seeded_normal(seed, n, std):
    state = seed
    out = []

    def uniform():
        nonlocal state
        state = (state + 0x9E3779B97F4A7C15) & MASK
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        z ^= z >> 31
        return ((z >> 11) + 1.0) / float(1 << 53)

    for _ in range(n):
        u1 = uniform()
        u2 = uniform()
        out.append(np.float32(math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2) * std))
    return np.array(out, dtype=np.float32).astype(np.float64)


def main():
    models = sys.argv[1]
    out_path = sys.argv[2] if len(sys.argv) > 2 else "tests/golden/cross-encoder.json"
    cfg, tok, w = load(os.path.join(models, "minilm"))
    tok.enable_truncation(MAX_LENGTH, strategy="only_second")
    classifier = seeded_normal(SEED, cfg["hidden_size"], STD)
    pooler_w = w["pooler.dense.weight"].astype(np.float64)
    pooler_b = w["pooler.dense.bias"].astype(np.float64)
    models_out = []
    for layers in [cfg["num_hidden_layers"], 2]:
        lcfg = dict(cfg, num_hidden_layers=layers)
        cases = []
        for q, p in PAIRS:
            enc = tok.encode(q, p)
            hidden = bert(w, "", lcfg, enc.ids, enc.type_ids)
            pooled = np.tanh(pooler_w @ hidden[0] + pooler_b)
            logit = float(classifier @ pooled)
            cases.append(
                {
                    "question": q,
                    "passage": p,
                    "ids": enc.ids,
                    "first_len": int(enc.type_ids.count(0)),
                    "logit": logit,
                }
            )
        models_out.append({"layers": layers, "cases": cases})
    with open(out_path, "w") as f:
        json.dump(
            {
                "generator": "scripts/reference/golden_cross_encoder.py (numpy float64 BERT)",
                "seed": SEED,
                "std": STD,
                "max_length": MAX_LENGTH,
                "classifier_first4": [float(x) for x in classifier[:4]],
                "models": models_out,
            },
            f,
            indent=1,
        )
        f.write("\n")
    print(f"wrote {out_path}")


if __name__ == "__main__":
    main()
