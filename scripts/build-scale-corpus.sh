#!/usr/bin/env bash
# Builds the scale corpus (issue 24) as a BEIR directory outside git:
#   target/scale/corpus.jsonl    SciFact's 5,183 abstracts (judged) among
#                                distractor passages from registry packages:
#                                WordNet 3.0 glosses (Debian wordnet-base),
#                                GCIDE dictionary senses (Debian dict-gcide),
#                                the Linux kernel's documentation in paragraphs
#                                (Debian linux-doc-6.1), plus the 2Wiki-500
#                                and HotpotQA-100 passages
#   target/scale/queries.jsonl   SciFact's queries
#   target/scale/qrels/test.tsv  SciFact's test judgements (ids unchanged)
# Pinned Debian packages, sha256-checked. Prints the passage count.
# Usage: scripts/build-scale-corpus.sh [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-target/scale}"
cache="${RLRAG_CACHE:-$HOME/.cache/rlrag}/debs"
mkdir -p "$cache" "$out/qrels"
# package=version  file  sha256
specs=(
  "wordnet-base=1:3.0-37 wordnet-base_1%3a3.0-37_all.deb 61060d960f9ada8fa120872312eccd3ecebfbab8c4579e4f5a74e1cf67620752"
  "dict-gcide=0.48.5+nmu2 dict-gcide_0.48.5+nmu2_all.deb 7b0af5cfde3cbdef5e9d6e78f92ec335ced7c2790f37a40f49bebc6f7347ac0f"
  "linux-doc-6.1=6.1.192-3 linux-doc-6.1_6.1.192-3_all.deb f18dfe28dcab7bdbf9185be16b9521f5841277a6a96c374a6683a648d5d5fa4f"
)
tree="$cache/tree"
for spec in "${specs[@]}"; do
  read -r pkg deb sha <<<"$spec"
  if [ ! -f "$cache/$deb" ] || ! echo "$sha  $cache/$deb" | sha256sum -c --status; then
    (cd "$cache" && apt-get download "$pkg" >/dev/null 2>&1) || {
      echo "build-scale-corpus: cannot download $pkg (Debian's archive)" >&2
      exit 1
    }
  fi
  if ! echo "$sha  $cache/$deb" | sha256sum -c --status; then
    echo "build-scale-corpus: sha256 mismatch for $deb (expected $sha)" >&2
    exit 1
  fi
  dpkg-deb -x "$cache/$deb" "$tree"
done
cp data/scifact/queries.jsonl "$out/queries.jsonl"
cp data/scifact/qrels/test.tsv "$out/qrels/test.tsv"
python3 - "$tree" "$out/corpus.jsonl" <<'PY'
import glob, gzip, json, os, re, sys
tree, out = sys.argv[1], sys.argv[2]
space = re.compile(r"\s+")
n = 0
seen = set()
with open(out, "w") as f:
    def emit(pid, title, text):
        global n
        text = space.sub(" ", text).strip()
        if len(text.split()) < 4 or pid in seen:
            return
        seen.add(pid)
        f.write(json.dumps({"_id": pid, "title": title, "text": text}) + "\n")
        n += 1
    # The judged documents first, with their own ids.
    for line in open("data/scifact/corpus.jsonl"):
        d = json.loads(line)
        emit(d["_id"], d.get("title", ""), d["text"])
    for line in open("data/2wiki500/corpus.jsonl"):
        d = json.loads(line)
        emit(f"2wiki-{d['id']}", d.get("title", ""), d["text"])
    for title, sentences in json.load(open("data/hotpotqa100/corpus.json")).items():
        emit(f"hotpot-{title}", title, "".join(sentences))
    # WordNet: one passage per synset gloss (its words as the title).
    for pos in ["noun", "verb", "adj", "adv"]:
        for line in open(f"{tree}/usr/share/wordnet/data.{pos}", encoding="latin-1"):
            if line.startswith("  ") or "|" not in line:
                continue
            head, gloss = line.split("|", 1)
            fields = head.split()
            count = int(fields[3], 16)
            words = [fields[4 + 2 * i].replace("_", " ") for i in range(count)]
            emit(f"wn-{pos}-{fields[0]}", ", ".join(words), gloss)
    # GCIDE: each entry cut into its numbered senses and paragraphs.
    text = gzip.open(f"{tree}/usr/share/dictd/gcide.dict.dz").read().decode("utf-8", "replace")
    index = [l.split("\t") for l in open(f"{tree}/usr/share/dictd/gcide.index", encoding="utf-8")]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    def b64(s):
        v = 0
        for c in s.strip():
            v = v * 64 + alphabet.index(c)
        return v
    raw = text.encode("utf-8", "replace")
    for word, off, length in index:
        if word.startswith("00-database"):
            continue
        entry = raw[b64(off):b64(off) + b64(length)].decode("utf-8", "replace")
        parts = re.split(r"\n\s*\n|\n\s+(?=\d+\.\s)", entry)
        for j, part in enumerate(parts[1:] if len(parts) > 1 else parts):
            emit(f"gcide-{b64(off)}-{j}", word, part)
    # The kernel's documentation (reStructuredText sources): paragraphs of
    # at least eight words, titled by their file.
    root = f"{tree}/usr/share/doc/linux-doc-6.1/html/_sources"
    for path in sorted(glob.glob(f"{root}/**/*.txt", recursive=True)):
        name = os.path.relpath(path, root).removesuffix(".rst.txt").removesuffix(".txt")
        body = open(path, encoding="utf-8", errors="replace").read()
        for j, para in enumerate(re.split(r"\n\s*\n", body)):
            if len(para.split()) >= 8:
                emit(f"linux-{name}-{j}", name, para)
print(n)
PY
