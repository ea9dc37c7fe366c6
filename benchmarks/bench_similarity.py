"""`make bench-similarity`: Spearman correlation on Chinese STS-B valid for the old encoder
(zh-bert-mini, the MLM) and the fine-tuned one (zh-sim-mini), with the trivial baselines beside them.

Columns: character-set Jaccard (no model), cosine of the mean token vectors, cosine of the
IDF-weighted mean, -WMD and -WRD (exact transport, IDF weights: the `similarity` default), and
-WRD with uniform weights. STS-B valid is never trained on and nothing was chosen on it: the
zh-sim-mini settings were chosen on a 90/10 split of STS-B *train* (benchmarks/tune_similarity.py).

    python benchmarks/bench_similarity.py [--limit N] [--models zh-bert-mini,zh-sim-mini] [--bootstrap 1000]

With ``--bootstrap B`` it also prints, for every later model against the first, the difference of
Spearman correlations with a 95 % paired bootstrap interval (B resamples of the same pairs for
both models; percentile interval, Efron & Tibshirani 1993, ch. 13): an interval that contains 0
means the two models are not distinguishable on this set.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SHARED = Path(os.environ.get("NLPTOOL_SHARED_DATA", ROOT.parent / "shared" / "data"))
VALID = SHARED / "sts" / "STS-B.valid.data"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="zh-bert-mini,zh-sim-mini")
    ap.add_argument("--limit", type=int, default=None, help="first N pairs only")
    ap.add_argument("--bootstrap", type=int, default=0, help="paired bootstrap resamples for model differences (0 = none)")
    args = ap.parse_args()
    if not VALID.exists():
        print(f"skipped: {VALID} is missing (Chinese STS-B valid; see ../shared/data/README.md)")
        return 0
    import torch

    from nlptool.models import load_model
    from nlptool.similarity.train import read_pairs, sts_scores
    from nlptool.similarity import load_embedder, model_kind, score_pairs

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    pairs = read_pairs([VALID])
    if args.limit:
        pairs = pairs.subset(range(min(args.limit, len(pairs))))
    cols = ["char Jaccard", "similarity", "cos(mean)", "cos(IDF mean)", "-WMD", "-WRD", "-WRD uniform"]
    rows = []
    for name in args.models.split(","):
        t0 = time.perf_counter()
        s = sts_scores(name, pairs, device="cpu", log=lambda m: print(m, file=sys.stderr, flush=True),
                       keep_scores=True)
        from scipy.stats import spearmanr

        emb = load_embedder(load_model(name, kind=model_kind(name), device="cpu"), uniform=True)
        res = score_pairs(emb, pairs.s1, pairs.s2, metric="wrd")
        ok = [i for i, r in enumerate(res) if isinstance(r, dict)]
        s["-WRD uniform"] = float(spearmanr([-res[i]["wrd"] for i in ok], [pairs.score[i] for i in ok]).statistic)
        s["scores"]["-WRD uniform"] = [-r["wrd"] if isinstance(r, dict) else float("nan") for r in res]
        rows.append((name, s, time.perf_counter() - t0))
    print(f"\n| encoder (Chinese STS-B valid, {len(pairs)} pairs, Spearman) | " + " | ".join(cols) + " | seconds |")
    print("|---|" + "---|" * (len(cols) + 1))
    for name, s, sec in rows:
        print(f"| {name} | " + " | ".join(f"{s[c]:.3f}" for c in cols) + f" | {sec:.0f} |")
    if args.bootstrap and len(rows) > 1:
        print(f"\nSpearman difference against {rows[0][0]}, 95 % paired bootstrap interval ({args.bootstrap} resamples)\n")
        print("| model | " + " | ".join(cols[1:]) + " |")
        print("|---|" + "---|" * (len(cols) - 1))
        for name, s, _ in rows[1:]:
            cells = []
            for c in cols[1:]:
                d, lo, hi = paired_bootstrap(rows[0][1]["scores"][c], s["scores"][c], pairs.score, args.bootstrap)
                cells.append(f"{d:+.3f} [{lo:+.3f}, {hi:+.3f}]")
            print(f"| {name} | " + " | ".join(cells) + " |")
    return 0


def paired_bootstrap(a, b, gold, resamples: int, seed: int = 0) -> tuple[float, float, float]:
    """``(rho_b - rho_a, low, high)``: Spearman of scores ``b`` minus that of ``a`` against ``gold``
    (all ``(n,)``, NaN = undefined, left out), with the 2.5 / 97.5 percentiles over ``resamples``
    bootstrap resamples of the pairs (the same resample for both)."""
    import numpy as np
    from scipy.stats import spearmanr

    a, b, g = (np.asarray(x, dtype=float) for x in (a, b, gold))
    ok = np.isfinite(a) & np.isfinite(b)
    a, b, g = a[ok], b[ok], g[ok]
    diff = float(spearmanr(b, g).statistic - spearmanr(a, g).statistic)
    rng = np.random.default_rng(seed)
    ds = []
    for _ in range(resamples):
        i = rng.integers(0, len(g), len(g))
        ds.append(spearmanr(b[i], g[i]).statistic - spearmanr(a[i], g[i]).statistic)
    lo, hi = np.percentile(ds, [2.5, 97.5])
    return diff, float(lo), float(hi)


if __name__ == "__main__":
    sys.exit(main())
