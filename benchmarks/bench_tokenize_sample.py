"""Speed of `nlptool tokenize-sample`: chars/s of exact sampling (alpha = 0.1) and of decoding,
against jieba.cut(HMM=False) and sentencepiece's own sampler, in the same run.

Data ($NLPTOOL_SHARED_DATA, default ../shared/data; skips cleanly when absent):
sighan2005/pku_test.utf8 (1,944 lines of Chinese news), ud/en_ewt-ud-dev.conllu (2,001 English
sentences), the tokenizer models in tokenizers/. Each row is the best of --repeat passes over all
lines (the machine may be busy); chars are input characters (len(str)). Ours runs with the lattice
cache off, so every line is filtered from scratch. "nlptool --sp-model" rows are what the command
runs (the sentencepiece library's own sampler / n-best behind our API); "nlptool lattice" rows are
our exact pure-Python lattice on the same model (used for jieba, BytePiece, --entropy,
--marginals, --without-replacement). n-best rows count chars once per line (K = --nbest
segmentations per line). The scaling table times --nbest K and -k K --without-replacement on one
line of pku_test text (the whole output record, as the command builds it) for growing K and line
length: the time per output unit (K x characters) stays flat when the method is linear in both.
The last rows time the command's start-up on one line.

    python benchmarks/bench_tokenize_sample.py [--repeat 3] [--alpha 0.1]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import subprocess
import logging
import os
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = Path(os.environ.get("NLPTOOL_SHARED_DATA") or ROOT.parent / "shared" / "data")
PKU = DATA / "sighan2005" / "pku_test.utf8"
EN = DATA / "ud" / "en_ewt-ud-dev.conllu"
TOK = DATA / "tokenizers"


def best_rate(fn, lines, repeat):
    n = sum(len(x) for x in lines)
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn(lines)
        best = min(best, time.perf_counter() - t)
    return n / best


def startup_table(runs: int = 5) -> str:
    """Median wall time and CPU time (user + sys, less sensitive to a busy machine) of one line
    through the command (the jieba dictionary read from its cache)."""
    import resource

    def med(cmd, inp):
        ts, cs = [], []
        for _ in range(runs):
            r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
            t = time.perf_counter()
            subprocess.run(cmd, input=inp, capture_output=True, check=True)
            ts.append(time.perf_counter() - t)
            r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
            cs.append(r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime)
        return statistics.median(ts), statistics.median(cs)

    py = [sys.executable]
    rows = [("python -c pass", med(py + ["-c", "pass"], b"")),
            ("nlptool --help", med(py + ["-m", "nlptool", "--help"], b"")),
            ("echo 我爱北京 | nlptool tokenize-sample", med(py + ["-m", "nlptool", "tokenize-sample", "-q"],
                                                          "我爱北京\n".encode()))]
    sp = TOK / "botchan_en_unigram_1000.model"
    if sp.exists():
        rows.append(("echo Hello | nlptool tokenize-sample --sp-model botchan",
                     med(py + ["-m", "nlptool", "tokenize-sample", "-q", "--sp-model", str(sp)], b"Hello\n")))
    out = [f"| start-up (median of {runs}) | wall s | CPU s |", "|---|---:|---:|"]
    out += [f"| {name} | {w:.2f} | {c:.2f} |" for name, (w, c) in rows]
    return "\n".join(out)


def scaling_table(model, text: str) -> str:
    """CPU seconds and microseconds per output unit (segmentations x characters) of one line's
    n-best list / K distinct samples, for growing K (a 180-character line) and line length (K = 100)."""
    from nlptool.tokenize_sample.unigram import tokenize

    cases = [("--nbest", 180, k) for k in (1000, 4000, 16000)] + \
            [("--without-replacement", 180, k) for k in (1000, 4000, 16000)] + \
            [("--nbest", n, 100) for n in (1000, 4000, 16000)] + \
            [("--without-replacement", n, 100) for n in (1000, 4000, 16000)]
    out = ["| task | line chars | K | CPU s | us per output unit |", "|---|---:|---:|---:|---:|"]
    for task, n, k in cases:
        line = text[:n]
        kw = {"nbest": k} if task == "--nbest" else {"num_samples": k, "without_replacement": True}
        t = time.process_time()
        res = tokenize(model, line, 0.1, rng=random.Random(0), **kw)
        dt = time.process_time() - t
        got = len(res["nbest"] if task == "--nbest" else res["samples"])
        out.append(f"| {task} | {n:,} | {got:,} | {dt:.2f} | {1e6 * dt / (got * n):.2f} |")
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--alpha", type=float, default=0.1)
    ap.add_argument("--nbest", type=int, default=10)
    args = ap.parse_args()
    if not PKU.exists():
        print(f"skipped: {PKU} is missing (../shared/data not available)")
        return 0
    from nlptool.tokenize_sample.unigram import load_unigram_model as load_model

    a, rep, kb = args.alpha, args.repeat, args.nbest
    zh = PKU.read_text(encoding="utf-8").splitlines()
    rows = []
    ratios = []

    import jieba

    jieba.setLogLevel(logging.WARNING)
    jieba.initialize()
    model = load_model(cache_size=0)
    rng = random.Random(0)
    model.sample("预热", a, rng=rng)  # builds the per-alpha weight table once (not timed)
    rows.append(("jieba dict.txt", "pku_test (zh)", "jieba.cut(HMM=False)", "decode",
                 best_rate(lambda L: [list(jieba.cut(x, HMM=False)) for x in L], zh, rep)))
    rows.append(("jieba dict.txt", "pku_test (zh)", "nlptool", "decode (alpha=inf)",
                 best_rate(lambda L: [model.decode(x) for x in L], zh, rep)))
    rows.append(("jieba dict.txt", "pku_test (zh)", "nlptool", f"sample (alpha={a:g})",
                 best_rate(lambda L: [model.sample(x, a, rng=rng) for x in L], zh, rep)))
    rows.append(("jieba dict.txt", "pku_test (zh)", "nlptool", f"sample (alpha={a:g}), K=10 per line",
                 10 * best_rate(lambda L: [model.sample(x, a, rng=rng, num_samples=10) for x in L], zh, rep)))
    rows.append(("jieba dict.txt", "pku_test (zh)", "nlptool lattice", f"nbest (K={kb})",
                 best_rate(lambda L: [model.nbest(x, kb) for x in L], zh, 1)))
    rows.append(("jieba dict.txt", "pku_test (zh)", "nlptool lattice", f"entropy (alpha={a:g})",
                 best_rate(lambda L: [model.entropy(x, a) for x in L], zh, 1)))
    rows.append(("jieba dict.txt", "pku_test (zh)", "nlptool lattice", f"marginals (alpha={a:g})",
                 best_rate(lambda L: [model.marginals(x, a) for x in L], zh, 1)))

    en = [ln[9:] for ln in EN.read_text(encoding="utf-8").splitlines() if ln.startswith("# text = ")] \
        if EN.exists() else []
    for name, texts, label in [("botchan_en_unigram_1000.model", en, "ud en_ewt dev (en)"),
                               ("kyoto_ja_unigram_8000.model", zh, "pku_test (zh)")]:
        path = TOK / name
        if not path.exists() or not texts:
            print(f"skipped {name}: {path if not path.exists() else EN} is missing")
            continue
        import sentencepiece as spm

        m = load_model(sp_model=str(path), cache_size=0)
        sp = m.sp
        spm.set_random_generator_seed(0)
        m.sample("warm up", a, rng=rng)
        rows.append((name, label, "sentencepiece", "encode (decode)",
                     best_rate(lambda L: [sp.encode(x, out_type=str) for x in L], texts, rep)))
        rows.append((name, label, "sentencepiece", f"sample (nbest=-1, alpha={a:g})",
                     best_rate(lambda L: [sp.encode(x, out_type=str, enable_sampling=True, nbest_size=-1, alpha=a)
                                          for x in L], texts, rep)))
        rows.append((name, label, "nlptool --sp-model", "decode (alpha=inf)",
                     best_rate(lambda L: [m.decode(x) for x in L], texts, rep)))
        rows.append((name, label, "nlptool --sp-model", f"sample (alpha={a:g})",
                     best_rate(lambda L: [m.sample(x, a, rng=rng) for x in L], texts, rep)))
        ratios.append((name, rows[-3][4] / rows[-1][4]))  # sentencepiece sample / ours
        exact = copy.copy(m)
        exact.sp_native = False
        rows.append((name, label, "nlptool lattice", f"sample (alpha={a:g})",
                     best_rate(lambda L: [exact.sample(x, a, rng=rng) for x in L], texts, rep)))
        rows.append((name, label, "sentencepiece", f"nbest_encode (K={kb})",
                     best_rate(lambda L: [sp.nbest_encode(x, nbest_size=kb, out_type=str) for x in L], texts, rep)))
        rows.append((name, label, "nlptool --sp-model", f"nbest (K={kb})",
                     best_rate(lambda L: [m.nbest(x, kb) for x in L], texts, rep)))
        rows.append((name, label, "nlptool lattice", f"nbest (K={kb})",
                     best_rate(lambda L: [exact.nbest(x, kb) for x in L], texts, 1)))

    bp = TOK / "bytepiece.zh.id.eu.40k.model"
    if bp.exists():
        m = load_model(bytepiece_model=str(bp), cache_size=0)
        m.sample("预热", a, rng=rng)
        rows.append((bp.name, "pku_test (zh)", "nlptool", "decode (alpha=inf)",
                     best_rate(lambda L: [m.decode(x) for x in L], zh, rep)))
        rows.append((bp.name, "pku_test (zh)", "nlptool", f"sample (alpha={a:g})",
                     best_rate(lambda L: [m.sample(x, a, rng=rng) for x in L], zh, rep)))
    else:
        print(f"skipped BytePiece: {bp} is missing")

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"# tokenize-sample speed (best of {rep}; {os.cpu_count()} CPUs, load average {load:.1f}; "
          f"Python {sys.version.split()[0]})\n")
    print("| model | text | implementation | task | chars/s |")
    print("|---|---|---|---|---:|")
    for r in rows:
        print(f"| {r[0]} | {r[1]} | {r[2]} | {r[3]} | {r[4]:,.0f} |")
    jc = rows[0][4]
    print(f"\nnlptool sampling (alpha={a:g}) / jieba.cut(HMM=False): {rows[2][4] / jc:.2f}x; "
          f"decoding / jieba: {rows[1][4] / jc:.2f}x")
    for name, r in ratios:
        print(f"{name}: sentencepiece's own sampler is {r:.2f}x as fast as `tokenize-sample --sp-model` "
              f"sampling (target: <= 2x)")
    print()
    print(scaling_table(model, "".join(zh)))
    print()
    print(startup_table())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
