"""Choosing the self-trained parser's training settings (epochs, sentences, rounds) on half A of UD dev.

    python benchmarks/tune_parser.py --cache build/models/zh-parse-mini.work [--seeds 0 1]

Reads the teacher trees that ``nlptool train parser`` cached (``OUT.work/teacher_trees-*.jsonl``,
the words from the tagger, the heads from Perturbed Masking: no treebank), trains students with
each setting (:func:`nlptool.segment.biaffine.train_student`, the same function the command runs)
and scores them on UD Chinese GSDSimp dev (`../shared/data/ud`, sentences of at most 20 words,
gold words, punctuation not scored), split as in bench_parse.py: halves A (even positions) and B
(odd). Settings are chosen on A; B shows whether the choice carries over. Every row is the mean of
the seeds. The right-chain baseline and the teacher are in the same table.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import SHARED, need, table  # noqa: E402

from nlptool.segment.conllu import attachment_score, read_conllu  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cache", required=True, help="the OUT.work directory of a `nlptool train parser` run")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--grid", default="epochs", choices=("epochs", "sentences", "rounds", "all"))
    args = ap.parse_args()
    import torch

    from nlptool.segment.biaffine import build_vocabs, parse_with_student
    from nlptool.segment.train_parser import self_training_rounds

    torch.set_num_threads(1)
    files = sorted(Path(args.cache).glob("teacher_trees-*.jsonl"))
    if not files:
        sys.exit(f"{args.cache}: no teacher_trees-*.jsonl")
    words, heads = [], []
    for line in open(files[0], encoding="utf-8"):
        if line.strip():
            rec = json.loads(line)
            words.append(rec["words"])
            heads.append(rec["heads"])
    dev = read_conllu(need(SHARED / "ud" / "zh_gsdsimp-ud-dev.conllu"), max_words=20)
    halves = {"A": dev[0::2], "B": dev[1::2], "all": dev}

    def score(pred_fn):
        return {k: attachment_score(v, pred_fn([s.words for s in v])) for k, v in halves.items()}

    rows = []
    from nlptool.segment.parsing import right_chain

    rc = score(lambda ws: [right_chain(len(w)) for w in ws])
    rows.append(["right-chain (head = next word)", "-", *(f"{rc[k]:.3f}" for k in ("A", "B", "all"))])
    settings = []
    if args.grid in ("epochs", "all"):
        settings += [dict(sentences=len(words), epochs=e, rounds=1) for e in (0.5, 1.0, 2.0)]
    if args.grid in ("sentences", "all"):
        settings += [dict(sentences=n, epochs=1.0, rounds=1) for n in (5000, 10000) if n < len(words)]
    if args.grid in ("rounds", "all"):
        settings += [dict(sentences=len(words), epochs=1.0, rounds=2)]
    for st in settings:
        got = []
        t0 = time.perf_counter()
        for seed in args.seeds:
            ws, hs = words[: st["sentences"]], heads[: st["sentences"]]
            wv, cv = build_vocabs(ws)
            *_, (_, p, _) = self_training_rounds(ws, hs, wv, cv, rounds=st["rounds"], epochs=st["epochs"], seed=seed)
            got.append(score(lambda x: parse_with_student(p, x)))
        mean = {k: float(np.mean([g[k] for g in got])) for k in ("A", "B", "all")}
        spread = max(g["A"] for g in got) - min(g["A"] for g in got)
        rows.append([f"student: {st['sentences']:,} sentences, {st['epochs']:g} epochs, {st['rounds']} round(s)",
                     f"seeds {','.join(map(str, args.seeds))} (A range {spread:.3f})",
                     *(f"{mean[k]:.3f}" for k in ("A", "B", "all"))])
        print(rows[-1], f"{time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    print(f"UD Chinese GSDSimp dev, {len(dev)} sentences of at most 20 words; UAS without punctuation; "
          f"{len(words):,} teacher trees from {files[0]}")
    print(table(rows, ["parser", "seeds", "UAS A", "UAS B", "UAS all"]))


if __name__ == "__main__":
    main()
