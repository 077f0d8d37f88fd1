#!/usr/bin/env bash
# Builds the scale corpus (issue 24) as a BEIR directory outside git:
#   target/scale/corpus.jsonl    SciFact's 5,183 abstracts (judged) among
#                                distractor passages from registry packages:
#                                WordNet 3.0 glosses (Debian wordnet-base),
#                                GCIDE dictionary senses (Debian dict-gcide),
#                                the Linux kernel's documentation in paragraphs
#                                (Debian linux-doc-6.1), plus the 2Wiki-500
#                                and HotpotQA-100 passages; then, past those
#                                477,317 passages, the paragraphs of other
#                                Debian documentation (see DOCS below),
#                                deduplicated by text, with FOLDOC, the
#                                Jargon File, fortunes and perl's pod pages
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
  "dict-foldoc=20230119-1 dict-foldoc_20230119-1_all.deb 745cbedb55c2da609cc88ee0284e9d11a67a11ae3709daf7bad0e895ac3294c3"
  "dict-jargon=4.4.7-3.1 dict-jargon_4.4.7-3.1_all.deb 405f8168d7994ed2cb71407bb95493daec2e9aa66fc0461dafa74a9d6728a8c1"
  "fortunes=1:1.99.1-7.3 fortunes_1%3a1.99.1-7.3_all.deb 41d0551dc0ff52f875a2ecef7c39da2f672ab468c37e170119f7e0245a9d63c5"
  "perl-doc=5.36.0-7+deb12u4 perl-doc_5.36.0-7+deb12u4_all.deb f4269cff4576d6f02a6756df842988e58451c7e945b08517dd235531b24e48f8"
  "openjdk-17-doc=17.0.21.1+2-1~deb12u1 openjdk-17-doc_17.0.21.1+2-1~deb12u1_all.deb 3e04db24dbcb31d598774973998f1d8212e3424e288befbfef235077325f841d"
  "python3.11-doc=3.11.2-6+deb12u9 python3.11-doc_3.11.2-6+deb12u9_all.deb 5b3594189d6ef9a6963ce0347fd307a1cc67620ad697e144db366070e2e146be"
  "postgresql-doc-15=15.20-0+deb12u1 postgresql-doc-15_15.20-0+deb12u1_all.deb 4c44bf2c599f208b3f46454a6cf7a72e25ec46ff74d37b59dd31ad76b00eebb7"
  "python-django-doc=3:3.2.25-0+deb12u7 python-django-doc_3%3a3.2.25-0+deb12u7_all.deb 87307f067916df72e17180d35b7cde5c7ea6080336cda518efd7f6e66988a7ca"
  "nodejs-doc=18.20.4+dfsg-1~deb12u3 nodejs-doc_18.20.4+dfsg-1~deb12u3_all.deb d2fbd4f3aecccea9d901a03842ef8380379e0d33010a48af5e797ed68ae874ce"
  "erlang-doc=1:25.2.3+dfsg-1+deb12u4 erlang-doc_1%3a25.2.3+dfsg-1+deb12u4_all.deb 7d172cecfdd9c2930b27c776ad226ffcc84670375cf830c79ee41c6944e8a1c8"
  "git-doc=1:2.39.5-0+deb12u3 git-doc_1%3a2.39.5-0+deb12u3_all.deb 3c89668a11053a6bafade3de1f611f4613db31e082af63f43d8c5b69ad8795ec"
  "rust-doc=1.63.0+dfsg1-2 rust-doc_1.63.0+dfsg1-2_all.deb 96ef96fe6df87d939ca713bd7df3d15c2b778ccb892eca025c4ee504146f697b"
  "libreoffice-help-en-us=4:7.4.7-1+deb12u14 libreoffice-help-en-us_4%3a7.4.7-1+deb12u14_all.deb 8faa840285734d6cfe1ed25537b48f07e74bd6412e3917bf8e5f8a653f7b3712"
  "python-scipy-doc=1.10.1-2 python-scipy-doc_1.10.1-2_all.deb a237fdcef1675622f1a5d8a291c64feba140615130ee625554f94772d4ea3ad7"
  "python-pandas-doc=1.5.3+dfsg-2 python-pandas-doc_1.5.3+dfsg-2_all.deb 4998405ff6b12432f46594963e95554ade1104705795428396345fca58d853f8"
  "python-sklearn-doc=1.2.1+dfsg-1 python-sklearn-doc_1.2.1+dfsg-1_all.deb 4e244556326064e87e7563e3e544c2288d44b5719db2d7b3a85c9a84ae93488d"
  "python-sympy-doc=1.11.1-1 python-sympy-doc_1.11.1-1_all.deb 2a1d50bd49738f0280308fc8d86d5fa5739dbc6391e1c754f4549bc3635e6a31"
  "libboost1.74-doc=1.74.0+ds1-21 libboost1.74-doc_1.74.0+ds1-21_all.deb 10a7c2aa42068bcb71093fc375bf3a9ef2235baa91cc4960aa0c02df3c733d4a"
  "sagemath-doc=9.5-6 sagemath-doc_9.5-6_all.deb dae42f803878fe655dd4627b3ddaa74de82a737a6076527d3441e80018ab2b12"
  "octave-doc=7.3.0-2 octave-doc_7.3.0-2_all.deb b27897cc7e3d688daa5cb8f8d1ea47077f3fbd205ce32e22522200ff0c1eadd5"
  "maxima-doc=5.46.0-11 maxima-doc_5.46.0-11_all.deb 01a726b693a7e465a62040ac5ade4762194d7553524231d77cd1fcd4a69a75b9"
  "gap-doc=4.12.1-2 gap-doc_4.12.1-2_all.deb ceaaee8ae7870d71353d7846ac39575a9a32f87b36928b8037139a54938bd7ab"
  "debian-reference-en=2.100 debian-reference-en_2.100_all.deb 9f31d3a17df505de09689ca255512ea58c1fc47c59bb1b0c7bf1c23362e9743f"
  "qtbase5-doc-html=5.15.8+dfsg-11+deb12u3 qtbase5-doc-html_5.15.8+dfsg-11+deb12u3_all.deb e052497a7db970f002807e3543043c11e46135641b8284b0a419086ba64f5f47"
  "cmake-doc=3.25.1-1 cmake-doc_3.25.1-1_all.deb 6e805a758ffed87cc7ea234cf0a7a1bb8ae78b93d8b5783e7fb989a6320f8133"
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
import glob, gzip, html.parser, json, multiprocessing, os, re, sys
tree, out = sys.argv[1], sys.argv[2]
space = re.compile(r"\s+")

class Paragraphs(html.parser.HTMLParser):
    """Each paragraph-like element's own text (nested ones apart)."""
    BLOCKS = {"p", "dd", "li", "td"}
    SKIP = {"script", "style", "pre"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.skip = 0
        self.open, self.divs = [], []  # (tag, text) being read; per <div>: is it a block
        self.paras, self.title, self.in_title = [], "", False

    def handle_starttag(self, tag, attrs):
        if tag in self.SKIP:
            self.skip += 1
        elif tag == "title":
            self.in_title = True
        else:
            block = tag in self.BLOCKS or (tag == "div" and "block" in (dict(attrs).get("class") or "").split())
            if tag == "div":
                self.divs.append(block)
            if block:
                self.open.append((tag, []))

    def handle_endtag(self, tag):
        if tag in self.SKIP:
            self.skip = max(0, self.skip - 1)
        elif tag == "title":
            self.in_title = False
        elif tag in self.BLOCKS or (tag == "div" and self.divs and self.divs.pop()):
            # Closes what it holds that was left open (<p> and <li> often are).
            if any(t == tag for t, _ in self.open):
                while True:
                    t, text = self.open.pop()
                    self.paras.append("".join(text))
                    if t == tag:
                        break

    def handle_data(self, data):
        if self.in_title:
            self.title += data
        elif self.open and not self.skip:
            self.open[-1][1].append(data)

def html_paragraphs(path):
    parser = Paragraphs()
    parser.feed(open(path, encoding="utf-8", errors="replace").read())
    parser.close()
    parser.paras.extend("".join(text) for _, text in reversed(parser.open))
    return space.sub(" ", parser.title).strip(), parser.paras

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
    # Everything above is the 477,317-passage corpus of the first runs, in
    # the same order; what follows only appends, deduplicated by text.
    texts = set()
    def emit_new(pid, title, text):
        key = space.sub(" ", text).strip().lower()
        if len(key.split()) < 8 or key in texts:
            return
        texts.add(key)
        emit(pid, title, text)
    def dictd(name):
        raw = gzip.open(f"{tree}/usr/share/dictd/{name}.dict.dz").read()
        for line in open(f"{tree}/usr/share/dictd/{name}.index", encoding="utf-8", errors="replace"):
            word, off, length = line.rstrip("\n").split("\t")[:3]
            if word.startswith("00-database") or word.startswith("00database"):
                continue
            entry = raw[b64(off):b64(off) + b64(length)].decode("utf-8", "replace")
            for j, part in enumerate(re.split(r"\n\s*\n", entry)[1:]):
                emit_new(f"{name}-{b64(off)}-{j}", word, part)
    dictd("foldoc")
    dictd("jargon")
    for path in sorted(glob.glob(f"{tree}/usr/share/games/fortunes/*")):
        name = os.path.basename(path)
        if "." in name or os.path.isdir(path):
            continue
        body = open(path, encoding="utf-8", errors="replace").read()
        for j, part in enumerate(body.split("\n%\n")):
            emit_new(f"fortune-{name}-{j}", f"fortune: {name}", part)
    # perl's pod pages: prose paragraphs (no commands, no verbatim blocks).
    for path in sorted(glob.glob(f"{tree}/usr/share/perl/*/pod/*.pod")):
        name = os.path.basename(path).removesuffix(".pod")
        body = open(path, encoding="utf-8", errors="replace").read()
        for j, para in enumerate(re.split(r"\n\s*\n", body)):
            if not para.startswith(("=", " ", "\t")):
                emit_new(f"perl-{name}-{j}", name, re.sub(r"[A-Z]<+([^<>]*)>+", r"\1", para))
    # DOCS: HTML manuals, one passage per paragraph, list item, definition
    # or table cell of at least eight words (code and preformatted text
    # left out), titled by the page's <title>.
    docs = [
        ("jdk", "usr/share/doc/openjdk-17-jre-headless/api"),
        ("python", "usr/share/doc/python3.11/html"),
        ("postgresql", "usr/share/doc/postgresql-doc-15/html"),
        ("django", "usr/share/doc/python-django-doc/html"),
        ("nodejs", "usr/share/doc/nodejs/api"),
        ("erlang", "usr/share/doc/erlang-doc"),
        ("git", "usr/share/doc/git-doc"),
        ("rust", "usr/share/doc/rust-doc/html"),
        ("libreoffice", "usr/share/libreoffice/help/en-US"),
        ("scipy", "usr/share/doc/python-scipy-doc/html"),
        ("pandas", "usr/share/doc/python-pandas-doc/html"),
        ("sklearn", "usr/share/doc/python-sklearn-doc/html"),
        ("sympy", "usr/share/doc/python-sympy-doc/html"),
        ("boost", "usr/share/doc/libboost1.74-doc"),
        ("sage", "usr/share/doc/sagemath/html/en"),
        ("octave", "usr/share/doc/octave"),
        ("maxima", "usr/share/doc/maxima-doc/html"),
        ("gap", "usr/share/gap"),
        ("debref", "usr/share/debian-reference"),
        ("qt", "usr/share/qt5/doc"),
        ("cmake", "usr/share/doc/cmake-data/html"),
    ]
    files = []
    for prefix, root in docs:
        if not os.path.isdir(f"{tree}/{root}"):
            sys.exit(f"build-scale-corpus: {root} is missing from the unpacked packages")
        for path in sorted(glob.glob(f"{tree}/{root}/**/*.html", recursive=True)):
            if os.path.isfile(path) and not os.path.islink(path) and (prefix != "debref" or path.endswith(".en.html")):
                files.append((prefix, root, path))
    with multiprocessing.Pool(2) as pool:
        for (prefix, root, path), (title, paras) in zip(files, pool.imap(html_paragraphs, [f[2] for f in files], chunksize=32)):
            name = os.path.relpath(path, f"{tree}/{root}").removesuffix(".html")
            for j, para in enumerate(paras):
                emit_new(f"{prefix}-{name}-{j}", title or name, para)
print(n)
PY
