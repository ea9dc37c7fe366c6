"""Dependency parsing by Perturbed Masking + Eisner: UAS on Universal Dependencies dev sets.

    python benchmarks/bench_parse.py [--zh-model zh-bert-mini] [--en-model en-minilm] [--max-words 15] [--sentences 150]

Gold words are given to the parser (as `nlptool segment --parse dependency` does with a JSONL
record that has a "words" list). UAS excludes punctuation (UPOS PUNCT) from scoring; every word is
parsed. Baselines: right-chain (each word headed by the next one, last word root) and
left-chain (each word headed by the previous one, first word root). Variants show which choices matter:
arc direction (F[d,h] = impact of the head on the dependent, or F[h,d]), per-dependent mean
normalisation, and the layer.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import SHARED, Timer, need, table  # noqa: E402


def read_conllu(path, max_words=None, limit=None):
    sents, words, heads, punct = [], [], [], []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            line = line.rstrip("\n")
            if not line:
                if words and (max_words is None or len(words) <= max_words):
                    sents.append((words, heads, punct))
                words, heads, punct = [], [], []
                if limit and len(sents) >= limit:
                    break
                continue
            if line.startswith("#"):
                continue
            cols = line.split("\t")
            if "-" in cols[0] or "." in cols[0]:
                continue
            words.append(cols[1])
            heads.append(int(cols[6]))
            punct.append(cols[3] == "PUNCT")
    return sents


def uas(sents, pred):
    right = total = 0
    for (w, g, p), h in zip(sents, pred):
        for gi, hi, pi in zip(g, h, p):
            if pi:
                continue
            total += 1
            right += gi == hi
    return right / total if total else 0.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--zh-model", default="zh-bert-mini")
    ap.add_argument("--en-model", default="en-minilm")
    ap.add_argument("--max-words", type=int, default=15)
    ap.add_argument("--sentences", type=int, default=150)
    ap.add_argument("--layers", default="-1,-2,-3")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--langs", default="zh,en")
    args = ap.parse_args()
    from nlptool.models import load_model
    from nlptool.segment.parsing import dependency_scores, eisner
    from nlptool.segment.masking import impact_matrices
    from nlptool.segment.api import UnitEncoder

    rows = []
    for lang, fname, model in [("zh", "zh_gsdsimp-ud-dev.conllu", args.zh_model), ("en", "en_ewt-ud-dev.conllu", args.en_model)]:
        if lang not in args.langs.split(","):
            continue
        path = need(SHARED / "ud" / fname)
        sents = read_conllu(path, args.max_words, args.sentences)
        n_words = sum(len(s[0]) for s in sents)
        rows.append([lang, "right-chain (head = next word)", "-", f"{uas(sents, [[i + 2 if i + 1 < len(w) else 0 for i in range(len(w))] for w, _, _ in sents]):.3f}"])
        rows.append([lang, "left-chain (head = previous word)", "-", f"{uas(sents, [[i for i in range(len(w))] for w, _, _ in sents]):.3f}"])
        loaded = load_model(model, kind="encoder", device="auto")
        enc = UnitEncoder(loaded.tokenizer)
        seqs = [[enc(x) for x in w] for w, _, _ in sents]
        for layer in [int(x) for x in args.layers.split(",")]:
            with Timer() as t:
                mats = impact_matrices(loaded, seqs, layer=layer, batch_size=args.batch_size)
            for arc in ("head-on-dependent", "dependent-on-head"):
                for norm in ("none", "row"):
                    pred = []
                    for F in mats:
                        sc, root = dependency_scores(F, transpose=(arc == "dependent-on-head"), normalise=norm)
                        pred.append(eisner(sc, root)[0])
                    rows.append([lang, f"Eisner, {arc}, norm={norm}", str(layer), f"{uas(sents, pred):.3f}"])
            print(f"{lang} layer {layer}: {len(sents)} sentences, {n_words} words, impact matrices in {t.seconds:.0f} s ({n_words / t.seconds:.0f} words/s)", file=sys.stderr)
    print(f"UD dev, first {args.sentences} sentences of at most {args.max_words} words; UAS without punctuation")
    print(table(rows, ["lang", "method", "layer", "UAS"]))


if __name__ == "__main__":
    main()
