"""Completeness delta of `nlptool attribute` against the number of Gauss-Legendre nodes (`--steps`).

Reviews: --n (default 150) reviews of the held-out test split that bench_attribute.py rebuilds
(scripts/prepare_sentiment_data.py, seed 13; the classifier never saw them), drawn with seed --seed
(default 1) from the test rows *outside* bench_attribute.py's speed set (its --speed-n 1,000 reviews,
seed 0, which also contain its --n completeness reviews), so a node count chosen here is not chosen
on the reviews the speed benchmark then measures.

Each review is attributed as `nlptool attribute` does by default (batched integral, baseline [PAD],
F = p(predicted), the model's window, batches of 8), once per node count. Per node count:
|delta| = |sum(scores) - (F(x) - F(baseline))| (median, 90th percentile, max), the same relative to
|F(x) - F(baseline)|, the reviews above the command's 5 % warning, and the largest change of a
token's score against the --ref node count (default 50, the previous default): the max over the
reviews of max_i |score_i(n) - score_i(ref)|, and its 90th percentile over the reviews.
Gauss-Legendre with n nodes is exact for polynomials of degree 2n - 1, but where the path crosses
the decision boundary the integrand is steep, so |delta| falls only about 19x per 10 extra nodes
(measured 2026-12-03 on 150 reviews: p90 |delta| 3.8e-4 / 5.6e-5 / 2.9e-6 at 32 / 40 / 50 nodes):
the 50-node default stays (docs/attribute.md).

Threads: the CLI's rule (nlptool/threads.py: 1 unless OMP_NUM_THREADS/MKL_NUM_THREADS or --threads).
--save FILE writes one JSON line per (node count, review) for further study.

Usage: python benchmarks/bench_attribute_steps.py [--n 150] [--seed 1] [--steps 8,12,16,20,24,32,40,50,100]
       [--ref 50] [--speed-n 1000] [--threads N] [--model zh-sentiment-mini] [--device cpu] [--save FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import table  # noqa: E402


def quantile(values: list[float], q: float) -> float:
    """The nearest-rank ``q`` quantile (``q`` in [0, 1]) of ``values``."""
    s = sorted(values)
    return s[min(len(s) - 1, max(0, int(round(q * len(s) + 0.5)) - 1))]


def study_texts(test: list[dict], n: int, seed: int, speed_n: int) -> list[str]:
    """``n`` test reviews (seed ``seed``) outside bench_attribute.py's speed set (seed 0, ``speed_n``)."""
    speed = {r["text"] for r in random.Random(0).sample(test, min(speed_n, len(test)))}
    rest = [r for r in test if r["text"] not in speed]
    return [r["text"] for r in random.Random(seed).sample(rest, min(n, len(rest)))]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=150, help="test reviews outside the speed set (seed --seed)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--steps", default="8,12,16,20,24,32,40,50,100", help="Gauss-Legendre node counts, comma-separated")
    ap.add_argument("--ref", type=int, default=50, help="node count the token scores are compared with")
    ap.add_argument("--speed-n", type=int, default=1000, help="bench_attribute.py's speed set, left out")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: the CLI's rule)")
    ap.add_argument("--model", default="zh-sentiment-mini")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--save", default=None, help="JSONL of the per-review results")
    a = ap.parse_args()
    steps_list = sorted({int(s) for s in a.steps.split(",")} | {a.ref})

    import csv

    from bench_attribute import test_split

    from nlptool.threads import apply_thread_rule

    choice = apply_thread_rule("bert", a.threads)
    from nlptool.attribute import attribute_texts
    from nlptool.attribute.command import OPTION_DEFAULTS
    from nlptool.models import load_model

    data = test_split(Path("build/bench-attribute/data"))
    with open(data / "test.csv", encoding="utf-8", newline="") as fh:
        test = list(csv.DictReader(fh))
    texts = study_texts(test, a.n, a.seed, a.speed_n)
    loaded = load_model(a.model, kind="sequence-classification", device=a.device)
    n_tok = [len(ids) for ids in loaded.tokenizer(texts)["input_ids"]]
    opts = {k: OPTION_DEFAULTS[k] for k in ("target", "baseline", "explain", "granularity", "internal_batch_size",
                                            "max_length", "batch_size")}
    load0 = " ".join(f"{x:.2f}" for x in os.getloadavg())
    results, speed = {}, {}
    for n in steps_list:
        t0 = time.perf_counter()
        results[n] = attribute_texts(loaded, texts, steps=n, method="gausslegendre", **opts)
        speed[n] = len(texts) / (time.perf_counter() - t0)
        print(f"  {n} nodes: {speed[n]:.2f} texts/s", file=sys.stderr, flush=True)
    load1 = " ".join(f"{x:.2f}" for x in os.getloadavg())

    ref = results[a.ref]
    rows = []
    for n in steps_list:
        res = results[n]
        d = [abs(r["delta"]) for r in res]
        ratio = [r["delta_ratio"] for r in res]
        diff = [max((abs(x - y) for x, y in zip(r["scores"], q["scores"])), default=0.0) for r, q in zip(res, ref)]
        rows.append([n, f"{quantile(d, 0.5):.1e}", f"{quantile(d, 0.9):.1e}", f"{max(d):.1e}",
                     f"{quantile(ratio, 0.5):.1e}", f"{quantile(ratio, 0.9):.1e}", f"{max(ratio):.1e}",
                     f"{sum(x > 0.05 for x in ratio)}/{len(res)}", f"{quantile(diff, 0.9):.1e}", f"{max(diff):.1e}",
                     f"{speed[n]:.2f}"])
    df = sorted(abs(r["f_x"] - r["f_baseline"]) for r in ref)
    print(f"## completeness vs Gauss-Legendre nodes on {len(texts)} held-out reviews outside the speed set "
          f"(seed {a.seed}; {sum(n_tok) / len(n_tok):.1f} tokens on average, longest {max(n_tok)}; "
          f"|F(x) - F(baseline)| median {quantile(df, 0.5):.3f}, min {df[0]:.1e}; device {loaded.device}, "
          f"{choice.threads} thread(s) from {choice.source}; load average {load0} before, {load1} after)\n")
    print(table(rows, ["nodes", "median |delta|", "p90 |delta|", "max |delta|", "median |delta|/|dF|", "p90 ratio",
                       "max ratio", "above 5 %", f"p90 max|score - score({a.ref})|",
                       f"max |score - score({a.ref})|", "texts/s"]))
    if a.save:
        with open(a.save, "w", encoding="utf-8") as fh:
            for n in steps_list:
                for i, r in enumerate(results[n]):
                    fh.write(json.dumps({"nodes": n, "i": i, "n_tokens": n_tok[i], "delta": r["delta"],
                                         "delta_ratio": r["delta_ratio"], "f_x": r["f_x"], "f_baseline": r["f_baseline"],
                                         "scores": r["scores"]}, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
