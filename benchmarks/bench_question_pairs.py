"""Question matching: ROC AUC on a question-pair dev set for `similarity`'s scores, with character Jaccard
beside them, and the weights of the default pair score chosen on half of it.

    python benchmarks/bench_question_pairs.py [--model zh-sim-mini] [--limit N]

Data: the pairs of ``benchmarks/question_pairs.py`` (CMRC 2018 questions; a paraphrase and a
changed-intent pair per question; labels from the rewrite, not from a model), split by source
question into halves A (even) and B (odd); Chinese STS-B valid (Spearman) is reported beside it and
must not drop (zh-sim-mini was trained on STS-B train, so train cannot judge).

Scores: character-set Jaccard (the baseline), 1 - WRD (the ``similarity`` field before), the cosine
of the IDF-weighted mean token vectors (``cos``), and weighted sums of the three with weights on the
simplex (step 0.1), chosen by AUC on A and reported on B. The choice is the library's
``CHAR_WEIGHT`` (``similarity = (1 - w) cos + w Jaccard``, ``--char-weight``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, SHARED, need, table  # noqa: E402
from question_pairs import build  # noqa: E402


def auc(scores, labels) -> float:
    """ROC AUC (probability that a random positive outscores a random negative; ties count 1/2)."""
    from scipy.stats import rankdata

    s, y = np.asarray(scores, float), np.asarray(labels, int)
    r = rankdata(s)
    n1, n0 = int(y.sum()), int(len(y) - y.sum())
    return float((r[y == 1].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="zh-sim-mini")
    ap.add_argument("--limit", type=int, default=0, help="first N question pairs / STS pairs (0: all)")
    args = ap.parse_args()
    from scipy.stats import spearmanr

    from nlptool.models import load_model
    from nlptool.similarity import char_jaccard, load_embedder, score_pairs
    from nlptool.similarity.train import read_pairs

    need(SHARED / "qa" / "cmrc2018_trial.json")
    qp = build(0)
    if args.limit:
        qp = qp[: args.limit]
    sts_valid = read_pairs([need(SHARED / "sts" / "STS-B.valid.data")])
    loaded = load_model(args.model, device="cpu")
    emb = load_embedder(loaded)  # the command's default: IDF weights of the built-in model

    cache_dir = ROOT / "build" / "bench-question-pairs-cache"

    def scores(s1, s2):
        key = hashlib.sha256(repr((args.model, list(s1), list(s2))).encode()).hexdigest()[:16]
        path = cache_dir / f"{key}.npz"
        if path.exists():
            z = np.load(path)
            return z["base"], z["cos"], z["jac"]
        t0 = time.perf_counter()
        res = score_pairs(emb, s1, s2, metric="wrd")
        base = np.array([np.nan if isinstance(r, Exception) else 1 - r["wrd"] for r in res])
        cos = score_pairs(emb, s1, s2, pool="mean")
        cosv = np.array([np.nan if isinstance(r, Exception) else r["cos"] for r in cos])
        jac = np.array([char_jaccard(a, b) for a, b in zip(s1, s2)])
        print(f"{len(s1)} pairs scored in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
        cache_dir.mkdir(parents=True, exist_ok=True)
        np.savez(path, base=base, cos=cosv, jac=jac)
        return base, cosv, jac

    q1, q2 = [r["sentence1"] for r in qp], [r["sentence2"] for r in qp]
    y = np.array([r["label"] for r in qp])
    src = np.arange(len(qp)) // 2
    A, B = src % 2 == 0, src % 2 == 1
    qb, qc, qj = scores(q1, q2)
    lim = args.limit or None
    vb, vc, vj = scores(sts_valid.s1[:lim], sts_valid.s2[:lim])
    vg = np.asarray(sts_valid.score[:lim], float)

    def rho(s, g):
        ok = np.isfinite(s)
        return float(spearmanr(s[ok], g[ok]).statistic)

    def mix(w, parts):
        """sum_k w_k * part_k (a missing score counts 0)."""
        return sum(wk * np.nan_to_num(p, nan=0.0) for wk, p in zip(w, parts))

    # weights on the simplex (step 0.1) of (cos(IDF mean), 1 - WRD, char Jaccard), chosen on A
    grid = [(a / 10, b / 10, round(1 - a / 10 - b / 10, 1)) for a in range(11) for b in range(11 - a)]
    best = max(grid, key=lambda w: (auc(mix(w, (qc, qb, qj))[A], y[A]), -w[2]))
    named = [
        ("char Jaccard (baseline)", (0, 0, 1)),
        ("1 - WRD (IDF; the similarity default before)", (0, 1, 0)),
        ("cos(IDF mean) (--pool mean)", (1, 0, 0)),
        ("0.5 cos + 0.5 Jaccard", (0.5, 0, 0.5)),
        ("0.5 (1 - WRD) + 0.5 Jaccard", (0, 0.5, 0.5)),
        (f"{best[0]} cos + {best[1]} (1 - WRD) + {best[2]} Jaccard (chosen on A)", best),
    ]
    rows = []
    for name, w in named:
        rows.append([name, f"{auc(mix(w, (qc, qb, qj))[A], y[A]):.3f}", f"{auc(mix(w, (qc, qb, qj))[B], y[B]):.3f}",
                     f"{rho(mix(w, (vc, vb, vj)), vg):.3f}"])
    ops = sorted({r["op"] for r in qp if r["label"] == 0})
    by_op = []
    for op in ops:
        sel = np.array([r["op"] in (op, "paraphrase") for r in qp]) & B
        by_op.append([op, str(int((np.array([r["op"] == op for r in qp]) & B).sum())),
                      *(f"{auc(mix(w, (qc, qb, qj))[sel], y[sel]):.3f}" for _, w in named)])
    print(f"question pairs: {len(qp)} ({int(y.sum())} paraphrases), halves A/B by source question; model {args.model}")
    print(table(rows, ["score", "question AUC A", "question AUC B", "STS-B valid Spearman"]))
    print()
    print("by negative kind, half B (negatives of that kind against all paraphrases of B):")
    print(table(by_op, ["negative", "negatives", *(n.split(" (")[0] for n, _ in named)]))
    print(json.dumps({"chosen_weights": {"cos": best[0], "1-wrd": best[1], "char_jaccard": best[2]}}))
    from nlptool.similarity import CHAR_WEIGHT

    if best != (round(1 - CHAR_WEIGHT, 1), 0.0, CHAR_WEIGHT):
        print(f"note: the library's default is cos {1 - CHAR_WEIGHT:g} + Jaccard {CHAR_WEIGHT:g}, not the choice above")
    return 0


if __name__ == "__main__":
    sys.exit(main())
