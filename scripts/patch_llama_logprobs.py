"""Fix llama-cpp-python 0.3.36's echoed prompt log-probabilities (run by
scripts/llm-server.sh with the venv's python before every start; a patch
already in place is left as it is).

1. Alignment. With `echo: true` the completion's `token_logprobs[i]` is read
   from row i of the logits, the distribution *after* token i, when the
   prompt has no BOS token (SmolLM2's tokenizer adds none): every prompt
   token is scored by the wrong distribution
   (abetlen/llama-cpp-python#1983). Row i - 1 predicts token i, so an empty
   row goes in front in exactly that case. With a BOS token the rows already
   line up (the BOS row is skipped) and nothing changes.
2. Speed. For each echoed token the whole vocabulary (49,152 entries for
   SmolLM2) was sorted in Python to pick the `logprobs` most probable ones:
   about 7 s for a 240-token prompt, most of a request. `np.argpartition`
   picks the same entries (ties aside) in order.

Fails loudly if the code to patch is not there (another version).
"""

import pathlib
import sys

import llama_cpp

PATCHES = [
    (
        "# rlrag: echoed log-probs, row i - 1 predicts token i",
        "            all_logprobs = Llama.logits_to_logprobs(self._scores)[token_offset:]\n",
        lambda mark, old: old
        + f"            {mark}\n"
        "            if echo and prompt_tokens[:1] != [self.token_bos()]:\n"
        "                all_logprobs = np.concatenate(\n"
        "                    [np.zeros_like(all_logprobs[:1]), all_logprobs]\n"
        "                )\n",
    ),
    (
        "# rlrag: the top log-probs without sorting the vocabulary",
        "                sorted_logprobs = list(\n"
        "                    sorted(\n"
        "                        zip(logprobs_token, range(len(logprobs_token))), reverse=True\n"
        "                    )\n"
        "                )\n",
        lambda mark, old: f"                {mark}\n"
        "                _k = max(0, min(int(logprobs), len(logprobs_token) - 1))\n"
        "                _top = np.argpartition(-logprobs_token, _k)[:_k]\n"
        "                _top = _top[np.argsort(-logprobs_token[_top], kind='stable')]\n"
        "                sorted_logprobs = [(logprobs_token[i], int(i)) for i in _top]\n",
    ),
]

if llama_cpp.__version__ != "0.3.36":
    sys.exit(f"cannot patch llama-cpp-python {llama_cpp.__version__}: expected 0.3.36")
path = pathlib.Path(llama_cpp.__file__).with_name("llama.py")
src = path.read_text()
for mark, old, new in PATCHES:
    if mark in src:
        print(f"already patched ({mark[9:]}): {path}")
        continue
    if src.count(old) != 1:
        sys.exit(f"cannot patch {path}: the code for '{mark[9:]}' is not there")
    src = src.replace(old, new(mark, old))
    print(f"patched ({mark[9:]}): {path}")
path.write_text(src)
