#!/usr/bin/env python3
"""K-fold cross-validation of the learned router: every question is scored
by a policy that never trained on it.

For each fold I of K it runs `train-router --fold I/K` (training on the
other folds) and `eval-router --fold I/K --weights <that policy>`, then
pools the folds' reports, weighting each by its questions, into one table
and `<out>/cv.json` (the eval-router JSON shape, latency omitted: fold
percentiles do not pool).

    scripts/router-cv.py --data data/hotpotqa100 --out target/router/cv \\
        --folds 5 --jobs 2 --lambda 0.265 --round-cost 0.3 \\
        --train "--epochs 300 --rollouts 8 --batch-size 8"

Every option it does not know goes to both commands (the reward, the local
split, the network); `--train` holds the options of train-router alone.
Needs a release build of the trainer (`cargo build --release -p trainer`).

`--bars 0,0.6,0.8` also scores every fold's policy at each of those network
bars (`eval-router --network-bar`) and prints the held-out frontier,
containment against network calls; `--reuse` keeps fold policies already
in `--out` (trained by an earlier run with the same options) instead of
training them again.
"""

import argparse
import json
import shlex
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

METRICS = ["containment@10", "all_gold@10", "network_share", "rounds", "suppressed_per_question", "reward"]


def run(cmd, log):
    with open(log, "w") as f:
        done = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT)
    if done.returncode != 0:
        tail = Path(log).read_text().splitlines()[-5:]
        raise SystemExit(f"{' '.join(map(shlex.quote, cmd))} failed ({log}):\n" + "\n".join(tail))


def one_fold(trainer, fold, folds, out, shared, train_args, bars, reuse):
    """The fold's report, and its report at each of `bars`."""
    tag = f"{fold}of{folds}"
    weights = out / f"fold-{tag}"
    report = out / f"fold-{tag}.json"
    spec = f"{fold}/{folds}"
    if not (reuse and (weights / "config.json").is_file()):
        run([trainer, "train-router", *shared, "--fold", spec, "--out", str(weights), *train_args],
            out / f"fold-{tag}.train.log")
    evaluate = [trainer, "eval-router", *shared, "--fold", spec, "--weights", str(weights)]
    run([*evaluate, "--json", str(report)], out / f"fold-{tag}.eval.log")
    at_bars = []
    for bar in bars:
        r = out / f"fold-{tag}.bar-{bar}.json"
        run([*evaluate, "--network-bar", str(bar), "--json", str(r)], out / f"fold-{tag}.bar-{bar}.eval.log")
        at_bars.append(json.loads(r.read_text()))
    return json.loads(report.read_text()), at_bars


def parse_bars(s):
    try:
        bars = [float(b) for b in s.split(",") if b.strip()]
    except ValueError:
        raise SystemExit(f"--bars {s!r}: numbers in [0, 1], comma-separated")
    if any(not 0.0 <= b <= 1.0 for b in bars):
        raise SystemExit(f"--bars {s!r}: numbers in [0, 1], comma-separated")
    return bars


def pool(reports):
    total = sum(r["questions"] for r in reports)
    pooled = {}
    for name in reports[0]["policies"]:
        row = {}
        for m in METRICS:
            vals = [(r["policies"][name].get(m), r["questions"]) for r in reports]
            if all(v is not None for v, _ in vals):
                row[m] = sum(v * n for v, n in vals) / total
        pooled[name] = row
    return total, pooled


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--jobs", type=int, default=1, help="folds run at once")
    ap.add_argument("--train", default="", help="options of train-router alone, as one string")
    ap.add_argument("--trainer", default="target/release/trainer")
    ap.add_argument("--bars", default="", help="network bars to score each fold's policy at, e.g. 0,0.6,0.8")
    ap.add_argument("--reuse", action="store_true", help="keep fold policies already in --out")
    args, shared = ap.parse_known_args()
    bars = parse_bars(args.bars)
    if args.folds < 2:
        raise SystemExit("--folds must be at least 2")
    if any(a in ("--fold", "--weights", "--json", "--network-bar") for a in shared):
        raise SystemExit("--fold, --weights, --json and --network-bar are set per fold by this script")
    if not Path(args.trainer).is_file():
        raise SystemExit(f"{args.trainer} is missing: run `cargo build --release -p trainer`")
    args.out.mkdir(parents=True, exist_ok=True)
    shared = ["--data", args.data, *shared]
    train_args = shlex.split(args.train)
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool_exec:
        results = list(pool_exec.map(
            lambda i: one_fold(args.trainer, i, args.folds, args.out, shared, train_args, bars, args.reuse),
            range(args.folds)))
    reports = [r for r, _ in results]
    total, pooled = pool(reports)
    frontier = []
    for j, bar in enumerate(bars):
        _, at = pool([at_bars[j] for _, at_bars in results])
        frontier.append({"network_bar": bar, **at["learned"]})
    result = {
        "dataset": reports[0]["dataset"],
        "folds": args.folds,
        "questions": total,
        "policies": pooled,
        "learned_per_fold": [
            {"fold": i, "questions": r["questions"],
             **{m: r["policies"]["learned"].get(m) for m in ("containment@10", "network_share", "rounds")}}
            for i, r in enumerate(reports)
        ],
    }
    if bars:
        result["learned_at_bars"] = frontier
    (args.out / "cv.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"{result['dataset']}: {args.folds}-fold cross-validation, {total} questions, each scored by a policy that never trained on it")
    print(f"| policy | {' | '.join(METRICS[:4])} |")
    print("|---" * 5 + "|")
    for name, row in pooled.items():
        cells = " | ".join(f"{row[m]:.3f}" if m in row else "–" for m in METRICS[:4])
        print(f"| {name} | {cells} |")
    print("learned per fold (questions: containment@10 at network calls/q): " + ", ".join(
        f"{f['fold']} ({f['questions']}: {f['containment@10']:.3f} @ {f['network_share']:.2f})"
        for f in result["learned_per_fold"]))
    if bars:
        print("learned at each network bar (held out): " + ", ".join(
            f"{f['network_bar']:g}: {f['containment@10']:.3f} @ {f['network_share']:.3f}" for f in frontier))
    print(f"wrote {args.out / 'cv.json'}", file=sys.stderr)


if __name__ == "__main__":
    main()
