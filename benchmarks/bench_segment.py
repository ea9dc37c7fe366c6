"""Segmentation quality and speed on SIGHAN 2005 PKU (gold), in one table.

    python benchmarks/bench_segment.py [--model zh-bert-mini] [--lines N] [--naive-lines 40]

Rows: `nlptool segment` (built-in model, --threshold auto), every character a word, jieba.cut(HMM=False).
Speed: chars/s of the batched engine against a naive reference that processes one clause at a time
with all n^2 masked inputs (like the original Perturbed-Masking code), on the same lines; achieved
GFLOP/s of the masked forward passes against a plain torch.matmul GEMM in the same run; peak memory.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import SHARED, Timer, need, peak_rss_mb, prf, read_pku_gold, table  # noqa: E402


def naive_segment(loaded, texts, layer=-1):
    """Reference: per clause, one batch of all n^2 singly/doubly masked inputs (i <= j), no
    cross-clause packing, no length sorting. Returns the number of characters processed."""
    import numpy as np
    import torch

    from nlptool.segment import UnitEncoder, clauses_of

    enc = UnitEncoder(loaded.tokenizer)
    tok = loaded.tokenizer
    n_chars = 0
    for t, text in enumerate(texts):
        n_chars += len(text)
        _, clauses = clauses_of(text, t, enc, loaded.max_length - 2)
        for c in clauses:
            ids = [tok.cls_token_id] + [i for u in c.ids for i in u] + [tok.sep_token_id]
            n = len(c.ids)
            batch = []
            for i in range(n):
                for j in range(n):
                    row = list(ids)
                    row[i + 1] = tok.mask_token_id
                    row[j + 1] = tok.mask_token_id
                    batch.append(row)
            with torch.inference_mode():
                h = loaded.model(input_ids=torch.tensor(batch)).last_hidden_state.numpy()
            h = h.reshape(n, n, len(ids), -1)
            for i in range(n - 1):
                _ = (np.linalg.norm(h[i, i, i + 1] - h[i, i + 1, i + 1]) + np.linalg.norm(h[i + 1, i + 1, i + 2] - h[i, i + 1, i + 2])) / 2
    return n_chars


def gemm_gflops(seconds=3.0, n=1024):
    import torch

    a = torch.randn(n, n)
    b = torch.randn(n, n)
    torch.matmul(a, b)
    k, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        torch.matmul(a, b)
        k += 1
    return 2 * n**3 * k / (time.perf_counter() - t0) / 1e9


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="zh-bert-mini")
    ap.add_argument("--lines", type=int, default=None, help="first N gold lines (default: all)")
    ap.add_argument("--naive-lines", type=int, default=40)
    ap.add_argument("--batch-size", type=int, default=256)
    args = ap.parse_args()
    gold_path = need(SHARED / "sighan2005" / "pku_test_gold.utf8")
    gold = read_pku_gold(gold_path, args.lines)
    texts = ["".join(w) for w in gold]
    n_chars = sum(map(len, texts))

    import jieba
    import torch

    from nlptool.models import load_model
    from nlptool.perturbed_masking import EngineStats
    from nlptool.segment import auto_fallback, segment_texts

    jieba.setLogLevel(60)
    jieba.initialize()
    rows = []
    with Timer() as tj:
        pj = [list(jieba.cut(t, HMM=False)) for t in texts]
    pc = [list(t) for t in texts]
    loaded = load_model(args.model, kind="encoder", device="auto")
    fallback = auto_fallback(loaded)
    stats = EngineStats()
    with Timer() as ts:
        res = segment_texts(loaded, texts, batch_size=args.batch_size, fallback=fallback, stats=stats)
    pred = [r.words for r in res]
    assert all("".join(w) == t for w, t in zip(pred, texts))
    for name, p, secs in [
        (f"nlptool segment ({args.model}, auto)", pred, ts.seconds),
        ("every character a word", pc, None),
        ("jieba.cut(HMM=False)", pj, tj.seconds),
    ]:
        P, R, F = prf(gold, p)
        rows.append([name, f"{P:.3f}", f"{R:.3f}", f"{F:.3f}", f"{n_chars / secs:,.0f}" if secs else "-"])
    print(f"PKU test gold: {len(texts)} lines, {n_chars:,} characters; threads {torch.get_num_threads()}")
    print(table(rows, ["method", "P", "R", "F1", "chars/s"]))

    # speed against the naive reference, on the same lines
    sub = texts[: args.naive_lines]
    sub_chars = sum(map(len, sub))
    with Timer() as tn:
        naive_segment(loaded, sub)
    s2 = EngineStats()
    with Timer() as tb:
        segment_texts(loaded, sub, batch_size=args.batch_size, fallback=fallback, stats=s2)
    gemm = gemm_gflops()
    achieved = stats.flops / stats.forward_seconds / 1e9
    whole = stats.flops / ts.seconds / 1e9
    print()
    print(table(
        [
            ["naive (per clause, n^2 inputs)", f"{sub_chars / tn.seconds:,.0f}", "1.0x"],
            ["nlptool (packed, 2n-1 inputs, length-sorted)", f"{sub_chars / tb.seconds:,.0f}", f"{tn.seconds / tb.seconds:.1f}x"],
        ],
        [f"speed on the first {len(sub)} lines ({sub_chars:,} chars)", "chars/s", "speed-up"],
    ))
    print()
    print(table(
        [
            ["masked forward passes (time inside the encoder calls)", f"{achieved:.1f}", f"{achieved / gemm:.0%}"],
            ["the same FLOPs over the whole segment_texts wall time", f"{whole:.1f}", f"{whole / gemm:.0%}"],
            ["torch.matmul 1024x1024 GEMM", f"{gemm:.1f}", "100%"],
        ],
        ["compute", "GFLOP/s", "of GEMM"],
    ))
    print(f"\nmasked inputs {stats.sequences:,}, padded tokens {stats.tokens:,} (padding {1 - stats.real_tokens / max(stats.tokens, 1):.1%}), peak RSS {peak_rss_mb():,.0f} MiB")


if __name__ == "__main__":
    main()
