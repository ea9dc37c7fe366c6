"""Benchmark `nlptool attribute` and its built-in classifier zh-sentiment-mini (`make bench-attribute`).

Data: NLPTOOL_SHARED_DATA (default ../shared/data): sentiment/ChnSentiCorp_htl_all.csv and
shift/online_shopping_10_cats.zip (skipped cleanly when absent). The held-out test split is rebuilt
exactly as the model's stage script built it (scripts/prepare_sentiment_data.py, seed 13, 10 % test /
5 % dev per (domain, label), deduplicated), so the model never saw these rows.

1. Classifier accuracy per domain on the test split, beside two trivial baselines fitted on the
   training split: the majority class, and the majority class of the row's domain.
2. Speed: --speed-n test reviews (seed 0) attributed as `nlptool attribute FILE` does (the
   command's defaults: 50 Gauss-Legendre steps, baseline [PAD], F = p(predicted), the model's
   window, records in chunks of CHUNK_SIZE, batches of 8), with the batched integral
   (ig_scores_batched, the integration nodes of several texts in shared passes) and with captum's
   LayerIntegratedGradients per batch (batched=False, the path before it). Each chunk is timed
   both ways back to back (alternating which goes first), so a busy machine slows both alike;
   texts/s (wall clock), texts per CPU-second of this process, and the completeness of both.
   --no-before times the batched path only.
3. Completeness: |delta| / |F(x) - F(baseline)| (F = probability of the predicted label, baseline
   [PAD]) with Gauss-Legendre at 20, 50 and 200 steps on N test reviews (seed 0), and texts/s.
4. Faithfulness, AOPC comprehensiveness (Samek et al. 2017, "Evaluating the visualization of what a
   deep neural network has learned"; DeYoung et al. 2020, ERASER): replace the highest-scored units
   by [PAD] until 10/20/30/40/50 % of the tokens are gone, and average the drop
   p(target | x) - p(target | x without them) over the five budgets. Units are tokens or jieba words
   (--granularity word); a random ordering of the same units (seed 0) is the trivial baseline.

Threads: the CLI's rule (nlptool/threads.py: 1 intra-op thread unless OMP_NUM_THREADS/MKL_NUM_THREADS
or --threads say otherwise); the count used and the load average are printed.

Usage: python benchmarks/bench_attribute.py [--n 100] [--speed-n 1000] [--no-before] [--threads N]
       [--model zh-sentiment-mini] [--device auto]
"""

from __future__ import annotations

import argparse
import math
import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))

from common import SHARED, need, table  # noqa: E402

BUDGETS = (0.1, 0.2, 0.3, 0.4, 0.5)


def test_split(tmp: Path) -> Path:
    import prepare_sentiment_data as prep

    need(SHARED / "sentiment" / "ChnSentiCorp_htl_all.csv")
    need(SHARED / "shift" / "online_shopping_10_cats.zip")
    prep.main(["--shared", str(SHARED), "--out", str(tmp), "--test", "0.10", "--dev", "0.05", "--cap", "4000",
               "--seed", "13"])
    return tmp


def aopc(loaded, text: str, res: dict, order: list[int], groups: list[list[int]], target: int) -> float:
    """Mean drop of p(target) when the first units of ``order`` are replaced by [PAD] up to each budget."""
    import torch

    tok = loaded.tokenizer
    enc = tok(text, truncation=True, max_length=128, return_tensors="pt", return_special_tokens_mask=True)
    ids = enc["input_ids"][0]
    inner = [i for i, s in enumerate(enc["special_tokens_mask"][0].tolist()) if not s]
    n = len(inner)
    batch = [ids.clone()]
    for b in BUDGETS:
        cut = ids.clone()
        removed = 0
        for u in order:
            if removed + len(groups[u]) > max(1, round(b * n)):
                continue
            for j in groups[u]:
                cut[inner[j]] = tok.pad_token_id
            removed += len(groups[u])
        batch.append(cut)
    with torch.no_grad():
        x = torch.stack(batch).to(loaded.device)
        p = torch.softmax(loaded.model(input_ids=x, attention_mask=torch.ones_like(x)).logits.float(), -1)[:, target]
    return float((p[0] - p[1:]).mean())


def completeness(results: list[dict]) -> dict[str, float]:
    """Median |delta|, median / max |delta| / |dF| and the share above 5 % of a list of records."""
    deltas = sorted(abs(r["delta"]) for r in results)
    ratios = sorted(r["delta_ratio"] for r in results)
    return {"median_delta": deltas[len(deltas) // 2], "median_ratio": ratios[len(ratios) // 2], "max_ratio": ratios[-1],
            "above": sum(x > 0.05 for x in ratios)}


def speed(loaded, texts: list[str], before: bool) -> tuple[list[list], str]:
    """Rows of the speed table: ``texts`` attributed with the command's defaults, chunk by chunk,
    batched and (``before``) with captum per batch, each chunk timed both ways back to back; and a
    line with the largest score difference between the two (empty without ``before``)."""
    from nlptool.attribute import attribute_texts
    from nlptool.attribute.command import CHUNK_SIZE, OPTION_DEFAULTS

    opts = {k: OPTION_DEFAULTS[k] for k in ("target", "steps", "method", "baseline", "explain", "granularity",
                                            "internal_batch_size", "max_length", "batch_size")}
    paths = {"batched (ig_scores_batched)": True}
    if before:
        paths["per batch, captum (batched=False, before)"] = False
    wall = dict.fromkeys(paths, 0.0)
    cpu = dict.fromkeys(paths, 0.0)
    results: dict[str, list] = {k: [] for k in paths}
    for c, start in enumerate(range(0, len(texts), CHUNK_SIZE)):
        chunk = texts[start:start + CHUNK_SIZE]
        for name in (list(paths) if c % 2 == 0 else list(paths)[::-1]):
            w0, c0 = time.perf_counter(), time.process_time()
            results[name] += attribute_texts(loaded, chunk, batched=paths[name], **opts)
            wall[name] += time.perf_counter() - w0
            cpu[name] += time.process_time() - c0
        print(f"  {start + len(chunk)}/{len(texts)} texts: "
              + ", ".join(f"{len(results[k]) / wall[k]:.2f} texts/s" for k in paths), file=sys.stderr, flush=True)
    first = next(iter(paths))
    rows = []
    for name in paths:
        q = completeness(results[name])
        rows.append([name, f"{len(texts) / wall[name]:.2f}", f"{len(texts) / cpu[name]:.2f}",
                     f"{wall[first] and wall[name] / wall[first]:.2f}x", f"{q['median_delta']:.1e}",
                     f"{q['median_ratio']:.1e}", f"{q['max_ratio']:.1e}", f"{q['above']}/{len(texts)}"])
    note = ""
    if before:
        worst = max(max(abs(x - y) for x, y in zip(a["scores"], b["scores"])) if a["scores"] else 0.0
                    for a, b in zip(*results.values()))
        note = f"largest |score difference| between the two integrals: {worst:.1e}"
    return rows, note


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100, help="test reviews attributed for completeness and AOPC (seed 0; 0 = skip both)")
    ap.add_argument("--speed-n", type=int, default=1000, help="test reviews timed as `nlptool attribute` runs them (seed 0)")
    ap.add_argument("--no-before", action="store_true", help="time the batched integral only (not captum's per batch)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: the CLI's rule)")
    ap.add_argument("--model", default="zh-sentiment-mini")
    ap.add_argument("--device", default="auto")
    a = ap.parse_args()

    import csv

    from nlptool.threads import apply_thread_rule

    choice = apply_thread_rule("bert", a.threads)  # what `nlptool attribute` does before loading a model
    from nlptool.attribute import attribute_texts, word_groups
    from nlptool.attribute.classifier import evaluate_by_group
    from nlptool.models import load_model

    data = test_split(Path("build/bench-attribute/data"))
    t0 = time.time()
    ev = evaluate_by_group(a.model, data / "test.csv", train=data / "train.csv", device=a.device)
    rows = [[g, b["n"], f"{b['accuracy']:.4f}", f"{b['f1']:.4f}", f"{b['majority']:.4f}", f"{b['domain_majority']:.4f}"]
            for g, b in ev["groups"].items()]
    o = ev["overall"]
    rows.append(["all", o["n"], f"{o['accuracy']:.4f}", f"{o['f1']:.4f}", f"{o['majority']:.4f}", f"{o['domain_majority']:.4f}"])
    print(f"## {a.model}: accuracy on the held-out test split ({time.time() - t0:.0f} s)\n")
    print(table(rows, ["domain", "rows", "accuracy", "macro-F1", "majority class", "domain majority"]))

    with open(data / "test.csv", encoding="utf-8", newline="") as fh:
        test = list(csv.DictReader(fh))
    texts = [r["text"] for r in random.Random(0).sample(test, min(a.n, len(test)))]
    loaded = load_model(a.model, kind="sequence-classification", device=a.device)
    if a.speed_n > 0:
        speed_texts = [r["text"] for r in random.Random(0).sample(test, min(a.speed_n, len(test)))]
        n_tok = [len(ids) for ids in loaded.tokenizer(speed_texts)["input_ids"]]
        load0 = " ".join(f"{x:.2f}" for x in os.getloadavg())
        rows, note = speed(loaded, speed_texts, before=not a.no_before)
        load1 = " ".join(f"{x:.2f}" for x in os.getloadavg())
        print(f"\n## speed on {len(speed_texts)} test reviews as `nlptool attribute FILE` runs them (device {loaded.device}, "
              f"{choice.threads} thread(s) from {choice.source}; load average {load0} before, {load1} after; "
              f"{sum(n_tok) / len(n_tok):.1f} tokens per review on average, longest {max(n_tok)})\n")
        print(table(rows, ["integral", "texts/s", "texts per CPU-s", "time vs batched", "median |delta|",
                           "median |delta|/|dF|", "max |delta|/|dF|", "above 5 %"]))
        if note:
            print(f"\n{note}")
    if not texts:  # --n 0: the speed table alone
        return 0
    rows = []
    for steps in (20, 50, 200):
        t0 = time.time()
        res = attribute_texts(loaded, texts, steps=steps, max_length=128, batch_size=8)
        dt = time.time() - t0
        ratios = sorted(r["delta_ratio"] for r in res)
        rows.append([steps, f"{ratios[len(ratios) // 2]:.2e}", f"{sum(ratios) / len(ratios):.2e}", f"{ratios[-1]:.2e}",
                     f"{sum(x > 0.05 for x in ratios)}/{len(ratios)}", f"{len(texts) / dt:.2f}"])
    print(f"\n## completeness on {len(texts)} test reviews (Gauss-Legendre, baseline [PAD], F = p(predicted))\n")
    print(table(rows, ["steps", "median |delta|/|dF|", "mean", "max", "above 5 %", "texts/s"]))

    rng = random.Random(0)
    scores = {k: [] for k in ("token IG", "token random", "word IG", "word random")}
    label2id = loaded.model.config.label2id
    for gran in ("token", "word"):
        res = attribute_texts(loaded, texts, steps=50, max_length=128, granularity=gran)
        tok_res = attribute_texts(loaded, texts, steps=2, max_length=128) if gran == "word" else res
        for text, r, t in zip(texts, res, tok_res):
            units = r["words"] if gran == "word" else r["tokens"]
            groups = word_groups(text, t["tokens"]) if gran == "word" else [[j] for j in range(len(units))]
            if len(groups) != len(units):  # text without CJK: attribute_texts used the tokenizer's words
                continue
            target = int(label2id[r["target"]])
            ig_order = sorted(range(len(units)), key=lambda u: -r["scores"][u])
            rnd = list(range(len(units)))
            rng.shuffle(rnd)
            scores[f"{gran} IG"].append(aopc(loaded, text, r, ig_order, groups, target))
            scores[f"{gran} random"].append(aopc(loaded, text, r, rnd, groups, target))
    print(f"\n## AOPC comprehensiveness on {len(texts)} test reviews (higher = the top units matter more; "
          f"budgets {', '.join(f'{b:.0%}' for b in BUDGETS)} of the tokens)\n")
    rows = [[k, f"{sum(v) / len(v):.4f}", f"{math.sqrt(sum((x - sum(v) / len(v)) ** 2 for x in v) / max(1, len(v) - 1)) / math.sqrt(len(v)):.4f}"]
            for k, v in scores.items()]
    print(table(rows, ["units, ordering", "AOPC", "std. error"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
