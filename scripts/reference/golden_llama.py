"""Golden logits for rlrag's llama decoder (crates/generator/src/llama.rs):
an independent numpy forward pass of a GGUF llama model in float64, on the
weights gguf-py dequantises, written the Hugging Face way (Q and K rows put
back in Hugging Face's order, then rotate-half RoPE), so the Rust model's
reading of llama.cpp's permuted layout is checked too.

Writes tests/golden/gguf/NAME-logits.json: per prompt (token ids), per
position the logsumexp of the logits, the top 5 (id, logit), and the
logits of 8 fixed ids.

Usage: "$(scripts/pyenv.sh)" scripts/reference/golden_llama.py \\
         --model smollm2=$HOME/.cache/rlrag/models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
"""
import argparse
import json
import os

import numpy as np
from gguf import GGUFReader
from gguf.quants import dequantize

OUT = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "golden", "gguf")
PROMPTS = [
    [1, 9690, 198, 2683, 359, 253, 5356, 5646, 30, 2, 198],
    [504, 3458, 282, 4649, 314, 7042, 30],
    [28],
]
FIXED_IDS = [0, 1, 2, 28, 504, 3458, 20000, 49151]


def load(path):
    r = GGUFReader(path)
    meta = {k: f.contents() for k, f in r.fields.items() if not k.startswith("tokenizer.")}
    w = {}
    for t in r.tensors:
        shape = tuple(reversed([int(d) for d in t.shape]))
        w[t.name] = dequantize(t.data, t.tensor_type).astype(np.float64).reshape(shape)
    return meta, w


def unpermute(rows, n_head):
    # GGUF row 2i+j of a head is Hugging Face row i + j*hd/2.
    out_dim = rows.shape[0]
    hd = out_dim // n_head
    return rows.reshape(n_head, hd // 2, 2, -1).swapaxes(1, 2).reshape(rows.shape)


def forward(meta, w, ids):
    arch = meta["general.architecture"]
    n_layer = meta[f"{arch}.block_count"]
    n_head = meta[f"{arch}.attention.head_count"]
    n_kv = meta.get(f"{arch}.attention.head_count_kv", n_head)
    eps = meta[f"{arch}.attention.layer_norm_rms_epsilon"]
    base = meta.get(f"{arch}.rope.freq_base", 10000.0)
    emb = w["token_embd.weight"]
    hidden = emb.shape[1]
    hd = hidden // n_head
    x = emb[ids]
    n = len(ids)

    def rms(v, g):
        return v / np.sqrt((v * v).mean(-1, keepdims=True) + eps) * g

    inv = base ** (-np.arange(0, hd, 2) / hd)
    ang = np.arange(n)[:, None] * inv[None, :]
    cos = np.concatenate([np.cos(ang)] * 2, -1)
    sin = np.concatenate([np.sin(ang)] * 2, -1)

    def rope(t):  # t: [heads, n, hd], Hugging Face's rotate_half
        half = t[..., : hd // 2], t[..., hd // 2:]
        rotated = np.concatenate([-half[1], half[0]], -1)
        return t * cos + rotated * sin

    mask = np.triu(np.full((n, n), -np.inf), 1)
    for i in range(n_layer):
        p = f"blk.{i}."
        h = rms(x, w[p + "attn_norm.weight"])
        wq, wk = w[p + "attn_q.weight"], w[p + "attn_k.weight"]
        if arch == "llama":
            wq, wk = unpermute(wq, n_head), unpermute(wk, n_kv)
        q = h @ wq.T
        k = h @ wk.T
        v = h @ w[p + "attn_v.weight"].T
        for name, t in (("q", q), ("k", k), ("v", v)):
            bias = w.get(p + f"attn_{name}.bias")
            if bias is not None:
                t += bias
        q = rope(q.reshape(n, n_head, hd).transpose(1, 0, 2))
        k = rope(k.reshape(n, n_kv, hd).transpose(1, 0, 2))
        v = v.reshape(n, n_kv, hd).transpose(1, 0, 2)
        group = n_head // n_kv
        k, v = np.repeat(k, group, 0), np.repeat(v, group, 0)
        s = q @ k.transpose(0, 2, 1) / np.sqrt(hd) + mask
        s = np.exp(s - s.max(-1, keepdims=True))
        s /= s.sum(-1, keepdims=True)
        ctx = (s @ v).transpose(1, 0, 2).reshape(n, hidden)
        x = x + ctx @ w[p + "attn_output.weight"].T
        h = rms(x, w[p + "ffn_norm.weight"])
        g = h @ w[p + "ffn_gate.weight"].T
        u = h @ w[p + "ffn_up.weight"].T
        x = x + (g / (1 + np.exp(-g)) * u) @ w[p + "ffn_down.weight"].T
    x = rms(x, w["output_norm.weight"])
    out = w.get("output.weight", emb)
    return x @ out.T


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True, help="NAME=PATH of a GGUF llama model")
    args = ap.parse_args()
    name, path = args.model.split("=", 1)
    meta, w = load(path)
    prompts = []
    for ids in PROMPTS:
        logits = forward(meta, w, ids)
        positions = []
        for row in logits:
            m = row.max()
            lse = float(m + np.log(np.exp(row - m).sum()))
            top = np.argsort(-row)[:5]
            positions.append({
                "logsumexp": lse,
                "top": [[int(t), float(row[t])] for t in top],
                "fixed": [float(row[t]) for t in FIXED_IDS],
            })
        prompts.append({"ids": ids, "positions": positions})
    out = os.path.join(OUT, f"{name}-logits.json")
    with open(out, "w") as f:
        json.dump({"fixed_ids": FIXED_IDS, "prompts": prompts}, f, indent=1)
        f.write("\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
