"""Golden values for the burn encoders, from an independent numpy BERT.

Run once (outputs are checked in as tests/golden/encoders.json):
    "$(scripts/pyenv.sh)" scripts/reference/golden_encoders.py "$(scripts/fetch-models.sh)"

For each sentence it records the token ids (Python `tokenizers`, padding off),
the all-MiniLM-L6-v2 mean-pooled embedding (first 16 dims, the norm before L2
normalisation, and the full normalised vector), and the SPLADE-tiny
vocabulary vector max-pooled over tokens with each activation
(`log1p_relu` = log(1 + relu(x)), `elu1p` = elu(x) + 1): its top 20 terms with
weights, its L1 mass and its number of non-zero entries.
"""

import json
import math
import os
import struct
import sys

import numpy as np
from tokenizers import Tokenizer

SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "0-dimensional biomaterials show inductive properties.",
    "Which film whose director is younger, Count Cohn or Key House Mirror?",
    "Microstructural development of human newborn cerebral white matter assessed in vivo by diffusion tensor magnetic resonance imaging.",
    "a",
]

DTYPES = {"F32": np.float32, "I64": np.int64}


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        a, b = meta["data_offsets"]
        out[name] = np.frombuffer(data[a:b], dtype=DTYPES[meta["dtype"]]).reshape(meta["shape"])
    return out


_erf = np.frompyfunc(math.erf, 1, 1)


def gelu(x):
    return (0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)).astype(np.float64))).astype(np.float64)


def layer_norm(x, g, b, eps):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * g + b


def get(w, *names):
    for n in names:
        if n in w:
            return w[n].astype(np.float64)
    raise KeyError(names)


def bert(w, prefix, cfg, ids, types=None):
    eps = cfg["layer_norm_eps"]
    n = len(ids)
    types = np.zeros(n, dtype=np.int64) if types is None else np.asarray(types)
    ln = lambda p: (get(w, p + ".weight", p + ".gamma"), get(w, p + ".bias", p + ".beta"))
    x = (
        get(w, prefix + "embeddings.word_embeddings.weight")[ids]
        + get(w, prefix + "embeddings.position_embeddings.weight")[:n]
        + get(w, prefix + "embeddings.token_type_embeddings.weight")[types]
    )
    x = layer_norm(x, *ln(prefix + "embeddings.LayerNorm"), eps)
    heads = cfg["num_attention_heads"]
    d = cfg["hidden_size"] // heads
    for i in range(cfg["num_hidden_layers"]):
        p = f"{prefix}encoder.layer.{i}."
        lin = lambda q, h: h @ get(w, q + ".weight").T + get(w, q + ".bias")
        q = lin(p + "attention.self.query", x).reshape(n, heads, d).transpose(1, 0, 2)
        k = lin(p + "attention.self.key", x).reshape(n, heads, d).transpose(1, 0, 2)
        v = lin(p + "attention.self.value", x).reshape(n, heads, d).transpose(1, 0, 2)
        s = q @ k.transpose(0, 2, 1) / math.sqrt(d)
        s = np.exp(s - s.max(-1, keepdims=True))
        s /= s.sum(-1, keepdims=True)
        ctx = (s @ v).transpose(1, 0, 2).reshape(n, heads * d)
        x = layer_norm(x + lin(p + "attention.output.dense", ctx), *ln(p + "attention.output.LayerNorm"), eps)
        h = gelu(lin(p + "intermediate.dense", x))
        x = layer_norm(x + lin(p + "output.dense", h), *ln(p + "output.LayerNorm"), eps)
    return x


def mlm_logits(w, cfg, hidden):
    h = hidden @ get(w, "cls.predictions.transform.dense.weight").T + get(w, "cls.predictions.transform.dense.bias")
    h = gelu(h)
    h = layer_norm(
        h,
        get(w, "cls.predictions.transform.LayerNorm.gamma", "cls.predictions.transform.LayerNorm.weight"),
        get(w, "cls.predictions.transform.LayerNorm.beta", "cls.predictions.transform.LayerNorm.bias"),
        cfg["layer_norm_eps"],
    )
    return h @ get(w, "bert.embeddings.word_embeddings.weight").T + get(w, "cls.predictions.bias")


def load(model_dir):
    cfg = json.load(open(os.path.join(model_dir, "config.json")))
    tok = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
    tok.no_padding()
    return cfg, tok, read_safetensors(os.path.join(model_dir, "model.safetensors"))


def main():
    models = sys.argv[1]
    out_path = sys.argv[2] if len(sys.argv) > 2 else "tests/golden/encoders.json"
    mcfg, mtok, mw = load(os.path.join(models, "minilm"))
    scfg, stok, sw = load(os.path.join(models, "splade-tiny"))
    vocab = {i: t for t, i in stok.get_vocab().items()}
    cases = []
    for text in SENTENCES:
        ids = mtok.encode(text).ids
        hidden = bert(mw, "", mcfg, ids)
        pooled = hidden.mean(0)
        norm = float(np.linalg.norm(pooled))
        dense = pooled / max(norm, 1e-12)

        sids = stok.encode(text).ids
        logits = mlm_logits(sw, scfg, bert(sw, "bert.", scfg, sids))
        sparse = {}
        for name, act in [
            ("log1p_relu", lambda x: np.log1p(np.maximum(x, 0.0))),
            ("elu1p", lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0.0))) + 1.0),
        ]:
            v = act(logits).max(0)
            top = np.argsort(-v, kind="stable")[:20]
            sparse[name] = {
                "top": [[int(t), vocab[int(t)], float(v[t])] for t in top],
                "l1": float(v.sum()),
                "nonzero": int((v > 0).sum()),
            }
        cases.append(
            {
                "text": text,
                "minilm_ids": ids,
                "splade_ids": sids,
                "dense_first16": [float(x) for x in dense[:16]],
                "dense_pooled_norm": norm,
                "dense": [float(x) for x in dense],
                "sparse": sparse,
            }
        )
    with open(out_path, "w") as f:
        json.dump({"generator": "scripts/reference/golden_encoders.py (numpy float64 BERT)", "cases": cases}, f, indent=1)
        f.write("\n")
    print(f"wrote {out_path}: {len(cases)} sentences")


if __name__ == "__main__":
    main()
