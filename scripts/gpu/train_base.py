"""Train zh-bert-mini on a GPU within a fixed wall-clock budget, with the learning-rate schedule
fitted to that budget (the linear decay reaches 0 at the last step, not at an arbitrary stop).

    python scripts/gpu/train_base.py CORPUS HELDOUT OUT --minutes 3.5

1. a probe run of 300 steps on the first 20,000 lines measures steps/s on this device;
2. the real run plans ``steps = rate * minutes * 60 * 0.95`` and trains on the whole corpus, with
   ``--max-minutes`` as a safety stop;
3. the model is exported in fp16 to OUT/export (the shape of ``nlptool/data/models/zh-bert-mini``).

This is the script behind the GPU row of the zh-bert-mini model card; on the CPU use
``nlptool train mlm`` with a step count instead.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("corpus")
    ap.add_argument("heldout")
    ap.add_argument("out")
    ap.add_argument("--minutes", type=float, default=3.5)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--max-chars", type=int, default=126)
    ap.add_argument("--learning-rate", type=float, default=1e-3)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--probe-steps", type=int, default=300)
    args = ap.parse_args()

    import torch

    from nlptool.mlm import export_model, train_mlm

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    dev = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    log = lambda s: print(s, flush=True)  # noqa: E731
    probe_corpus = out / "probe.txt"
    with open(args.corpus, encoding="utf-8") as src, open(probe_corpus, "w", encoding="utf-8") as dst:
        for i, line in enumerate(src):
            if i >= 20000:
                break
            dst.write(line)
    common = dict(layers=args.layers, hidden=args.hidden, heads=args.heads, max_chars=args.max_chars,
                  batch_size=args.batch_size, learning_rate=args.learning_rate, log=log)
    t0 = time.time()
    probe = train_mlm([probe_corpus], out / "probe", max_steps=args.probe_steps, **common)
    rate = probe["steps"] / probe["train_seconds"]
    steps = max(200, int(rate * args.minutes * 60 * 0.95))
    log(f"probe: {probe['steps']} steps in {probe['train_seconds']} s = {rate:.1f} steps/s on {dev}; planning {steps} steps")
    model_dir = out / "zh-bert-mini"
    metrics = train_mlm([args.corpus], model_dir, max_steps=steps, max_minutes=args.minutes * 1.25, **common)
    # held-out MLM loss, fixed masks
    metrics.update(heldout_loss(model_dir, args.heldout, args.max_chars))
    metrics.update({"eval_seed": 0, "trained_on": dev, "probe_steps_per_s": round(rate, 2),
                    "wall_seconds_total": round(time.time() - t0, 1), "learning_rate": args.learning_rate})
    (model_dir / "training_metrics.json").write_text(json.dumps(metrics, indent=1), encoding="utf-8")
    export_model(model_dir, out / "export")
    log(json.dumps({k: v for k, v in metrics.items() if k != "history"}))


def heldout_loss(model_dir, heldout, max_chars: int) -> dict:
    """Held-out MLM loss of a trained model on the same fixed masks as every other model
    (:func:`nlptool.mlm.heldout_mlm_loss`)."""
    import torch
    from transformers import AutoTokenizer, BertForMaskedLM

    from nlptool.mlm import heldout_mlm_loss, read_corpus

    dev = "cuda" if torch.cuda.is_available() else "cpu"
    model = BertForMaskedLM.from_pretrained(model_dir, dtype=torch.float32).to(dev)
    return heldout_mlm_loss(model, AutoTokenizer.from_pretrained(model_dir), list(read_corpus([heldout])),
                            max_chars=max_chars, seed=0, device=dev)


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")
    main()
