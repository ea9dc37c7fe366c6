"""Choose the CoSENT / SimCSE settings of zh-sim-mini on a split of STS-B *train* (never on valid).

Splits Chinese STS-B train 90/10 (seed 0, the same split as ``nlptool train similarity --holdout
0.1``), fine-tunes the base model with each setting on the 90 % and prints the Spearman of the
mean-vector cosine on the 10 %. Sized for a GPU (each run is seconds there); on the CPU pass
``--quick``.

    python benchmarks/tune_similarity.py [--base DIR] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SHARED = Path(os.environ.get("NLPTOOL_SHARED_DATA", ROOT.parent / "shared" / "data"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", default="zh-bert-mini")
    ap.add_argument("--train", default=str(SHARED / "sts" / "STS-B.train.data"))
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    args = ap.parse_args()
    if not os.path.exists(args.train):
        print(f"skipped: {args.train} is missing (Chinese STS-B train)")
        return 0
    from nlptool.similarity.train import read_pairs, split_holdout, train_sentence_encoder

    pairs = read_pairs([args.train])
    tr, dv = split_holdout(len(pairs), 0.1, 0)
    train, dev = pairs.subset(tr), pairs.subset(dv)
    sents = list(dict.fromkeys(train.s1 + train.s2))
    grid = [dict(learning_rate=lr, epochs=ep, batch_size=64, pooling="mean")
            for lr in (5e-5, 1e-4, 2e-4, 5e-4) for ep in (4, 8)]
    grid += [dict(learning_rate=2e-4, epochs=8, batch_size=64, pooling="cls"),
             dict(learning_rate=2e-4, epochs=8, batch_size=32, pooling="mean"),
             dict(learning_rate=2e-4, epochs=16, batch_size=64, pooling="mean"),
             dict(learning_rate=2e-4, epochs=8, batch_size=64, pooling="mean", scale=10.0),
             dict(learning_rate=2e-4, epochs=8, batch_size=64, pooling="mean", scale=40.0),
             dict(learning_rate=2e-4, epochs=8, batch_size=64, pooling="mean", simcse_first=True)]
    if args.quick:
        grid = [dict(learning_rate=1e-4, max_steps=5, batch_size=16, pooling="mean")]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for k, cfg in enumerate(grid):
            cfg = dict(cfg)
            base = args.base
            t0 = time.time()
            if cfg.pop("simcse_first", False):
                m0 = train_sentence_encoder("simcse", f"{tmp}/simcse{k}", sentences=sents, model=base, epochs=1,
                                            batch_size=64, learning_rate=5e-5, device=args.device)
                base = f"{tmp}/simcse{k}"
                cfg["simcse_first"] = m0["steps"]
            extra = {key: cfg[key] for key in cfg if key != "simcse_first"}
            m = train_sentence_encoder("cosent", f"{tmp}/m{k}", pairs=train, eval_pairs=dev, model=base,
                                       device=args.device, **extra)
            rows.append({**cfg, "dev_spearman": m["eval_spearman"], "before": m["eval_spearman_before"],
                         "steps": m["steps"], "seconds": round(time.time() - t0, 1)})
            print(json.dumps(rows[-1]), flush=True)
    print(f"\n| setting (dev = 10 % of STS-B train, {len(dev)} pairs) | steps | dev Spearman cos(mean) |")
    print("|---|---|---|")
    for r in rows:
        name = ", ".join(f"{k}={v}" for k, v in r.items() if k not in ("dev_spearman", "before", "steps", "seconds"))
        print(f"| {name} | {r['steps']} | {r['dev_spearman']:.4f} |")
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
