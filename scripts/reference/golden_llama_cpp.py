"""llama.cpp's own outputs on a quantised GGUF model, for the burn
decoder's top-1 agreement (it runs the dequantised weights in f32;
llama.cpp multiplies in the quantised formats, so their logits differ a
little): for each prompt, llama.cpp's most likely next token at every
position (logits_all), and its greedy continuation (temperature 0, up to
24 tokens, stopped at the end-of-turn token), through the model's chat
template (ChatML, the default system message added as the template does).

Prompts: the bundled sets' first HotpotQA-100 and SciFact questions with
and without a passage (the answer prompt of the generator adapter), and a
few general questions.

Writes tests/golden/gguf/NAME-llama-cpp.json:
  {"model_sha256", "llama_cpp_python", "prompts": [{"text", "ids", "top1", "greedy_ids", "greedy_text"}]}

Usage: ~/.cache/rlrag/llm-venv/bin/python scripts/reference/golden_llama_cpp.py \\
         --model smollm2=$HOME/.cache/rlrag/models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
"""
import argparse
import hashlib
import json
import os

import llama_cpp
import numpy as np
from llama_cpp import Llama

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"


def chatml(user, system=SYSTEM):
    return (f"<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n{user}<|im_end|>\n"
            "<|im_start|>assistant\n")


def prompts():
    out = [chatml(q) for q in [
        "What is the capital of France?",
        "Name three primary colours.",
        "Write one sentence about the sea.",
        "How many legs does a spider have?",
    ]]
    hotpot = json.load(open(os.path.join(ROOT, "data/hotpotqa100/hotpotqa100.json")))
    for q in hotpot[:8]:
        title, sentences = q["context"][0]
        passage = " ".join(sentences)[:700]
        out.append(chatml(f"Answer the question. Reply with the answer only, a few words.\n\n"
                          f"Question: {q['question']}\n\nAnswer:"))
        out.append(chatml(f"Answer the question using the passage. Reply with the answer only, a few words.\n\n"
                          f"Passage: {passage}\n\nQuestion: {q['question']}\n\nAnswer:"))
    with open(os.path.join(ROOT, "data/scifact/queries.jsonl")) as f:
        for line in list(f)[:4]:
            out.append(chatml(f"Is this claim true? {json.loads(line)['text']}"))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True, help="NAME=PATH of a GGUF model")
    args = ap.parse_args()
    name, path = args.model.split("=", 1)
    sha = hashlib.sha256(open(path, "rb").read()).hexdigest()
    llm = Llama(model_path=path, n_ctx=2048, logits_all=True, n_threads=2, seed=0, verbose=False)
    end = llm.token_eos()
    rows = []
    for text in prompts():
        ids = llm.tokenize(text.encode(), add_bos=False, special=True)
        llm.reset()
        llm.eval(ids)
        scores = np.asarray(llm.scores[: len(ids)])
        top1 = [int(i) for i in scores.argmax(axis=1)]
        greedy = []
        for _ in range(24):
            nxt = int(np.asarray(llm.scores[llm.n_tokens - 1]).argmax())
            greedy.append(nxt)
            if nxt == end:
                break
            llm.eval([nxt])
        text_out = llm.detokenize([t for t in greedy if t != end]).decode("utf-8", "replace")
        rows.append({"text": text, "ids": ids, "top1": top1, "greedy_ids": greedy, "greedy_text": text_out})
        print(f"{len(ids):4d} tokens -> {text_out!r}")
    out = os.path.join(ROOT, "tests/golden/gguf", f"{name}-llama-cpp.json")
    with open(out, "w") as f:
        json.dump({"model_sha256": sha, "llama_cpp_python": llama_cpp.__version__, "prompts": rows}, f)
        f.write("\n")
    print("wrote", out)


if __name__ == "__main__":
    main()
