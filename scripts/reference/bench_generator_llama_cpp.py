"""llama.cpp's side of scripts/bench-generator.sh: the very prompts
`trainer bench-generator --out` wrote (token ids), each read in one
forward pass (prefill) and then decoded greedily for as many new tokens as
rlrag generated, timed the same way (prompt tokens/s of prefill, new tokens/s
of decoding, after the warm-up prompt rlrag also left out). Prints one JSON
object, with how many of rlrag's greedy tokens llama.cpp also chose.

Usage: python bench_generator_llama_cpp.py --model FILE.gguf --rows rows.json [--threads 2]
"""
import argparse
import json
import time

import llama_cpp
import numpy as np
from llama_cpp import Llama


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--rows", required=True)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    rows = json.load(open(args.rows))
    llm = Llama(model_path=args.model, n_ctx=2048, n_threads=args.threads, n_threads_batch=args.threads,
                n_batch=2048, seed=0, verbose=False)

    n_vocab = llm.n_vocab()

    def last_logits():
        # Without logits_all the Python wrapper keeps no scores: read the
        # context's logits of the batch's last token directly.
        ptr = llama_cpp.llama_get_logits_ith(llm._ctx.ctx, -1)
        return np.ctypeslib.as_array(ptr, shape=(n_vocab,))

    def run(ids, steps):
        llm.reset()
        t0 = time.perf_counter()
        llm.eval(ids)
        t1 = time.perf_counter()
        out = []
        for i in range(steps):
            nxt = int(last_logits().argmax())
            out.append(nxt)
            if i + 1 < steps:
                llm.eval([nxt])
        t2 = time.perf_counter()
        return t1 - t0, t2 - t1, out

    run(rows[0]["ids"], len(rows[0]["generated"]))  # warm-up
    prefill = decode = 0.0
    prompt_tokens = generated_tokens = same = 0
    for row in rows:
        steps = len(row["generated"])
        p, d, out = run(row["ids"], steps)
        prefill += p
        decode += d
        prompt_tokens += len(row["ids"])
        generated_tokens += steps - 1
        same += sum(1 for a, b in zip(out, row["generated"]) if a == b)
    print(json.dumps({
        "prompts": len(rows),
        "prompt_tokens": prompt_tokens,
        "generated_tokens": generated_tokens,
        "prefill_tokens_per_s": prompt_tokens / prefill,
        "decode_tokens_per_s": generated_tokens / decode,
        "threads": args.threads,
        "same_greedy_tokens": same,
        "greedy_tokens": sum(len(r["generated"]) for r in rows),
    }))


if __name__ == "__main__":
    main()
