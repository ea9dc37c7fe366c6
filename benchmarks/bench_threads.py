"""One intra-op thread against torch's default, per command kind, on this machine
(`python benchmarks/bench_threads.py`): the measurements behind the thread rule of
:mod:`nlptool.threads`.

    python benchmarks/bench_threads.py [--repeat 3] [--lines 300] [--pairs 300] [--masking-lines 20]
        [--reviews 48] [--only attribute]

Every measurement is a fresh process with ``OMP_NUM_THREADS`` set (1, or the number of CPUs: torch's
default), models loaded before the clock starts; the settings alternate, and the median of
``--repeat`` runs is printed, beside the summed rate of one one-thread process per CPU run at once
(the scale-out the rule relies on: ``--shard``, ``--engine ray``) with the load average before and after (other processes on the machine
move these numbers: the rule has to hold when they do). Workloads: the tagger (``segment``'s
default, PKU lines), a bare ``nn.LSTM(256, 128, bidirectional=True)`` (the shape users timed), the
masking segmenter (zh-bert-mini, Perturbed Masking), ``similarity`` (zh-sim-mini, WRD) on STS-B pairs
and ``attribute`` (zh-sentiment-mini, the batched integral) on ChnSentiCorp reviews.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, SHARED, need, table  # noqa: E402

PROGRAMS = {
    "tagger (segment default), chars/s": """
import time, torch
from nlptool.models import load_model
from nlptool.segment.api import segment_or_parse
texts = [l.replace(' ', '').strip() for l in open({pku!r}, encoding='utf-8') if l.strip()][:{lines}]
tg = load_model('zh-seg-mini', kind='char-tagger', device='cpu')
segment_or_parse(texts[:20], segmenter=tg)
t0 = time.perf_counter(); segment_or_parse(texts, segmenter=tg); dt = time.perf_counter() - t0
print(sum(map(len, texts)) / dt)
""",
    "nn.LSTM(256, 128, bidirectional), seq/s": """
import time, torch
torch.manual_seed(0)
lstm = torch.nn.LSTM(256, 128, bidirectional=True, batch_first=True).eval()
x = torch.randn(256, 40, 256)
with torch.inference_mode():
    lstm(x)
    t0 = time.perf_counter()
    for _ in range(20):
        lstm(x)
    dt = time.perf_counter() - t0
print(20 * 256 / dt)
""",
    "masking (zh-bert-mini), chars/s": """
import time, torch
from nlptool.models import load_model
from nlptool.segment.api import segment_or_parse
texts = [l.replace(' ', '').strip() for l in open({pku!r}, encoding='utf-8') if l.strip()][:{masking_lines}]
bert = load_model('zh-bert-mini', kind='encoder', device='cpu')
segment_or_parse(texts[:2], segmenter=bert, method='masking', fallback=1.0)
t0 = time.perf_counter(); segment_or_parse(texts, segmenter=bert, method='masking', fallback=1.0)
print(sum(map(len, texts)) / (time.perf_counter() - t0))
""",
    "similarity (zh-sim-mini, WRD), pairs/s": """
import time, torch
from nlptool.models import load_model
from nlptool.similarity import load_embedder, model_kind, score_pairs
rows = [l.rstrip('\\n').split('\\t') for l in open({sts!r}, encoding='utf-8')][:{pairs}]
emb = load_embedder(load_model('zh-sim-mini', kind=model_kind('zh-sim-mini'), device='cpu'))
score_pairs(emb, [r[0] for r in rows[:8]], [r[1] for r in rows[:8]], metric='wrd')
t0 = time.perf_counter(); score_pairs(emb, [r[0] for r in rows], [r[1] for r in rows], metric='wrd')
print(len(rows) / (time.perf_counter() - t0))
""",
    "attribute (zh-sentiment-mini, 50 nodes), texts/s": """
import csv, time, torch
from nlptool.models import load_model
from nlptool.attribute import attribute_texts
texts = [r['review'] for r in csv.DictReader(open({reviews!r}, encoding='utf-8'))][:{reviews_n}]
clf = load_model('zh-sentiment-mini', kind='sequence-classification', device='cpu')
attribute_texts(clf, texts[:2])
t0 = time.perf_counter(); attribute_texts(clf, texts)
print(len(texts) / (time.perf_counter() - t0))
""",
}


def run_all(name: str, code: str, processes: int, threads: int) -> list[float]:
    """Rates printed by ``processes`` fresh processes started together, each with ``threads`` threads."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    procs = [subprocess.Popen([sys.executable, "-c", code], env=env, cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(processes)]
    rates = []
    for proc in procs:
        out, err = proc.communicate()
        if proc.returncode:
            sys.exit(f"{name}: {err[-500:]}")
        rates.append(float(out.split()[-1]))
    return rates


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--lines", type=int, default=300, help="PKU lines for the tagger")
    ap.add_argument("--masking-lines", type=int, default=20)
    ap.add_argument("--pairs", type=int, default=300, help="STS-B pairs for similarity")
    ap.add_argument("--reviews", type=int, default=48, help="ChnSentiCorp reviews for attribute")
    ap.add_argument("--only", default=None, help="comma-separated substrings of the workloads to run")
    args = ap.parse_args()
    pku = need(SHARED / "sighan2005" / "pku_test_gold.utf8")
    sts = need(SHARED / "sts" / "STS-B.valid.data")
    reviews = need(SHARED / "sentiment" / "ChnSentiCorp_htl_all.csv")
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    settings = sorted({1, cpus})
    print(f"{cpus} CPUs; load average before: {load()}", flush=True)
    rows = []
    for name, prog in PROGRAMS.items():
        if args.only and not any(s in name for s in args.only.split(",")):
            continue
        code = prog.format(pku=str(pku), sts=str(sts), lines=args.lines, pairs=args.pairs,
                           masking_lines=args.masking_lines, reviews=str(reviews), reviews_n=args.reviews)
        runs: dict[object, list[float]] = {n: [] for n in settings}
        runs["procs"] = []
        for _ in range(args.repeat):
            for n in settings:
                runs[n].append(run_all(name, code, 1, n)[0])
            if cpus > 1:  # as many one-thread processes as CPUs, at once: their summed rate
                runs["procs"].append(sum(run_all(name, code, cpus, 1)))
        med = {n: statistics.median(v) for n, v in runs.items() if v}
        rows.append([name] + [f"{med[n]:,.1f}" for n in settings]
                    + ([f"{med[cpus] / med[1]:.2f}x", f"{med['procs']:,.1f}"] if cpus > 1 else []))
        print(f"  {name}: done, load {load()}", file=sys.stderr, flush=True)
    heads = (["workload"] + [f"{n} thread{'s' if n > 1 else ''}" for n in settings]
             + (["default / 1", f"{cpus} processes x 1 thread, summed"] if cpus > 1 else []))
    print(table(rows, heads))
    print(f"load average after: {load()}")


if __name__ == "__main__":
    main()
