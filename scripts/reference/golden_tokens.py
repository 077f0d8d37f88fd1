"""Golden token ids for rlrag's GGUF tokenizer: llama.cpp's own tokenizer
(llama-cpp-python, the venv scripts/llm-server.sh installs) on the model's
vocabulary only, over a few hundred texts: the bundled sets' questions
(SciFact claims, HotpotQA-100 questions), their passages' first sentences,
and edge cases (digits, whitespace runs, accents, CJK, emoji, code, the
chat template's special tokens).

Writes tests/golden/gguf/NAME-tokens.json: [{"text", "ids" (no BOS, special
tokens parsed), "plain" (special tokens as text)}].

Usage: ~/.cache/rlrag/llm-venv/bin/python scripts/reference/golden_tokens.py \\
         --model smollm2=$HOME/.cache/rlrag/models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
"""
import argparse
import json
import os

from llama_cpp import Llama

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
EDGES = [
    "", " ", "  ", "\n", "\n\n\t x", "Hello world", " Hello  world ", "hello\nworld\n",
    "1234567890", "3.14159 and 2,718", "In 1889, 300 m", "ÀÉÎÕÜ àéîõü ñ ß", "naïve café résumé",
    "日本語のテキスト", "中文 测试", "😀 🚀 👍🏽", "fn main() { println!(\"{}\", 1 + 2); }",
    "def f(x):\n    return x**2  # square", "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n",
    "don't won't it's we're they've I'm you'll he'd", "   leading spaces", "trailing spaces   ",
    "a\u00a0b", "tab\tseparated\tvalues", "URL https://example.com/a?b=c&d=e", "e-mail: x@y.org",
    "MiXeD CaSe WoRdS", "!!!??...", "--- *** ___", "ＡＢＣ１２３",
]


def texts():
    out = list(EDGES)
    with open(os.path.join(ROOT, "data/scifact/queries.jsonl")) as f:
        for line in list(f)[:150]:
            out.append(json.loads(line)["text"])
    for q in json.load(open(os.path.join(ROOT, "data/hotpotqa100/hotpotqa100.json")))[:100]:
        out.append(q["question"])
        title, sentences = q["context"][0]
        out.append(sentences[0])
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True, help="NAME=PATH of a GGUF model")
    args = ap.parse_args()
    name, path = args.model.split("=", 1)
    llm = Llama(model_path=path, vocab_only=True, verbose=False)
    rows = []
    for text in texts():
        data = text.encode("utf-8")
        rows.append({
            "text": text,
            "ids": llm.tokenize(data, add_bos=False, special=True),
            "plain": llm.tokenize(data, add_bos=False, special=False),
        })
    out = os.path.join(ROOT, "tests", "golden", "gguf", f"{name}-tokens.json")
    with open(out, "w") as f:
        json.dump(rows, f, ensure_ascii=False, indent=0)
        f.write("\n")
    print(f"wrote {out}: {len(rows)} texts")


if __name__ == "__main__":
    main()
