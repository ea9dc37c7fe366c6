"""Segmentation quality and speed on SIGHAN 2005 PKU (gold), in one table (`make bench-segment`).

    python benchmarks/bench_segment.py [--lines N] [--masking-lines 200] [--speed-lines 200]

Rows, on the same PKU lines: `--method tagger` (built-in zh-seg-mini: the tagger decoded with its
unigram word lexicon) on all lines, and the tagger alone (p(join) >= 0.5, no lexicon); `--method masking`
(zh-bert-mini, auto rule) on the first --masking-lines lines (it runs at a few hundred chars/s on a
CPU, so the whole set takes most of an hour: the subset is said in the table); every character a
word; jieba.cut(HMM=False) (a supervised dictionary, for reference). Then: tagger chars/s and the
ratio to masking measured in the same run on the same lines, start-up time (a fresh process
segmenting one line), the traditional-script gain (PKU gold converted to traditional characters with
OpenCC s2t character by character: there is no traditional gold set here), and the per-round dev F1
stored in the model's training_metrics.json. Nothing is tuned on PKU.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, SHARED, Timer, need, peak_rss_mb, prf, read_pku_gold, table  # noqa: E402


def startup_seconds(method: str) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "nlptool", "segment", "--method", method, "-q", "--device", "cpu"],
                   input="我们的国家很美丽。\n".encode(), check=True, capture_output=True, cwd=ROOT)
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lines", type=int, default=None, help="first N gold lines (default: all)")
    ap.add_argument("--masking-lines", type=int, default=200, help="lines for the masking row and the speed ratio")
    ap.add_argument("--batch-size", type=int, default=256)
    args = ap.parse_args()
    gold = read_pku_gold(need(SHARED / "sighan2005" / "pku_test_gold.utf8"), args.lines)
    texts = ["".join(w) for w in gold]
    n_chars = sum(map(len, texts))

    import torch

    from nlptool.models import load_model
    from nlptool.segment.api import auto_fallback, convert_chars, segment_or_parse

    tagger = load_model("zh-seg-mini", kind="char-tagger", device="cpu")
    bert = load_model("zh-bert-mini", kind="encoder", device="cpu")
    fb = auto_fallback(bert)

    def run(method, tx, convert="none"):
        seg = tagger if method == "tagger" else bert
        out = segment_or_parse(tx, segmenter=seg, method=method, batch_size=args.batch_size, convert=convert, fallback=fb)
        return [r["words"] for r in out]

    rows = []
    with Timer() as tt:
        pt = run("tagger", texts)
    assert all("".join(w) == t for w, t in zip(pt, texts))
    from nlptool.segment.api import segment_with_tagger

    with Timer() as tt_plain:
        pt_plain = [r.words for r in segment_with_tagger(tagger, texts, batch_size=args.batch_size, lexicon=False)]
    sub_n = min(args.masking_lines, len(texts))
    sub, sub_gold = texts[:sub_n], gold[:sub_n]
    with Timer() as tm:
        pm = run("masking", sub)
    with Timer() as tt_sub:
        pt_sub = run("tagger", sub)
    sub_chars = sum(map(len, sub))
    try:
        import jieba

        jieba.setLogLevel(60)
        jieba.initialize()
        with Timer() as tj:
            pj = [list(jieba.cut(t, HMM=False)) for t in texts]
    except ImportError:
        pj, tj = None, None
    for name, g, p, secs, nc in [
        (f"tagger (zh-seg-mini), all {len(texts)} lines", gold, pt, tt.seconds, n_chars),
        (f"tagger alone, no lexicon (p(join) >= 0.5), all {len(texts)} lines", gold, pt_plain, tt_plain.seconds, n_chars),
        (f"tagger (zh-seg-mini), first {sub_n} lines", sub_gold, pt_sub, tt_sub.seconds, sub_chars),
        (f"masking (zh-bert-mini, auto), first {sub_n} lines", sub_gold, pm, tm.seconds, sub_chars),
        (f"every character a word, all {len(texts)} lines", gold, [list(t) for t in texts], None, n_chars),
        (f"every character a word, first {sub_n} lines", sub_gold, [list(t) for t in sub], None, sub_chars),
    ] + ([(f"jieba.cut(HMM=False) (supervised dictionary), all {len(texts)} lines", gold, pj, tj.seconds, n_chars)] if pj else []):
        P, R, F = prf(g, p)
        rows.append([name, f"{P:.3f}", f"{R:.3f}", f"{F:.3f}", f"{nc / secs:,.0f}" if secs else "-"])
    print(f"PKU test gold: {len(texts)} lines, {n_chars:,} characters; CPU threads {torch.get_num_threads()}")
    print(table(rows, ["method", "P", "R", "F1", "chars/s"]))
    print(f"\ntagger / masking speed on the same {sub_n} lines ({sub_chars:,} chars): "
          f"{tm.seconds / tt_sub.seconds:.0f}x ({sub_chars / tt_sub.seconds:,.0f} vs {sub_chars / tm.seconds:,.0f} chars/s)")

    # traditional script: PKU gold converted char by char (s2t), segmented with and without t2s
    trad = [convert_chars(t, "s2t") for t in texts]
    changed = sum(a != b for t, u in zip(texts, trad) for a, b in zip(t, u)) / n_chars
    rows = []
    for convert in ("none", "auto"):
        P, R, F = prf(gold, run("tagger", trad, convert))
        rows.append([f"tagger, --convert {convert}", f"{P:.3f}", f"{R:.3f}", f"{F:.3f}"])
    print(f"\nPKU converted to traditional (OpenCC s2t per character; {changed:.1%} of characters change):")
    print(table(rows, ["method", "P", "R", "F1"]))

    # per-round dev F1 (People's Daily 1998 dev set, from the model's own training record)
    from nlptool.models import resolve_model_path

    m = json.loads((Path(resolve_model_path("zh-seg-mini")) / "training_metrics.json").read_text(encoding="utf-8"))
    print(f"\nzh-seg-mini self-training, dev = {m['dev_set']}:")
    print(table([[r["round"], r["what"], r.get("agreement_with_teacher", "-"), r.get("dev_F1_tagger_alone", r.get("dev_F1", "-")),
                  r.get("dev_F1", "-") if "lexicon_weight" in r else "-"] for r in m["rounds"]],
                ["round", "model", "agreement with teacher", "dev F1 (tagger alone)", "dev F1 (with lexicon)"]))
    print(f"selected round: {m['selected_round']}")

    print("\nstart-up, one line through a fresh `nlptool segment` process (import + load + segment):")
    print(table([[meth, f"{startup_seconds(meth):.1f} s"] for meth in ("tagger", "masking")], ["method", "seconds"]))
    print(f"\npeak RSS {peak_rss_mb():,.0f} MiB")


if __name__ == "__main__":
    main()
