#!/usr/bin/env python3
"""How far can a cheap local-first gate go? Reads `trainer eval-router
--traces` output, takes every question's evidence features after the
single-shot local round (the `local` policy) and whether the `local` and
`network` policies contained an answer, and prints, for thresholds on each
evidence feature and on the fitted confidence, the share of questions sent
to the network (those below the threshold) against the containment of
"local if above, else network". The oracle row sends exactly the questions
that only the network answers.

usage: scripts/router-frontier.py TRACES.jsonl [--max-share 0.5]
"""
import argparse
import json
import sys

FEATURES = ["best_single", "union", "agree", "lists", "margin", "entity_titles", "chained"]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("traces")
    ap.add_argument("--max-share", type=float, default=0.5)
    args = ap.parse_args()
    by: dict[str, dict[str, dict]] = {}
    with open(args.traces, encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            by.setdefault(r["policy"], {})[r["question_id"]] = r
    if "local" not in by or "network" not in by:
        print("the traces need the local and network policies", file=sys.stderr)
        return 1
    rows = []
    for qid, lr in by["local"].items():
        nr = by["network"].get(qid)
        lc, nc = lr["score"]["containment"], nr and nr["score"]["containment"]
        if lc is None or nc is None or not lr["trace"]["decisions"]:
            continue
        d = lr["trace"]["decisions"][0]
        rows.append((d["evidence_features"] + [d["confidence"]], bool(lc), bool(nc)))
    n = len(rows)
    local = sum(r[1] for r in rows) / n
    network = sum(r[2] for r in rows) / n
    only_net = sum(1 for r in rows if r[2] and not r[1]) / n
    print(f"{n} questions: local {local:.3f}, network {network:.3f}, either {sum(r[1] or r[2] for r in rows) / n:.3f}")
    print(f"oracle gate: {only_net:.2f} network calls/q for containment {local + only_net:.3f}")
    print(f"best gate per feature with at most {args.max_share:.2f} network calls/q:")
    for i, name in enumerate(FEATURES + ["confidence"]):
        best = None
        for t in sorted({r[0][i] for r in rows} | {float("inf")}):
            share = sum(1 for r in rows if r[0][i] < t) / n
            if share > args.max_share:
                continue
            contained = sum((r[2] if r[0][i] < t else r[1]) for r in rows) / n
            if best is None or contained > best[0]:
                best = (contained, share, t)
        if best:
            print(f"  {name:>14}: containment {best[0]:.3f} at {best[1]:.2f} calls/q (threshold {best[2]:.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
