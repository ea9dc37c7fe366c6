#!/usr/bin/env python
"""``make gpu-check``: run every nlptool command on CUDA and on the CPU and compare the results.

Each row runs one command through its public library function (the one its CLI calls) or, for
``train *``, through the CLI itself (in-process, ``typer.testing.CliRunner``), first on the CPU and
then, when ``torch.cuda.is_available()``, on CUDA; it compares the two and prints one table:

    command | CPU s | GPU s | speed-up | max difference | verdict

Inputs are the shipped samples (``data/sample_zh.txt``, ``data/sample_passages.jsonl``) plus small
generated inputs, so a fresh machine with CUDA and the repository needs nothing else; the whole run
takes well under two minutes on one modern GPU. Rows are independent: a row that crashes shows its
error in the table and the others still run. A row whose optional package (POT ``ot``)
or built-in model is missing says ``skipped: ...`` instead of failing.

Precision: on CUDA the CLI loads models in fp16 (``nlptool.models.load_model``'s default) and trains
with bf16/fp16 mixed precision (``nlptool.training.training_arguments``). Rows marked ``fp32`` load
the model in fp32 on CUDA and must agree with the CPU to float32 round-off (decisions identical);
rows marked ``fp16`` are what a user of the CLI gets and may differ within the stated tolerance,
where a differing decision (a segmentation boundary, a sampled token) is accepted only when the
CPU's own margin to the decision threshold is within that tolerance (docs/gpu.md).

Usage::

    python scripts/gpu_check.py [--markdown PATH] [--quick] [--only SUBSTRING ...]

Exit status: 0 when every comparison passed (or was skipped); 1 when any row failed. Without CUDA
it runs the CPU half, prints the table and ``no CUDA``, and exits 0 unless a CPU run itself failed.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import random
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT))

# ---------------------------------------------------------------------------------- tolerances
#: fp32 on CUDA vs fp32 on the CPU: float32 round-off (different kernels, summation orders, TF32
#: in cuDNN's LSTM), relative to the scale of the compared values.
TOL_FP32 = 2e-3
#: fp16 weights/activations on CUDA vs fp32 on the CPU, relative to the scale of the values
#: (fp16 has an 11-bit significand: ~5e-4 per rounding, a few times that after 4 layers).
TOL_FP16 = 3e-2
#: similarity: WRD (in [0, 2]) absolute, WMD relative, both with fp16 token vectors.
TOL_SIM = 1e-2
#: split-valid --features model: out-of-fold AUC, absolute.
TOL_AUC = 0.02


class Skip(Exception):
    """A row that cannot run here (a package or a built-in model is missing)."""


@dataclass
class Verdict:
    diff: str
    ok: bool
    text: str


@dataclass
class Row:
    command: str
    cpu_s: float | None = None
    gpu_s: float | None = None
    diff: str = ""
    verdict: str = ""
    failed: bool = False

    def cells(self) -> list[str]:
        def s(x):
            return "—" if x is None else f"{x:.2f}"

        speed = "—"
        if self.cpu_s is not None and self.gpu_s:
            speed = f"{self.cpu_s / self.gpu_s:.1f}x"
        return [self.command, s(self.cpu_s), s(self.gpu_s), speed, self.diff or "—", self.verdict]


HEADER = ["command", "CPU s", "GPU s", "speed-up", "max difference", "verdict"]


def markdown_table(rows: list[Row]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "|".join(["---", "---:", "---:", "---:", "---:", "---"]) + "|"]
    for r in rows:
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in r.cells()) + " |")
    return "\n".join(lines) + "\n"


def text_table(rows: list[Row]) -> str:
    cells = [HEADER] + [r.cells() for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(HEADER))]
    out = []
    for k, c in enumerate(cells):
        out.append("  ".join(x.ljust(w) if i in (0, 5) else x.rjust(w) for i, (x, w) in enumerate(zip(c, widths))).rstrip())
        if k == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out) + "\n"


# ------------------------------------------------------------------------------------ helpers


def need(*modules: str) -> None:
    """Skip the row when an optional package is missing (the GPU machine may lack POT, captum, jieba)."""
    for m in modules:
        try:
            importlib.import_module(m)
        except ImportError:
            raise Skip(f"skipped: {m} missing") from None


def builtin(name: str) -> str | None:
    """The built-in model's directory when it is installed, else None."""
    path = ROOT / "nlptool" / "data" / "models" / name
    return str(path) if (path / "config.json").is_file() else None


def rel_diff(a, b, scale: float | None = None) -> float:
    """max |a - b| / scale (scale: the largest |a|, at least 1e-12)."""
    import numpy as np

    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")
    if a.size == 0:
        return 0.0
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        return math.inf
    s = scale if scale is not None else float(np.max(np.abs(a)))
    return float(np.max(np.abs(a - b)) / max(s, 1e-12))


def sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def cut_offsets(words: list[str]) -> set[int]:
    out, k = set(), 0
    for w in words[:-1]:
        k += len(w)
        out.add(k)
    return out


# ---------------------------------------------------------------------------------- the inputs


@dataclass
class Ctx:
    quick: bool
    tmp: Path
    texts: list[str] = field(default_factory=list)
    passages: list[str] = field(default_factory=list)
    trained: dict[str, str] = field(default_factory=dict)  # train row -> model dir trained on the CPU
    half: str = "cpu"  # which half is running: "cpu" (the reference) or "gpu"
    base: str = "zh-bert-mini"  # the model the train rows start from


def make_inputs(ctx: Ctx) -> None:
    """The shipped samples plus generated edge cases (empty, one character, Latin and digits, a
    long line longer than the model window, traditional characters)."""
    lines = [x.strip() for x in (ROOT / "data" / "sample_zh.txt").read_text(encoding="utf-8").splitlines() if x.strip()]
    long_line = "".join(lines[:12])  # one long record (many clauses in one batch)
    extra = ["", "好", "COVID-19疫情期间，3.14是圆周率的近似值。", "這家餐廳的服務很好。"]
    ctx.texts = (lines[:4] + extra) if ctx.quick else (lines + extra + [long_line[:300]])
    ctx.passages = []
    for raw in (ROOT / "data" / "sample_passages.jsonl").read_text(encoding="utf-8").splitlines():
        if raw.strip():
            ctx.passages.append(json.loads(raw).get("text", ""))
    ctx.passages += lines[:2]


CAPITALS = [("法国", "巴黎"), ("日本", "东京"), ("英国", "伦敦"), ("德国", "柏林"), ("意大利", "罗马"), ("俄罗斯", "莫斯科"),
            ("埃及", "开罗"), ("泰国", "曼谷"), ("韩国", "首尔"), ("西班牙", "马德里"), ("希腊", "雅典"), ("印度", "新德里")]
GOOD = ["很好", "非常满意", "干净整洁", "热情周到", "物美价廉", "值得推荐"]
BAD = ["很差", "非常失望", "又脏又乱", "态度恶劣", "贵得离谱", "再也不来"]
THINGS = ["酒店的服务", "这家餐厅的菜", "房间的环境", "快递的速度", "手机的质量", "前台的态度"]


def write_train_data(ctx: Ctx) -> dict[str, Path]:
    """Small generated training sets, one per ``train`` command, under ``ctx.tmp``."""
    rng = random.Random(0)
    d = ctx.tmp / "data"
    d.mkdir(exist_ok=True)
    lines = [x.strip() for x in (ROOT / "data" / "sample_zh.txt").read_text(encoding="utf-8").splitlines() if x.strip()]
    (d / "corpus.txt").write_text("\n".join(lines * 3) + "\n", encoding="utf-8")
    cls = []
    for th in THINGS:
        for g, b in zip(GOOD, BAD):
            cls.append({"text": f"{th}{g}。", "label": "positive"})
            cls.append({"text": f"{th}{b}。", "label": "negative"})
    rng.shuffle(cls)
    (d / "classifier.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in cls), encoding="utf-8")
    pairs = []
    for th in THINGS:
        for g, b in zip(GOOD, BAD):
            pairs.append({"sentence1": f"{th}{g}。", "sentence2": f"我觉得{th}{g}。", "label": 1})
            pairs.append({"sentence1": f"{th}{g}。", "sentence2": f"{th}{b}。", "label": 0})
    rng.shuffle(pairs)
    (d / "pairs.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in pairs), encoding="utf-8")
    qa = []
    for k, (country, city) in enumerate(CAPITALS):
        other = CAPITALS[(k + 1) % len(CAPITALS)]
        passage = f"{country}的首都是{city}，{other[0]}的首都是{other[1]}。{city}是{country}最大的城市之一。"
        qa.append({"passage": passage, "question": f"{country}的首都是哪里？", "answer": city, "article": country})
        qa.append({"passage": passage, "question": f"{other[0]}的首都是哪座城市？", "answer": other[1], "article": country})
    (d / "qa.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in qa), encoding="utf-8")
    return {"corpus": d / "corpus.txt", "classifier": d / "classifier.jsonl", "pairs": d / "pairs.jsonl", "qa": d / "qa.jsonl"}


# ------------------------------------------------------------------------------------- segment


def _load(name: str, kind: str, device: str, fp16: bool | None = None):
    from nlptool.models import load_model

    return load_model(name, kind=kind, device=device, fp16=fp16)


def seg_tagger_run(ctx: Ctx, device: str, fp16: bool | None):
    from nlptool.segment.api import tagger_pass
    from nlptool.segment.lexicon import decode_settings

    name = builtin("zh-seg-mini") or ctx.trained.get("train segmenter")
    if name is None:
        raise Skip("skipped: no zh-seg-mini (built-in missing, train segmenter row failed)")
    tagger = _load(name, "char-tagger", device)
    tp = tagger_pass(tagger, ctx.texts, batch_size=16)
    sync(device)
    res = tp.decode()  # the threshold rule
    out = {"words": [r.words for r in res], "impacts": [r.impacts for r in res], "model": name}
    if getattr(tagger, "lexicon", None) is not None:  # what `segment` outputs: decoded with the lexicon
        out["lexicon_words"] = [r.words for r in tp.decode(tagger.lexicon, **decode_settings(tagger.config))]
    return out


#: Largest share of the CPU's word boundaries that may move under the lexicon decode (a Viterbi over
#: words: a tiny change of p can move a boundary wherever two segmentations score almost alike).
LEXICON_FLIP_SHARE = 0.01


def seg_tagger_compare(cpu, gpu, tol: float) -> Verdict:
    """Join probabilities within ``tol`` (absolute); words identical except at a neighbour whose
    CPU probability is within ``tol`` of the 0.5 threshold; with a lexicon, the decoded words move at
    no more than :data:`LEXICON_FLIP_SHARE` of the CPU's boundaries."""
    import numpy as np

    flat_c = [x for t in cpu["impacts"] for c in t for x in c]
    flat_g = [x for t in gpu["impacts"] for c in t for x in c]
    d = rel_diff(flat_c, flat_g, scale=1.0)
    flips = unexplained = 0
    for wc, wg, imp in zip(cpu["words"], gpu["words"], cpu["impacts"]):
        if wc != wg:
            diff = cut_offsets(wc) ^ cut_offsets(wg)
            flips += len(diff)
            near = any(abs(p - 0.5) <= tol for c in imp for p in c)
            unexplained += 0 if near else len(diff)
    ok = d <= tol and unexplained == 0
    lex_note = ""
    if "lexicon_words" in cpu and "lexicon_words" in gpu:
        moved = sum(len(cut_offsets(a) ^ cut_offsets(b)) for a, b in zip(cpu["lexicon_words"], gpu["lexicon_words"]))
        total = max(1, sum(len(cut_offsets(a)) for a in cpu["lexicon_words"]))
        lex_ok = moved <= LEXICON_FLIP_SHARE * total
        ok = ok and lex_ok
        lex_note = f"; lexicon decode: {moved} of {total} boundaries moved" + ("" if lex_ok else " (FAIL: over 1 %)")
    flat = np.asarray(flat_c)
    margin = float(np.min(np.abs(flat - 0.5))) if flat.size else 1.0
    text = (f"words identical, p(join) within {tol:g}" if flips == 0 else f"{flips} boundary flip(s) at p≈0.5") if ok else \
        f"FAIL: p(join) differs by {d:.2g} (tol {tol:g}), {unexplained} unexplained boundary flip(s)"
    text += lex_note
    return Verdict(f"{d:.1e} (p)", ok, text + f"; least CPU margin |p-0.5| {margin:.3f}")


def parse_student_run(ctx: Ctx, device: str, fp16: bool | None):
    """`segment --parse dependency` (the default student, zh-parse-mini) on the tagger's words."""
    from nlptool.segment.api import segment_with_tagger
    from nlptool.segment.biaffine import arc_log_probs, parse_with_student

    name = builtin("zh-parse-mini")
    if name is None or builtin("zh-seg-mini") is None:
        raise Skip("skipped: no zh-parse-mini / zh-seg-mini")
    words = [[w for w in r.words if w.strip()] for r in segment_with_tagger(_load(builtin("zh-seg-mini"), "char-tagger", "cpu"),
                                                                             ctx.texts, impacts=False)]
    parser = _load(name, "dependency-parser", device)
    lps = arc_log_probs(parser, words)
    heads = parse_with_student(parser, words)
    sync(device)
    return {"heads": heads, "logp": [lp.tolist() for lp in lps]}


def parse_student_compare(cpu, gpu, tol: float) -> Verdict:
    """Arc log-probabilities within ``tol`` (absolute); the trees identical in at least 99 % of the
    sentences (a near-tie between two trees may flip)."""
    flat_c = [x for lp in cpu["logp"] for row in lp for x in row]
    flat_g = [x for lp in gpu["logp"] for row in lp for x in row]
    d = rel_diff(flat_c, flat_g, scale=1.0)
    differ = sum(a != b for a, b in zip(cpu["heads"], gpu["heads"]))
    ok = d <= tol and differ <= 0.01 * max(1, len(cpu["heads"]))
    text = f"log-probs within {tol:g}, {differ} of {len(cpu['heads'])} trees differ" if ok else \
        f"FAIL: log-probs differ by {d:.2g} (tol {tol:g}), {differ} trees differ"
    return Verdict(f"{d:.1e} (log p)", ok, text)


def seg_masking_run(ctx: Ctx, device: str, fp16: bool | None):
    from nlptool.segment.api import AUTO_RATIO, auto_fallback, segment_texts

    loaded = _load("zh-bert-mini", "encoder", device, fp16)
    fb = auto_fallback(loaded, layer=-1, batch_size=64)
    res = segment_texts(loaded, ctx.texts, threshold="auto", layer=-1, batch_size=64, fallback=fb)
    sync(device)
    return {"words": [r.words for r in res], "impacts": [r.impacts for r in res], "fallback": fb, "ratio": AUTO_RATIO}


def _masking_margins(res) -> list[float]:
    """Per neighbour, the CPU's relative distance to the decision: |d / mean(d) / ratio - 1| in a
    clause of 3+ units, |d / fallback - 1| in a two-unit clause."""
    import numpy as np

    out = []
    for text_imp in res["impacts"]:
        for c in text_imp:
            d = np.asarray(c, dtype=np.float64)
            if d.size == 1:
                out.append(abs(d[0] / max(res["fallback"], 1e-12) - 1))
            elif d.size > 1:
                m = max(float(d.mean()), 1e-12)
                out.extend(np.abs(d / m / res["ratio"] - 1).tolist())
    return out


def seg_masking_compare(cpu, gpu, tol: float) -> Verdict:
    """Neighbour impacts d within ``tol`` relative to the largest d; words identical, except at a
    neighbour whose CPU decision margin (:func:`_masking_margins`) is within ``2 tol`` (d and the
    clause mean both carry the error)."""
    flat_c = [x for t in cpu["impacts"] for c in t for x in c]
    flat_g = [x for t in gpu["impacts"] for c in t for x in c]
    d = rel_diff(flat_c, flat_g)
    margins = _masking_margins(cpu)
    near = sum(m <= 2 * tol for m in margins)
    flips = 0
    for wc, wg in zip(cpu["words"], gpu["words"]):
        flips += len(cut_offsets(wc) ^ cut_offsets(wg))
    ok = d <= tol and flips <= near
    n = len(margins)
    if not ok:
        return Verdict(f"{d:.1e} (d)", False, f"FAIL: impacts differ by {d:.2g} (tol {tol:g}) or {flips} boundary flip(s) "
                       f"with only {near} decision(s) within the tolerance")
    what = "words identical" if flips == 0 else f"{flips} of {n} boundaries flipped, all within the fp16 margin ({near} near)"
    return Verdict(f"{d:.1e} (d)", True, f"{what}; impacts within {tol:g}")


# ---------------------------------------------------------------------------------- similarity


SIM_REG = 0.05


def _sim_pairs(ctx: Ctx) -> tuple[list[str], list[str]]:
    t = [x for x in ctx.texts if x.strip() and len(x) < 200]
    t = t[:5] if ctx.quick else t[:16]
    a = t[:-1] + [t[0]]
    b = t[1:] + [t[0]]  # the last pair is identical: distance exactly 0
    return a, b


def similarity_run(solver: str):
    def run(ctx: Ctx, device: str, fp16: bool | None):
        need("ot")  # POT: ot.emd2 (exact) and ot.batch (Sinkhorn on the torch backend)
        from nlptool.models import resolve_device
        from nlptool.similarity import load_embedder, model_kind, score_pairs

        name = "zh-sim-mini" if builtin("zh-sim-mini") else "zh-bert-mini"
        loaded = _load(name, model_kind(name), device, fp16)
        emb = load_embedder(loaded, batch_size=16)
        a, b = _sim_pairs(ctx)
        dev = resolve_device(device) if solver == "sinkhorn" else "cpu"  # as the CLI does
        res = score_pairs(emb, a, b, metric="both", solver=solver, reg=SIM_REG if solver == "sinkhorn" else None, device=dev)
        sync(device)
        bad = [r for r in res if isinstance(r, Exception)]
        if bad:
            raise RuntimeError(f"{len(bad)} pair(s) failed: {bad[0]}")
        return {"wrd": [r["wrd"] for r in res], "wmd": [r["wmd"] for r in res], "model": name}

    return run


def similarity_compare(cpu, gpu, tol: float) -> Verdict:
    d_wrd = rel_diff(cpu["wrd"], gpu["wrd"], scale=1.0)
    d_wmd = rel_diff(cpu["wmd"], gpu["wmd"])
    ok = d_wrd <= tol and d_wmd <= tol and abs(gpu["wrd"][-1]) <= 1e-6 and abs(gpu["wmd"][-1]) <= 1e-6
    text = f"WRD within {tol:g} abs, WMD within {tol:g} rel, identical pair 0" if ok else \
        f"FAIL: WRD diff {d_wrd:.2g}, WMD rel diff {d_wmd:.2g} (tol {tol:g}), identical pair {gpu['wrd'][-1]:.2g}"
    return Verdict(f"{d_wrd:.1e} (WRD)", ok, f"{text} ({cpu['model']})")


# ---------------------------------------------------------------------------- tokenize-sample


def tokenize_sample_run(ctx: Ctx, device: str, fp16: bool | None):
    """CPU-only by design (a pure-Python lattice); a generated dictionary so jieba is not needed.
    The check: the same seed gives the same samples twice, and every sample tiles the text."""
    from nlptool.tokenize_sample.unigram import load_unigram_model, tokenize

    words = {}
    for t in ctx.texts:
        for i in range(len(t)):
            for n in (1, 2, 3):
                w = t[i:i + n]
                if len(w) == n and w.strip():
                    words[w] = words.get(w, 0) + (50 if n == 1 else 3)
    path = ctx.tmp / "dict.txt"
    path.write_text("".join(f"{w} {c}\n" for w, c in words.items()), encoding="utf-8")
    model = load_unigram_model(str(path), None, None)
    texts = [t for t in ctx.texts if t][:10]
    out = []
    for _ in range(2):
        rng = random.Random(7)
        out.append([tokenize(model, t, 0.1, num_samples=3, rng=rng) for t in texts])
    for t, r in zip(texts, out[0]):
        for s in r.get("samples", []):
            if "".join(s) != t:
                raise RuntimeError(f"a sample does not tile its text: {s}")
    return {"same": out[0] == out[1], "n": len(texts)}


def tokenize_sample_compare(cpu, gpu, tol: float) -> Verdict:  # never called: CPU only
    raise AssertionError


def tokenize_sample_cpu_verdict(cpu) -> Verdict:
    ok = cpu["same"]
    return Verdict("0 (same seed twice)" if ok else "differs", ok,
                   "CPU-only by design (pure-Python lattice, no model); seed reproducible" if ok else
                   "FAIL: the same --seed gave different samples")


# -------------------------------------------------------------------------------- attribute

ATTR_TEXTS = ["这家酒店的服务态度很好，房间也很干净。", "菜太难吃了，服务员态度恶劣，再也不来了。", "还行吧。",
              "快递很快，包装完好，手机质量不错，推荐购买！"]


def attribute_run(ctx: Ctx, device: str, fp16: bool | None):
    from nlptool.attribute import attribute_texts

    name = builtin("zh-sentiment-mini")
    if name is None:
        raise Skip("skipped: built-in zh-sentiment-mini missing")
    from nlptool.models import load_model

    loaded = load_model(name, kind="sequence-classification", device=device, fp16=fp16)
    res = attribute_texts(loaded, ATTR_TEXTS + ctx.texts[:2], steps=50, batch_size=8)
    sync(device)
    return res


def attribute_compare(cpu, gpu, tol: float) -> Verdict:
    """Same predicted label (unless the CPU's two top probabilities are within ``tol``); scores
    within ``tol`` relative to |F(x) - F(baseline)|; the GPU's completeness |delta| within the
    CLI's warning bound (5 % of |F(x) - F(baseline)|) or no worse than the CPU's plus ``tol``."""
    from nlptool.attribute import DELTA_WARN

    worst = 0.0
    problems = []
    for k, (c, g) in enumerate(zip(cpu, gpu)):
        if c["label"] != g["label"]:
            if abs(c["probability"] - 0.5) > tol:
                problems.append(f"text {k}: label {c['label']} vs {g['label']}")
            continue
        span = max(abs(c["f_x"] - c["f_baseline"]), 1e-6)
        worst = max(worst, rel_diff(c["scores"], g["scores"], scale=span))
        if g["delta_ratio"] > max(DELTA_WARN, c["delta_ratio"] + tol):
            problems.append(f"text {k}: GPU |delta| {g['delta_ratio']:.1%} of |F(x)-F(x')|")
    ok = worst <= tol and not problems
    text = f"labels identical, scores within {tol:g} of |F(x)-F(x')|, delta within bound" if ok else \
        "FAIL: " + ("; ".join(problems) or f"scores differ by {worst:.2g} (tol {tol:g})")
    return Verdict(f"{worst:.1e} (score)", ok, text)


# ----------------------------------------------------------------------------------- qa-gen


def qa_gen_run(ctx: Ctx, device: str, fp16: bool | None):
    from nlptool.qagen import check_generator, generate_qa_pairs

    name = builtin("zh-qa-gen-mini") or ctx.trained.get("train qa-gen")
    if name is None:
        raise Skip("skipped: no zh-qa-gen-mini (built-in missing, train qa-gen row failed)")
    loaded = _load(name, "masked-lm", device, fp16)
    st = check_generator(loaded)
    res = generate_qa_pairs(
        loaded, ctx.passages, num_pairs=4, seed=0, batch_size=8, top_p=st["top_p"], beam_size=st["beam_size"],
        max_answer_len=st["max_answer_len"], max_question_len=st["max_question_len"],
        max_passage_chars=st["max_passage_chars"], no_repeat_ngram=st["no_repeat_ngram"],
        length_penalty=st["length_penalty"], answer_marks=st["answer_marks"],
    )
    sync(device)
    return {"pairs": [r.pairs for r in res], "candidates": sum(r.candidates for r in res),
            "model": "built-in" if builtin("zh-qa-gen-mini") else "trained here"}


def _pairs_valid(passages, pairs) -> bool:
    return all(p["answer"] == text[p["answer_start"]:p["answer_start"] + len(p["answer"])]
               for text, ps in zip(passages, pairs) for p in ps)


def qa_gen_compare(exact: bool):
    def compare(cpu, gpu, tol: float, ctx: Ctx | None = None) -> Verdict:
        keys_c = [(p["question"], p["answer"], p["answer_start"]) for ps in cpu["pairs"] for p in ps]
        keys_g = [(p["question"], p["answer"], p["answer_start"]) for ps in gpu["pairs"] for p in ps]
        same = sum(1 for x in keys_g if x in set(keys_c))
        n = max(len(keys_c), len(keys_g))
        sc = {(p["question"], p["answer"]): p["score"] for ps in cpu["pairs"] for p in ps}
        d = max([abs(p["score"] - sc[(p["question"], p["answer"])]) for ps in gpu["pairs"] for p in ps
                 if (p["question"], p["answer"]) in sc] or [0.0])
        valid = ctx is None or _pairs_valid(ctx.passages, gpu["pairs"])
        identical = keys_c == keys_g
        if exact:
            ok = identical and d <= 1e-3
            text = f"pairs identical ({n}), scores within 1e-3 nats" if ok else \
                f"FAIL: {same}/{n} pairs identical, score diff {d:.2g}"
        else:
            ok = valid
            text = ("pairs identical" if identical else f"{same}/{n} pairs identical: fp16 logits move sampled tokens "
                    "near a nucleus boundary (docs/gpu.md)") + ("" if valid else "; FAIL: an answer is not its passage span")
        return Verdict(f"{d:.1e} (nats/token)", ok, text + f" [{cpu['model']} model]")

    return compare


# ----------------------------------------------------------------------------- split-valid


def split_valid_run(ctx: Ctx, device: str, fp16: bool | None):
    from nlptool.split_valid.adversarial import adversarial_validation, model_features

    train = [t for t in ctx.texts if t.strip()][:20]
    test = [f"{th}{g}，{c}的首都是{city}。" for (c, city), th, g in zip(CAPITALS, THINGS * 2, (GOOD + BAD) * 2)][:12]
    loaded = _load("zh-bert-mini", "encoder", device, fp16)
    X = model_features(train + test, loaded, batch_size=16)
    sync(device)
    res = adversarial_validation(train, test, features="model", vectors=X, folds=4, n_boot=0, seed=0)
    return {"X": X, "auc": res.auc}


def split_valid_compare(cpu, gpu, tol: float) -> Verdict:
    d = rel_diff(cpu["X"], gpu["X"])
    da = abs(cpu["auc"] - gpu["auc"])
    ok = d <= tol and da <= TOL_AUC
    text = f"features within {tol:g}, AUC {cpu['auc']:.3f} vs {gpu['auc']:.3f}" if ok else \
        f"FAIL: features differ by {d:.2g} (tol {tol:g}) or AUC by {da:.3f} (tol {TOL_AUC})"
    return Verdict(f"{d:.1e} (features)", ok, text)


# -------------------------------------------------------------------------------- train rows


class LossRecorder:
    """Per-step training losses, from inside this process: ``Trainer.training_step`` (mlm,
    classifier, qa-gen, reader) and the segmenter's weighted BCE; the similarity trainer reports
    its own first/last losses in metrics.json."""

    def __init__(self):
        self.losses: list[float] = []
        self._undo: list[Callable[[], None]] = []

    def __enter__(self):
        import torch.nn.functional as F
        from transformers import Trainer

        rec = self.losses
        orig_step = Trainer.training_step

        def training_step(self_, *a, **kw):
            loss = orig_step(self_, *a, **kw)
            try:
                rec.append(float(loss.detach().float().mean()))
            except Exception:  # noqa: BLE001 - recording must never break training
                pass
            return loss

        Trainer.training_step = training_step
        self._undo.append(lambda: setattr(Trainer, "training_step", orig_step))
        orig_bce = F.binary_cross_entropy_with_logits

        def bce(*a, **kw):
            out = orig_bce(*a, **kw)
            w = kw.get("weight")
            if kw.get("reduction") == "sum" and w is not None and out.requires_grad:
                rec.append(float(out.detach()) / max(1.0, float(w.sum())))
            return out

        F.binary_cross_entropy_with_logits = bce
        self._undo.append(lambda: setattr(F, "binary_cross_entropy_with_logits", orig_bce))
        return self

    def __exit__(self, *exc):
        for u in reversed(self._undo):
            u()
        return False


def train_args(ctx: Ctx, data: dict[str, Path], command: str, out: Path, device: str) -> list[str]:
    steps = "4" if ctx.quick else "12"
    base = ctx.base
    common = ["--out", str(out), "--device", device, "--quiet"]
    if command == "mlm":
        # a small shape: the row checks the mixed-precision path, not the base model (built by its stage script)
        shape = ["--layers", "2", "--hidden", "64", "--heads", "2"] if ctx.quick else ["--layers", "2", "--hidden", "128", "--heads", "4"]
        return ["train", "mlm", str(data["corpus"]), *common, "--max-steps", steps, "--batch-size", "16",
                "--max-chars", "62", "--min-count", "1", "--learning-rate", "2e-3", *shape]
    if command == "classifier":
        return ["train", "classifier", str(data["classifier"]), *common, "-m", base, "--max-steps", steps,
                "--batch-size", "16", "--learning-rate", "2e-4", "--max-length", "32", "--holdout", "0.2"]
    if command == "similarity":
        return ["train", "similarity", str(data["pairs"]), *common, "-m", base, "--max-steps", steps,
                "--batch-size", "16", "--max-length", "32"]
    if command == "segmenter":  # the teacher stays zh-bert-mini: the tagger's embeddings are 256 wide
        return ["train", "segmenter", str(data["corpus"]), *common, "-m", "zh-bert-mini", "--rounds", "1",
                "--teacher-chars", "600" if ctx.quick else "1500", "--dev-lines", "0", "--epochs", "2",
                "--batch-size", "16"]
    if command == "qa-gen":
        return ["train", "qa-gen", str(data["qa"]), *common, "-m", base, "--max-steps", steps, "--batch-size", "8",
                "--learning-rate", "5e-4", "--holdout", "0.2"]
    if command == "reader":
        return ["train", "reader", str(data["qa"]), *common, "-m", base, "--max-steps", steps, "--batch-size", "8",
                "--learning-rate", "5e-4", "--holdout", "0.2"]
    raise ValueError(command)


#: the train commands built on transformers' ``Trainer`` (the others are plain torch loops)
TRAINER_COMMANDS = ("mlm", "classifier", "qa-gen", "reader")


def train_run(command: str, data_ref: dict):
    def run(ctx: Ctx, device: str, fp16: bool | None):
        if command in TRAINER_COMMANDS:
            need("accelerate")  # transformers' Trainer refuses to start without it
        from typer.testing import CliRunner

        from nlptool.cli import app

        out = ctx.tmp / f"train-{command}-{ctx.half}"
        args = train_args(ctx, data_ref, command, out, device)
        with LossRecorder() as rec:
            result = CliRunner().invoke(app, args)
        sync(device)
        if result.exit_code != 0:
            msg = (getattr(result, "stderr", "") or result.output or "").strip().splitlines()
            exc = result.exception if result.exception and not isinstance(result.exception, SystemExit) else None
            raise RuntimeError(f"exit {result.exit_code}: " + (msg[-1] if msg else repr(exc)))
        losses = list(rec.losses)
        if not losses:
            for name in ("metrics.json", "training_metrics.json"):
                p = out / name
                if p.is_file():
                    m = json.loads(p.read_text(encoding="utf-8"))
                    if "loss_first" in m:
                        losses = [m["loss_first"], m["loss_last"]]
        if ctx.half == "cpu":
            ctx.trained[f"train {command}"] = str(out)
        return {"losses": losses, "out": str(out)}

    return run


def _loss_ok(losses: list[float]) -> tuple[bool, str]:
    if not losses:
        return False, "no loss recorded"
    if not all(math.isfinite(x) for x in losses):
        return False, "non-finite loss"
    k = max(1, len(losses) // 3)
    first, last = sum(losses[:k]) / k, sum(losses[-k:]) / k
    if last > first * 1.02 + 1e-6:
        return False, f"loss rose {first:.3f} -> {last:.3f}"
    return True, f"{first:.3f} -> {last:.3f}"


def train_cpu_verdict(cpu) -> Verdict:
    ok, how = _loss_ok(cpu["losses"])
    return Verdict("—", ok, f"CPU loss {how}" if ok else f"FAIL: CPU {how}")


def train_compare(cpu, gpu, tol: float) -> Verdict:
    ok_c, how_c = _loss_ok(cpu["losses"])
    ok_g, how_g = _loss_ok(gpu["losses"])
    d = abs(cpu["losses"][0] - gpu["losses"][0]) / max(abs(cpu["losses"][0]), 1e-12) if cpu["losses"] and gpu["losses"] else math.inf
    ok = ok_c and ok_g
    text = f"mixed precision: GPU loss {how_g} (CPU {how_c}), finite" if ok else f"FAIL: GPU {how_g}; CPU {how_c}"
    return Verdict(f"{d:.1e} (first loss)", ok, text)


# ------------------------------------------------------------------------------------ the rows


@dataclass
class Check:
    command: str
    run: Callable  # (ctx, device, fp16) -> result
    compare: Callable | None  # (cpu, gpu, tol) -> Verdict; None = CPU only
    family: str  # rows of one family share the CPU result
    fp16: bool | None = None  # on CUDA: None = the CLI's default
    tol: float = TOL_FP16
    cpu_verdict: Callable | None = None  # (cpu) -> Verdict, for the CPU half
    wants_ctx: bool = False


def checks(data_ref: dict) -> list[Check]:
    out = []
    for cmd in ("mlm", "classifier", "similarity", "segmenter", "qa-gen", "reader"):
        out.append(Check(f"train {cmd} (mixed precision)", train_run(cmd, data_ref), train_compare, f"train-{cmd}",
                         cpu_verdict=train_cpu_verdict))
    out += [
        Check("segment --method tagger (fp32)", seg_tagger_run, seg_tagger_compare, "seg-tagger", tol=TOL_FP32),
        Check("segment --parse dependency (student, fp32)", parse_student_run, parse_student_compare, "parse-student",
              tol=TOL_FP32),
        Check("segment --method masking (fp32)", seg_masking_run, seg_masking_compare, "seg-masking", fp16=False, tol=TOL_FP32),
        Check("segment --method masking (fp16, CLI default)", seg_masking_run, seg_masking_compare, "seg-masking", fp16=True),
        Check("similarity --solver emd (fp16)", similarity_run("emd"), similarity_compare, "sim-emd", fp16=True, tol=TOL_SIM),
        Check("similarity --solver sinkhorn (fp16)", similarity_run("sinkhorn"), similarity_compare, "sim-sinkhorn",
              fp16=True, tol=TOL_SIM),
        Check("tokenize-sample", tokenize_sample_run, None, "tokenize", cpu_verdict=tokenize_sample_cpu_verdict),
        Check("attribute (fp32)", attribute_run, attribute_compare, "attribute", fp16=False, tol=TOL_FP32),
        Check("attribute (fp16, CLI default)", attribute_run, attribute_compare, "attribute", fp16=True, tol=5e-2),
        Check("qa-gen --seed 0 (fp32)", qa_gen_run, qa_gen_compare(exact=True), "qa-gen", fp16=False, tol=TOL_FP32,
              wants_ctx=True),
        Check("qa-gen --seed 0 (fp16, CLI default)", qa_gen_run, qa_gen_compare(exact=False), "qa-gen", fp16=True,
              wants_ctx=True),
        Check("split-valid --features model (fp16)", split_valid_run, split_valid_compare, "split-valid", fp16=True),
    ]
    return out


def short_error(exc: BaseException) -> str:
    msg = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {msg[0][:160] if msg else ''}"


def timed(fn, *args):
    t0 = time.perf_counter()
    res = fn(*args)
    return res, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--markdown", metavar="PATH", help="also write the table as markdown to this file")
    ap.add_argument("--quick", action="store_true", help="fewer texts, tiny training runs (CI)")
    ap.add_argument("--only", action="append", default=[], metavar="SUBSTRING", help="run only rows whose command contains it")
    ap.add_argument("--device", default="cuda", help="the device compared with the CPU (default cuda; 'cpu' runs the "
                    "second half on the CPU too, fp16 rows in CPU half precision: a dry run of the comparisons)")
    args = ap.parse_args(argv)

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # built-in models only: never the network
    import torch

    from nlptool.cli.run import quiet_libraries

    quiet_libraries()
    torch.set_num_threads(max(1, min(8, os.cpu_count() or 1)))
    cuda = torch.cuda.is_available() and args.device.startswith("cuda")
    dry = args.device == "cpu"  # the comparisons against the CPU itself (fp16 rows: CPU half precision)
    t_start = time.perf_counter()
    init_s = None
    if cuda:  # pay CUDA's context creation once, outside the rows
        t0 = time.perf_counter()
        (torch.ones(64, 64, device=args.device) @ torch.ones(64, 64, device=args.device)).sum().item()
        init_s = time.perf_counter() - t0

    with tempfile.TemporaryDirectory(prefix="nlptool-gpu-check-") as tmp:
        ctx = Ctx(quick=args.quick, tmp=Path(tmp))
        make_inputs(ctx)
        data_ref = write_train_data(ctx)
        rows: list[Row] = []
        cpu_cache: dict[str, tuple[Any, float] | BaseException] = {}
        for chk in checks(data_ref):
            if args.only and not any(s in chk.command for s in args.only):
                continue
            if args.quick and chk.command.startswith("train ") and chk.family not in ("train-mlm", "train-segmenter"):
                ctx.base = ctx.trained.get("train mlm", ctx.base)  # --quick: fine-tune the tiny model just trained
            row = Row(chk.command)
            rows.append(row)
            print(f"[gpu-check] {chk.command} ...", file=sys.stderr, flush=True)
            # -- the CPU half (once per family)
            if chk.family not in cpu_cache:
                try:
                    cpu_cache[chk.family] = timed(chk.run, ctx, "cpu", False)
                except BaseException as exc:  # noqa: BLE001 - one row never stops the others
                    if isinstance(exc, KeyboardInterrupt):
                        raise
                    cpu_cache[chk.family] = exc
                    if not isinstance(exc, Skip):
                        traceback.print_exc(file=sys.stderr)
            cached = cpu_cache[chk.family]
            if isinstance(cached, Skip):
                row.verdict = str(cached)
                continue
            if isinstance(cached, BaseException):
                row.verdict, row.failed = f"FAIL on the CPU: {short_error(cached)}", True
                continue
            cpu_res, row.cpu_s = cached
            if chk.compare is None or not (cuda or dry):
                v = chk.cpu_verdict(cpu_res) if chk.cpu_verdict else Verdict("—", True, "CPU ran")
                row.diff = v.diff
                row.verdict = v.text if chk.compare is None else ("no CUDA; " + v.text if not v.ok else "no CUDA: CPU half ok" +
                                                                    (f" ({v.text})" if chk.cpu_verdict else ""))
                row.failed = not v.ok
                continue
            # -- the GPU half
            try:
                ctx.half = "gpu"
                gpu_res, row.gpu_s = timed(chk.run, ctx, args.device, chk.fp16)
                v = chk.compare(cpu_res, gpu_res, chk.tol, ctx) if chk.wants_ctx else chk.compare(cpu_res, gpu_res, chk.tol)
                row.diff, row.verdict, row.failed = v.diff, v.text, not v.ok
            except Skip as exc:
                row.verdict = str(exc)
            except Exception as exc:  # noqa: BLE001
                traceback.print_exc(file=sys.stderr)
                row.verdict, row.failed = f"FAIL on CUDA: {short_error(exc)}", True
            finally:
                ctx.half = "cpu"
                if cuda:
                    torch.cuda.empty_cache()

    total = time.perf_counter() - t_start
    if cuda:
        dev = torch.cuda.get_device_name(torch.device(args.device))
        head = (f"nlptool gpu-check: {dev}, torch {torch.__version__}; CUDA start-up {init_s:.1f} s; total {total:.0f} s"
                + (" (--quick)" if args.quick else ""))
    elif dry:
        head = f"nlptool gpu-check: dry run, the second half on the CPU too, torch {torch.__version__}; total {total:.0f} s"
    else:
        head = f"nlptool gpu-check: CPU only, torch {torch.__version__}; total {total:.0f} s" + (" (--quick)" if args.quick else "")
    table = text_table(rows)
    print(head)
    print(table, end="")
    n_fail = sum(r.failed for r in rows)
    if args.markdown:
        Path(args.markdown).write_text(head + "\n\n" + markdown_table(rows), encoding="utf-8")
    if n_fail:
        print(f"{n_fail} row(s) FAILED")
        return 1
    if dry:
        print("dry run passed (second half on the CPU)")
        return 0
    if not cuda:
        print("no CUDA: the CPU half ran; run this on a machine with a GPU for the comparison")
        return 0
    print("all comparisons passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
