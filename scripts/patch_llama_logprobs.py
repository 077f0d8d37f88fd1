"""Fix llama-cpp-python 0.3.36's echoed prompt log-probabilities (run by
scripts/llm-server.sh with the venv's python, once, after installing).

With `echo: true` the completion's `token_logprobs[i]` is read from row i of
the logits, the distribution *after* token i, when the prompt has no BOS
token (SmolLM2's tokenizer adds none): every prompt token is scored by the
wrong distribution (abetlen/llama-cpp-python#1983). Row i - 1 predicts token
i, so the patch puts an empty row in front in exactly that case. With a BOS
token the rows already line up (the BOS row is skipped) and nothing changes.
Fails loudly if the code to patch is not there (another version).
"""

import pathlib
import sys

import llama_cpp

MARK = "# rlrag: echoed log-probs, row i - 1 predicts token i"
OLD = "            all_logprobs = Llama.logits_to_logprobs(self._scores)[token_offset:]\n"
NEW = OLD + (
    f"            {MARK}\n"
    "            if echo and prompt_tokens[:1] != [self.token_bos()]:\n"
    "                all_logprobs = np.concatenate(\n"
    "                    [np.zeros_like(all_logprobs[:1]), all_logprobs]\n"
    "                )\n"
)

path = pathlib.Path(llama_cpp.__file__).with_name("llama.py")
src = path.read_text()
if MARK in src:
    print(f"already patched: {path}")
    sys.exit(0)
if llama_cpp.__version__ != "0.3.36" or src.count(OLD) != 1:
    sys.exit(f"cannot patch {path}: llama-cpp-python {llama_cpp.__version__}, expected 0.3.36")
path.write_text(src.replace(OLD, NEW))
print(f"patched: {path}")
