"""How the tagger's lexicon decode copes with words its lexicon lacks (People's Daily dev set only).

    python benchmarks/segment_lexicon_oov.py [--drops 0,0.2,0.4]

Text from another source holds words the shipped lexicon (learnt from our corpus) has never seen. We
simulate that on the dev set (People's Daily 1998, the 1,000 lines `train segmenter` reports on; not
a test set) by dropping a random share of the multi-unit lexicon words, and compare the decode that
never makes an out-of-lexicon word (`oov_scale` None) with the shipped `lexicon_oov_scale`, and
with the tagger alone. Prints one table.
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import table  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--drops", default="0,0.2,0.4", help="shares of multi-unit lexicon words removed")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    from nlptool.models import load_model
    from nlptool.segment.api import tagger_pass
    from nlptool.segment.lexicon import Lexicon, decode_settings
    from nlptool.segment.train import people_daily_dev, word_prf

    tg = load_model("zh-seg-mini", kind="char-tagger", device="cpu")
    full, cfg = tg.lexicon, tg.config
    gold = people_daily_dev(1000)
    tp = tagger_pass(tg, ["".join(w) for w in gold])  # one forward pass, decoded per setting

    def f1(lexicon, oov):
        kw = {**decode_settings(cfg), "oov_scale": oov} if lexicon is not None else {}
        return word_prf(gold, [r.words for r in tp.decode(lexicon, **kw)])[2]

    shipped = cfg.get("lexicon_oov_scale")
    rows = []
    for drop in [float(x) for x in args.drops.split(",")]:
        rng = random.Random(args.seed)
        kept = {k: v for k, v in full.logp.items() if len(k) == 1 or rng.random() >= drop}
        lex = Lexicon(kept, full.unk_logp, full.max_len)
        rows.append([f"{drop:.0%}", f"{len(kept):,}", f"{f1(lex, None):.4f}", f"{f1(lex, shipped):.4f}", f"{f1(None, None):.4f}"])
    print(f"zh-seg-mini, People's Daily dev 1,000 lines; shipped OOV scale {shipped}, weight {cfg.get('lexicon_weight')}, "
          f"bonus {cfg.get('lexicon_bonus')}")
    print(table(rows, ["multi-unit words dropped", "lexicon words", "F1, OOV never a word", f"F1, OOV scale {shipped}",
                       "F1, tagger alone"]))


if __name__ == "__main__":
    main()
