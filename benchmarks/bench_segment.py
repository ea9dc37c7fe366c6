"""Segmentation quality and speed on SIGHAN 2005 PKU (gold), in one table (`make bench-segment`).

    python benchmarks/bench_segment.py [--lines N] [--masking-lines 200] [--repeat 3] [--threads N]
                                       [--baseline DIR]

Rows, on the same PKU lines: `--method tagger` (built-in zh-seg-mini: the tagger decoded with its
unigram word lexicon) on all lines, and the tagger alone (p(join) >= 0.5, no lexicon); `--method masking`
(zh-bert-mini, auto rule) on the first --masking-lines lines (it runs at a few hundred chars/s on a
CPU, so the whole set takes most of an hour: the subset is said in the table); every character a
word; jieba.cut(HMM=False) (a supervised dictionary, for reference). Then: tagger chars/s and the
ratio to masking measured in the same run on the same lines, start-up time (a fresh process
segmenting one line, beside `import torch` alone), the traditional-script gain (PKU gold converted
to traditional characters with OpenCC s2t character by character: there is no traditional gold set
here), and the per-round dev F1 stored in the model's training_metrics.json. Nothing is tuned on PKU.

Threads: the CLI's rule (nlptool/threads.py: 1 intra-op thread, OMP_NUM_THREADS/MKL_NUM_THREADS when
set, --threads to choose); the count used is printed. Speeds are the best of --repeat timed runs
after a warm-up (the tagger's, jieba's); the load average before and after is printed, since other
processes on the machine move them. --baseline DIR (a source tree of another commit, e.g.
`git archive 99620cb | tar -x -C /tmp/base`) times that tree's tagger on the same lines, with the
same threads, in fresh processes alternating with this tree's: a before/after pair from one run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, SHARED, Timer, need, peak_rss_mb, prf, read_pku_gold, table  # noqa: E402


def startup_seconds(cmd: list[str], stdin: str = "我们的国家很美丽。\n", repeat: int = 3) -> float:
    """Median wall seconds of a fresh process."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        subprocess.run(cmd, input=stdin.encode(), check=True, capture_output=True, cwd=ROOT)
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


# the tagger's speed in a fresh process, for --baseline (the same program in both trees)
SPEED_PROGRAM = """
import sys, time
from nlptool.models import load_model
from nlptool.segment.api import segment_or_parse
texts = [l.replace(' ', '').strip() for l in open(sys.argv[1], encoding='utf-8') if l.strip()][:int(sys.argv[2])]
tg = load_model('zh-seg-mini', kind='char-tagger', device='cpu')
segment_or_parse(texts[:50], segmenter=tg)
best = min(_timed(texts, tg) for _ in range(int(sys.argv[3])))
print(sum(map(len, texts)) / best)
"""
SPEED_PRELUDE = """
import time
def _timed(texts, tg):
    from nlptool.segment.api import segment_or_parse
    t0 = time.perf_counter(); segment_or_parse(texts, segmenter=tg); return time.perf_counter() - t0
"""


def subprocess_speed(tree: Path, gold_path: Path, lines: int, repeat: int, threads: int | None) -> float:
    """chars/s of ``tree``'s tagger in a fresh process; ``threads`` None: torch's default (no
    OMP_NUM_THREADS/MKL_NUM_THREADS, and a tree without the rule keeps one thread per CPU)."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    env["PYTHONPATH"] = str(tree)
    if threads is not None:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    out = subprocess.run([sys.executable, "-c", SPEED_PRELUDE + SPEED_PROGRAM, str(gold_path), str(lines), str(repeat)],
                         env=env, cwd=tree, check=True, capture_output=True, text=True)
    return float(out.stdout.split()[-1])


def best_of(repeat: int, fn):
    """(result of the first call, best seconds of ``repeat`` calls)."""
    first, best = None, float("inf")
    for k in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
        first = out if k == 0 else first
    return first, best


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lines", type=int, default=None, help="first N gold lines (default: all)")
    ap.add_argument("--masking-lines", type=int, default=200, help="lines for the masking row and the speed ratio")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--repeat", type=int, default=3, help="timed runs per speed (the best is reported)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: the CLI's rule)")
    ap.add_argument("--baseline", type=Path, default=None, help="source tree of another commit to time beside this one")
    args = ap.parse_args()
    gold_path = need(SHARED / "sighan2005" / "pku_test_gold.utf8")
    gold = read_pku_gold(gold_path, args.lines)
    texts = ["".join(w) for w in gold]
    n_chars = sum(map(len, texts))
    load_before = load_average()

    from nlptool.threads import apply_thread_rule

    choice = apply_thread_rule("tagger", args.threads)  # the CLI's rule (the BERT rule gives the same here)
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
    from nlptool.segment.api import segment_with_tagger

    run("tagger", texts[:50])  # warm-up (first-call allocations, the lexicon index)
    pt, tt = best_of(args.repeat, lambda: run("tagger", texts))
    assert all("".join(w) == t for w, t in zip(pt, texts))
    pt_plain, tt_plain = best_of(args.repeat, lambda: [r.words for r in segment_with_tagger(
        tagger, texts, batch_size=args.batch_size, lexicon=False, impacts=False)])
    sub_n = min(args.masking_lines, len(texts))
    sub, sub_gold = texts[:sub_n], gold[:sub_n]
    with Timer() as tm:
        pm = run("masking", sub)
    pt_sub, tt_sub = best_of(args.repeat, lambda: run("tagger", sub))
    sub_chars = sum(map(len, sub))
    try:
        import jieba

        jieba.setLogLevel(60)
        jieba.initialize()
        pj, tj = best_of(args.repeat, lambda: [list(jieba.cut(t, HMM=False)) for t in texts])
    except ImportError:
        pj, tj = None, None
    for name, g, p, secs, nc in [
        (f"tagger (zh-seg-mini), all {len(texts)} lines", gold, pt, tt, n_chars),
        (f"tagger alone, no lexicon (p(join) >= 0.5), all {len(texts)} lines", gold, pt_plain, tt_plain, n_chars),
        (f"tagger (zh-seg-mini), first {sub_n} lines", sub_gold, pt_sub, tt_sub, sub_chars),
        (f"masking (zh-bert-mini, auto), first {sub_n} lines", sub_gold, pm, tm.seconds, sub_chars),
        (f"every character a word, all {len(texts)} lines", gold, [list(t) for t in texts], None, n_chars),
        (f"every character a word, first {sub_n} lines", sub_gold, [list(t) for t in sub], None, sub_chars),
    ] + ([(f"jieba.cut(HMM=False) (supervised dictionary), all {len(texts)} lines", gold, pj, tj, n_chars)] if pj else []):
        P, R, F = prf(g, p)
        rows.append([name, f"{P:.3f}", f"{R:.3f}", f"{F:.3f}", f"{nc / secs:,.0f}" if secs else "-"])
    load_after = load_average()
    print(f"PKU test gold: {len(texts)} lines, {n_chars:,} characters; CPU threads {choice.threads} "
          f"({choice.source}; {os.cpu_count()} CPUs); load average {load_before} before, {load_after} after")
    print(table(rows, ["method", "P", "R", "F1", "chars/s"]))
    if pj:
        print(f"\ntagger / jieba.cut(HMM=False) speed, same run: {tj / tt:.2f} ({n_chars / tt:,.0f} vs {n_chars / tj:,.0f} chars/s)")
    if args.baseline is not None:
        lines = len(texts)
        base = args.baseline.resolve()
        here, there, there_default = [], [], []
        for _ in range(2):  # alternating fresh processes on the same lines
            here.append(subprocess_speed(ROOT, gold_path, lines, args.repeat, choice.threads))
            there.append(subprocess_speed(base, gold_path, lines, args.repeat, choice.threads))
            there_default.append(subprocess_speed(base, gold_path, lines, args.repeat, None))
        print(f"\ntagger speed on all {lines} lines, fresh processes, best of {args.repeat} runs x 2 processes "
              f"(load average now {load_average()}):")
        print(table([[f"this tree, {choice.threads} thread(s) (the CLI's rule)", f"{max(here):,.0f}", "1.00x"],
                     [f"baseline, {choice.threads} thread(s)", f"{max(there):,.0f}", f"{max(there) / max(here):.2f}x"],
                     [f"baseline, torch's default threads ({os.cpu_count()})", f"{max(there_default):,.0f}",
                      f"{max(there_default) / max(here):.2f}x"]], ["tree", "chars/s", "/ this tree"]))
    print(f"\ntagger / masking speed on the same {sub_n} lines ({sub_chars:,} chars): "
          f"{tm.seconds / tt_sub:.0f}x ({sub_chars / tt_sub:,.0f} vs {sub_chars / tm.seconds:,.0f} chars/s)")

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

    print("\nstart-up, one line through a fresh `nlptool segment` process (import + load + segment), median of 3:")
    seg = [sys.executable, "-m", "nlptool", "segment", "-q", "--device", "cpu", "--method"]
    print(table([["import torch (the floor)", f"{startup_seconds([sys.executable, '-c', 'import torch'], ''):.2f} s"]]
                + [[meth, f"{startup_seconds(seg + [meth]):.2f} s"] for meth in ("tagger", "masking")],
                ["method", "seconds"]))
    print(f"\npeak RSS {peak_rss_mb():,.0f} MiB")


if __name__ == "__main__":
    main()
