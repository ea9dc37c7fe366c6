"""Fine-tuning a BERT encoder for sentence similarity: CoSENT on labelled pairs, SimCSE on raw text.

Sources:

* Su Jianlin, "CoSENT（一）：比Sentence-BERT更有效的句向量方案", kexue.fm, 2022-01-06: train the
  cosine directly with a ranking loss over every pair of pairs in the batch,
  ``log(1 + sum_{s_i > s_j} exp(lambda (cos_j - cos_i)))``, ``lambda = 20``
  (:func:`cosent_loss`).
* Gao, Yao, Chen, "SimCSE: Simple Contrastive Learning of Sentence Embeddings", EMNLP 2021
  (unsupervised variant; Su's Chinese experiments: "中文任务还是SOTA吗？我们给SimCSE补充了一些实验",
  kexue.fm, 2021-04-26): each sentence is encoded twice with different dropout masks, the two
  views are positives and the other sentences of the batch negatives, InfoNCE with temperature
  0.05 (:func:`simcse_loss`).

The sentence vector is the mean of the last layer's token vectors over the text's own tokens
(``[CLS]``/``[SEP]``/padding excluded): the same vectors that ``nlptool similarity`` transports
with WMD/WRD and averages for ``--pool mean``, so the fine-tuning shapes the token vectors too.

Heavy imports (torch, transformers, scipy) are inside functions. Nothing here imports jieba.
"""

from __future__ import annotations

import json
import math
import os
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputDataError, UsageError
from ..records import check_json_field, data_lines, parse_json_object
from ..training import Card, TrainSettings
from ..text import char_jaccard

METHODS = ("cosent", "simcse")
POOLINGS = ("mean", "cls")


# --------------------------------------------------------------------------------------------
# data


@dataclass
class Pairs:
    """Labelled sentence pairs: ``s1[i]``, ``s2[i]`` and a graded score ``score[i]`` (any scale:
    CoSENT only uses the order of the scores)."""

    s1: list[str] = field(default_factory=list)
    s2: list[str] = field(default_factory=list)
    score: list[float] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.score)

    def subset(self, idx: Sequence[int]) -> "Pairs":
        return Pairs([self.s1[i] for i in idx], [self.s2[i] for i in idx], [self.score[i] for i in idx])


def read_pairs(paths: Sequence[str | os.PathLike], *, a_key: str = "sentence1", b_key: str = "sentence2",
               label_key: str = "label") -> Pairs:
    """Read labelled pairs: TSV lines ``s1 <TAB> s2 <TAB> score`` (Chinese STS-B, LCQMC, ...) or
    JSONL ``{"sentence1", "sentence2", "label"}`` (a line starting with ``{`` is JSON).

    A JSON line follows the training-data rules of ``train classifier``
    (:func:`nlptool.records.check_json_field`): the sentences must be JSON strings (null is an empty
    sentence) and the score a JSON number; nothing is converted with ``str()`` or ``float()``.

    Raises:
        UsageError: a file does not exist.
        InputDataError: invalid UTF-8, a line with too few columns, a missing field, a sentence
            that is not a string, a score that is not a (finite) number (names the file and the line).
    """
    out = Pairs()
    for path in paths:
        path = str(path)
        if not os.path.isfile(path):
            raise UsageError(f"{path}: no such file")
        for lineno, line in data_lines(path):
            if not line.strip():
                continue
            if line.lstrip().startswith("{"):
                obj = parse_json_object(line, path, lineno)
                missing = [k for k in (a_key, b_key, label_key) if k not in obj]
                if missing:
                    raise InputDataError(f"missing field(s) {', '.join(missing)}", path, lineno)
                a, b, s = obj[a_key], obj[b_key], obj[label_key]
                check_json_field(a, "first sentence", ("string", "null"), path, lineno)
                check_json_field(b, "second sentence", ("string", "null"), path, lineno)
                check_json_field(s, "score", ("number",), path, lineno)
                a, b, s = a or "", b or "", float(s)
            else:
                cols = line.split("\t")
                if len(cols) < 3:
                    raise InputDataError(f"expected 3 tab-separated columns (s1, s2, score), found {len(cols)}",
                                         path, lineno)
                a, b, s = cols[0], cols[1], cols[2]
                try:
                    s = float(s)
                except ValueError:
                    raise InputDataError(f"score {s!r} is not a number", path, lineno) from None
            if not math.isfinite(s):
                raise InputDataError(f"score {s!r} is not finite", path, lineno)
            out.s1.append(a)
            out.s2.append(b)
            out.score.append(s)
    return out


def read_sentences(paths: Sequence[str | os.PathLike], *, text_key: str = "text", max_chars: int = 0) -> list[str]:
    """Raw sentences for SimCSE: one per non-empty line, or the ``text_key`` field of a JSONL line
    (a JSON string; null counts as empty; see :func:`nlptool.records.check_json_field`); a TSV pair
    file (``s1 <TAB> s2 <TAB> score``) gives both sentences (its scores are ignored).
    ``max_chars > 0`` cuts each line to that many characters. Duplicates are kept once.

    Raises:
        UsageError: a file does not exist.
        InputDataError: invalid UTF-8, a JSON line without ``text_key`` or whose text is not a string.
    """
    seen: dict[str, None] = {}
    for path in paths:
        path = str(path)
        if not os.path.isfile(path):
            raise UsageError(f"{path}: no such file")
        for lineno, line in data_lines(path):
            line = line.strip()
            if not line:
                continue
            if line.startswith("{"):
                obj = parse_json_object(line, path, lineno)
                if text_key not in obj:
                    raise InputDataError(f"missing field {text_key!r}", path, lineno)
                check_json_field(obj[text_key], "text", ("string", "null"), path, lineno)
                texts = [obj[text_key] or ""]
            else:
                cols = line.split("\t")
                texts = cols[:2] if len(cols) >= 3 else [line]
            for t in texts:
                t = t.strip()[:max_chars] if max_chars > 0 else t.strip()
                if t:
                    seen.setdefault(t, None)
    return list(seen)


def split_holdout(n: int, holdout: float, seed: int) -> tuple[list[int], list[int]]:
    """A seeded random ``(train, held-out)`` split of ``range(n)``; ``holdout`` in ``[0, 1)``."""
    if not 0.0 <= holdout < 1.0:
        raise UsageError(f"holdout share {holdout}: expected a number in [0, 1)")
    idx = list(range(n))
    random.Random(seed).shuffle(idx)
    k = int(round(n * holdout))
    return sorted(idx[k:]), sorted(idx[:k])


# --------------------------------------------------------------------------------------------
# losses


def cosent_loss(cos, labels, scale: float = 20.0):
    """CoSENT loss (Su 2022): ``log(1 + sum_{(i, j): s_i > s_j} exp(scale * (cos_j - cos_i)))``.

    Args:
        cos: ``(B,)`` cosine of each pair (torch tensor, any float dtype).
        labels: ``(B,)`` gold scores; only their order matters, equal scores give no term.
        scale: ``lambda`` (20 in the post).

    Returns:
        A scalar tensor (nats), ``>= 0``; exactly 0 when no two scores in the batch differ.
    """
    import torch

    cos = cos.float()
    labels = labels.to(cos.device).float()
    diff = scale * (cos[None, :] - cos[:, None])  # [i, j] = lambda (cos_j - cos_i)
    keep = labels[:, None] > labels[None, :]  # s_i > s_j
    diff = diff.masked_fill(~keep, float("-inf")).reshape(-1)
    return torch.logsumexp(torch.cat([torch.zeros(1, device=cos.device), diff]), dim=0)


def simcse_loss(z1, z2, temperature: float = 0.05):
    """Unsupervised SimCSE loss (Gao et al. 2021, eq. 1): InfoNCE where ``z1[i]``, ``z2[i]`` (two
    dropout views of sentence ``i``) are positives and ``z2[j], j != i`` negatives.

    Args:
        z1, z2: ``(B, hidden)`` sentence vectors.
        temperature: ``tau`` (0.05 in the paper).

    Returns:
        Scalar mean cross-entropy (nats); ``log B`` for random vectors.
    """
    import torch
    import torch.nn.functional as F

    sim = F.normalize(z1.float(), dim=-1) @ F.normalize(z2.float(), dim=-1).T / temperature
    return F.cross_entropy(sim, torch.arange(sim.shape[0], device=sim.device))


def pool(hidden, content_mask, pooling: str = "mean"):
    """Sentence vectors ``(B, hidden)`` from token vectors ``(B, T, hidden)``: ``mean`` over the
    positions where ``content_mask`` ``(B, T)`` is 1 (the text's own tokens), or ``cls`` (position 0).

    Raises:
        UsageError: unknown pooling.
    """
    if pooling == "cls":
        return hidden[:, 0]
    if pooling != "mean":
        raise UsageError(f"pooling {pooling!r}: expected one of {', '.join(POOLINGS)}")
    m = content_mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * m).sum(1) / m.sum(1).clamp_min(1.0)


class _Batcher:
    """Tokenise texts into padded tensors with a content mask (special tokens and padding 0)."""

    def __init__(self, tokenizer, max_length: int):
        self.tok = tokenizer
        self.max_length = max_length

    def __call__(self, texts: Sequence[str], device):

        enc = self.tok(list(texts), add_special_tokens=True, truncation=True, max_length=self.max_length,
                       padding=True, return_tensors="pt", return_special_tokens_mask=True)
        content = enc["attention_mask"] * (1 - enc["special_tokens_mask"])
        batch = {"input_ids": enc["input_ids"].to(device), "attention_mask": enc["attention_mask"].to(device)}
        if "token_type_ids" in enc:
            batch["token_type_ids"] = enc["token_type_ids"].to(device)
        return batch, content.to(device)


def encode(model, tokenizer, texts: Sequence[str], *, pooling: str = "mean", max_length: int = 128,
           batch_size: int = 128, device=None):
    """Sentence vectors ``(len(texts), hidden)`` float32 numpy, in input order (batches sorted by
    length under :func:`torch.inference_mode`)."""
    import numpy as np
    import torch

    device = device or next(model.parameters()).device
    batcher = _Batcher(tokenizer, max_length)
    from ..batching import length_order

    order = length_order([len(t) for t in texts])
    out = np.zeros((len(texts), model.config.hidden_size), dtype=np.float32)
    was_training = model.training
    model.eval()
    with torch.inference_mode():
        for s in range(0, len(order), batch_size):
            idx = order[s:s + batch_size]
            batch, content = batcher([texts[i] for i in idx], device)
            h = model(**batch).last_hidden_state
            out[idx] = pool(h.float(), content, pooling).cpu().numpy()
    model.train(was_training)
    return out


def spearman_of(model, tokenizer, pairs: Pairs, *, pooling: str = "mean", max_length: int = 128,
                batch_size: int = 128) -> float:
    """Spearman correlation (in ``[-1, 1]``) between the pairs' gold scores and the cosine of their
    sentence vectors."""
    import numpy as np
    from scipy.stats import spearmanr

    if len(pairs) < 2:
        return float("nan")
    texts = list(dict.fromkeys(pairs.s1 + pairs.s2))
    pos = {t: i for i, t in enumerate(texts)}
    v = encode(model, tokenizer, texts, pooling=pooling, max_length=max_length, batch_size=batch_size)
    v = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
    cos = np.array([v[pos[a]] @ v[pos[b]] for a, b in zip(pairs.s1, pairs.s2)])
    return float(spearmanr(cos, pairs.score).statistic)


# --------------------------------------------------------------------------------------------
# training


@dataclass(kw_only=True)
class SimilaritySettings(TrainSettings):
    """The settings of ``nlptool train similarity`` (:func:`train_sentence_encoder`): the shared
    :class:`nlptool.training.TrainSettings` (``warmup_ratio``: linear warm-up share, then linear
    decay to 0 at the last step) plus:

    Attributes:
        model: the encoder to start from (built-in name, local directory or hub id).
        holdout: CoSENT without evaluation pairs: the share of the labelled pairs held out
            (:func:`split_holdout` with ``seed``) to measure the Spearman correlation, in [0, 1).
        max_length: tokens per sentence (special tokens included).
        pooling: ``mean`` (of the text's token vectors) or ``cls``.
        scale: CoSENT's lambda (:func:`cosent_loss`).
        temperature: SimCSE's tau (:func:`simcse_loss`).
    """

    model: str = "zh-bert-mini"
    epochs: float = 2.0
    batch_size: int = 64
    learning_rate: float = 1e-4
    warmup_ratio: float = 0.1
    holdout: float = 0.1
    max_length: int = 64
    pooling: str = "mean"
    scale: float = 20.0
    temperature: float = 0.05

    def check(self) -> None:
        """The shared rules, plus a batch of at least 2, a known pooling and ``holdout`` in [0, 1).

        Raises:
            UsageError: one line naming the setting.
        """
        super().check()
        if self.pooling not in POOLINGS:
            raise UsageError(f"pooling {self.pooling!r}: expected one of {', '.join(POOLINGS)}")
        if self.batch_size < 2:
            raise UsageError("batch size must be at least 2 (in-batch comparisons)")
        if not (isinstance(self.holdout, (int, float)) and 0 <= self.holdout < 1):
            raise UsageError(f"holdout share {self.holdout}: expected a number in [0, 1)")


def train_sentence_encoder(method: str, out: str | os.PathLike, settings: SimilaritySettings | None = None, *,
                           pairs: Pairs | None = None, sentences: Sequence[str] | None = None,
                           eval_pairs: Pairs | None = None, **overrides) -> dict:
    """Fine-tune ``settings.model`` with CoSENT (``method="cosent"``, ``pairs``) or unsupervised
    SimCSE (``"simcse"``, ``sentences``) and save it to ``out`` (a normal Hugging Face encoder
    directory with ``metrics.json``), whole or not at all (:func:`nlptool.paths.atomic_dir`: a
    failed or interrupted run leaves no ``out``, or a pre-existing one as it was; into a
    pre-existing one the model files are moved, its other files are never deleted).

    A plain torch loop: AdamW, linear warm-up over ``warmup_ratio`` of the steps and linear decay
    to 0 at the last step (``max_steps``, else ``epochs`` passes), bf16 autocast on CUDA where
    supported (fp16 otherwise), fp32 on the CPU. ``max_minutes`` stops early and saves. CoSENT
    without ``eval_pairs`` holds out ``settings.holdout`` of the pairs to evaluate on.

    Args:
        settings: :class:`SimilaritySettings` (default: its defaults).
        overrides: fields of :class:`SimilaritySettings` to change (``max_steps=30``, ``log=print``).

    Returns:
        The metrics: ``steps``, ``seconds``, ``loss_first``/``loss_last`` (mean over the first/last
        10 % of steps, nats), ``eval_spearman_before``/``eval_spearman`` (cosine of the pooled
        vectors on the evaluation pairs), the settings and the data sizes.

    Raises:
        UsageError: unknown method/pooling, missing or too little data, bad numbers, ``out`` an
            existing file or in a missing directory (checked before the model loads).
        ModelError, DeviceError: from :func:`nlptool.models.load_model`.
    """
    st = SimilaritySettings.build(settings, overrides)
    model, epochs, max_steps, max_minutes, batch_size = st.model, st.epochs, st.max_steps, st.max_minutes, st.batch_size
    learning_rate, warmup, max_length, pooling = st.learning_rate, st.warmup_ratio, st.max_length, st.pooling
    scale, temperature, seed, log = st.scale, st.temperature, st.seed, st.say
    import torch

    from ..paths import atomic_dir, check_out_dir
    from ..models import load_model

    check_out_dir(out)
    if method not in METHODS:
        raise UsageError(f"method {method!r}: expected one of {', '.join(METHODS)}")
    st.check()
    if method == "cosent":
        if eval_pairs is None and st.holdout > 0 and pairs is not None:
            tr, ho = split_holdout(len(pairs), st.holdout, seed)
            pairs, eval_pairs = pairs.subset(tr), pairs.subset(ho)
        if pairs is None or len(pairs) < 2:
            raise UsageError("CoSENT needs at least 2 labelled pairs (s1, s2, score)")
        n_items = len(pairs)
        log(f"{len(pairs):,} training pairs, {len(eval_pairs) if eval_pairs else 0:,} evaluation pairs; model {model}")
    else:
        if not sentences or len(sentences) < 2:
            raise UsageError("SimCSE needs at least 2 distinct sentences")
        sentences = list(sentences)
        n_items = len(sentences)
        log(f"{len(sentences):,} training sentences, {len(eval_pairs) if eval_pairs else 0:,} evaluation pairs; model {model}")
    random.seed(seed)
    torch.manual_seed(seed)

    loaded = load_model(model, kind="encoder", device=st.device, fp16=False, for_training=True)
    net, tok, dev = loaded.model, loaded.tokenizer, loaded.device
    batcher = _Batcher(tok, max_length)
    steps_per_epoch = max(1, math.ceil(n_items / batch_size))
    total = int(max_steps) if max_steps else max(1, int(math.ceil(epochs * steps_per_epoch)))
    n_warm = int(warmup * total)

    def lr_at(step: int) -> float:
        if step < n_warm:
            return (step + 1) / (n_warm + 1)
        return max(0.0, (total - step) / max(1, total - n_warm))

    opt = torch.optim.AdamW(net.parameters(), lr=learning_rate, weight_decay=st.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    amp = None
    if dev.type == "cuda":
        amp = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler("cuda") if amp == torch.float16 else None

    before = spearman_of(net, tok, eval_pairs, pooling=pooling, max_length=max_length) if eval_pairs else None
    if before is not None:
        log(f"held-out Spearman before training: {before:.4f} ({len(eval_pairs)} pairs)")
    rng = random.Random(seed)
    order: list[int] = []
    losses: list[float] = []
    net.train()
    t0 = time.monotonic()
    deadline = t0 + max_minutes * 60 if max_minutes else None
    step = 0
    while step < total:
        if len(order) < batch_size:
            perm = list(range(n_items))
            rng.shuffle(perm)
            order = order + perm
        idx, order = order[:batch_size], order[batch_size:]
        with torch.autocast(device_type=dev.type, dtype=amp, enabled=amp is not None):
            if method == "cosent":
                texts = [pairs.s1[i] for i in idx] + [pairs.s2[i] for i in idx]
                batch, content = batcher(texts, dev)
                v = pool(net(**batch).last_hidden_state.float(), content, pooling)
                a, b = v[: len(idx)], v[len(idx):]
                cos = torch.nn.functional.cosine_similarity(a, b, dim=-1)
                loss = cosent_loss(cos, torch.tensor([pairs.score[i] for i in idx]), scale)
            else:
                texts = [sentences[i] for i in idx]
                batch, content = batcher(texts + texts, dev)  # two dropout views in one pass
                v = pool(net(**batch).last_hidden_state.float(), content, pooling)
                loss = simcse_loss(v[: len(idx)], v[len(idx):], temperature)
        opt.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.unscale_(opt)
            torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            scaler.step(opt)
            scaler.update()
        else:
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            opt.step()
        sched.step()
        losses.append(float(loss.detach()))
        step += 1
        st.tick(step, total)
        if step % max(1, total // 10) == 0 or step == total:
            k = max(1, min(50, step))
            log(f"step {step}/{total}: loss {sum(losses[-k:]) / k:.4f} (mean of last {k}), "
                f"{time.monotonic() - t0:.0f} s")
        if deadline and time.monotonic() > deadline:
            log(f"time budget of {max_minutes} min reached at step {step}")
            break
    seconds = time.monotonic() - t0
    net.eval()
    after = spearman_of(net, tok, eval_pairs, pooling=pooling, max_length=max_length) if eval_pairs else None
    if after is not None:
        log(f"held-out Spearman after training: {after:.4f}")
    k = max(1, len(losses) // 10)
    metrics = {
        "method": method, "base_model": str(model), "pooling": pooling, "steps": step, "planned_steps": total,
        "batch_size": batch_size, "learning_rate": learning_rate, "warmup": warmup, "max_length": max_length,
        "epochs": round(step / steps_per_epoch, 3), "seconds": round(seconds, 1), "device": str(dev),
        "mixed_precision": str(amp).replace("torch.", "") if amp else None,
        "train_items": n_items, "eval_pairs": len(eval_pairs) if eval_pairs else 0,
        "loss_first": sum(losses[:k]) / k, "loss_last": sum(losses[-k:]) / k,
        "eval_spearman_before": before, "eval_spearman": after, "seed": seed,
    }
    if method == "cosent":
        metrics["scale"] = scale
    else:
        metrics["temperature"] = temperature
    metrics = {k2: (None if isinstance(v2, float) and not math.isfinite(v2) else v2) for k2, v2 in metrics.items()}
    # a fresh tokenizer copy: the one used above would save the last call's truncation/padding settings
    from transformers import AutoTokenizer

    with atomic_dir(out) as stage:
        stage = Path(stage)
        net.save_pretrained(stage, safe_serialization=True)
        AutoTokenizer.from_pretrained(loaded.path).save_pretrained(stage)
        (stage / "sentence_config.json").write_text(json.dumps({"pooling": pooling, "layer": -1}) + "\n")
        (stage / "metrics.json").write_text(json.dumps(metrics, indent=2, ensure_ascii=False) + "\n")
    return metrics


# --------------------------------------------------------------------------------------------
# the card of a built-in model


def card(name: str, metrics: dict, *, quick: bool = False) -> Card:
    """The card (:class:`nlptool.training.Card`) of a similarity encoder, from the metrics
    :func:`finish_builtin` writes: ``{"stages": [train metrics...], "eval": {...}, "data": {...},
    "base", "layers", "hidden"}``."""

    def f(x, nd=3):
        return "n/a" if x is None else (f"{x:.{nd}f}" if isinstance(x, float) else str(x))

    summary = ("Chinese sentence-similarity encoder (BERT, "
               f"{metrics.get('layers', 4)} layers, hidden {metrics.get('hidden', 256)}), fine-tuned from "
               f"`{metrics.get('base', 'zh-bert-mini')}` by `nlptool train similarity`.")
    training = []
    for st in metrics.get("stages", []):
        training.append(
            f"- **{st['method']}** ({'Su 2022, CoSENT' if st['method'] == 'cosent' else 'Gao et al. 2021, unsupervised SimCSE'}): "
            f"{st['train_items']:,} training {'pairs' if st['method'] == 'cosent' else 'sentences'}, "
            f"{st['steps']} steps ({st['epochs']} epochs) at batch {st['batch_size']}, lr {st['learning_rate']}, "
            f"max length {st['max_length']}, {st['pooling']} pooling, {st['seconds']} s on {st['device']}"
            f"{' (' + st['mixed_precision'] + ')' if st.get('mixed_precision') else ''}; "
            f"loss {f(st['loss_first'])} -> {f(st['loss_last'])} nats.")
    sections = [("Training", "\n".join(training)),
                ("Data and splits", "\n".join(f"- {k}: {v}" for k, v in metrics.get("data", {}).items()))]
    ev = metrics.get("eval", {})
    if ev:
        quality = [f"Spearman correlation with the gold scores on {ev.get('name', 'the held-out split')} "
                   f"({ev.get('n', '?')} pairs, never trained on):", "", "| scorer | Spearman |", "|---|---|"]
        for k, v in ev.get("spearman", {}).items():
            quality.append(f"| {k} | {f(v)} |")
        if ev.get("transport_note"):
            quality += ["", ev["transport_note"] + "."]
        sections.append(("Measured quality", "\n".join(quality)))
    return Card(summary, sections, quick=quick)


# --------------------------------------------------------------------------------------------
# evaluation on labelled pairs (the build script and benchmarks/bench_similarity.py)


def sts_scores(model, pairs: Pairs, *, device: str = "cpu", transport: bool = True, batch_size: int = 128,
               log: Callable[[str], None] | None = None, keep_scores: bool = False) -> dict:
    """Spearman correlations with the gold scores of ``pairs`` for the five scorers of the
    similarity benchmark: ``char Jaccard``, ``similarity`` (the command's pair score,
    :func:`nlptool.similarity.api.blend`), ``cos(mean)`` (uniform mean of the last layer's token
    vectors), ``cos(IDF mean)`` (IDF-weighted, the model's shipped table or zh-bert-mini's),
    ``-WMD`` and ``-WRD`` (exact transport with IDF weights, the ``similarity`` default; skipped
    when ``transport`` is false or POT is not installed). Pairs where a scorer is undefined
    (a text without tokens) are left out of that scorer only. Returns ``{scorer: rho, "n": pairs}``;
    with ``keep_scores`` also ``"scores": {scorer: (pairs,) float array}`` (NaN where undefined;
    higher = more similar), for paired comparisons of two models on the same pairs.
    """
    import numpy as np
    from scipy.stats import spearmanr

    from ..models import load_model
    from . import load_embedder, model_kind, score_pairs
    from .weights import BUILTIN_IDF, builtin_idf_path

    log = log or (lambda s: None)
    gold = np.asarray(pairs.score, dtype=float)
    out: dict = {"n": len(pairs)}
    kept: dict = {}

    def rho(vals, name=None):
        v = np.array([np.nan if isinstance(x, Exception) or x is None else x for x in vals], dtype=float)
        ok = np.isfinite(v)
        if keep_scores and name:
            kept[name] = v
        return float(spearmanr(v[ok], gold[ok]).statistic)

    out["char Jaccard"] = rho([char_jaccard(a, b) for a, b in zip(pairs.s1, pairs.s2)], "char Jaccard")
    loaded = load_model(model, kind=model_kind(model), device=device)
    idf_path = builtin_idf_path(str(model)) or builtin_idf_path(next(iter(BUILTIN_IDF)))
    for name, kwargs in (("cos(mean)", {"uniform": True}), ("cos(IDF mean)", {"idf": idf_path})):
        emb = load_embedder(loaded, batch_size=batch_size, **kwargs)
        res = score_pairs(emb, pairs.s1, pairs.s2, pool="mean")
        out[name] = rho([r if isinstance(r, Exception) else r["cos"] for r in res], name)
        log(f"{model}: {name} {out[name]:.4f}")
        if name == "cos(IDF mean)":  # the `similarity` field: this cosine blended with the characters
            out["similarity"] = rho([r if isinstance(r, Exception) else r["similarity"] for r in res], "similarity")
    if transport:
        try:
            import ot  # noqa: F401
        except ImportError:
            transport = False
    if transport:
        emb = load_embedder(loaded, batch_size=batch_size, idf=idf_path)
        res = score_pairs(emb, pairs.s1, pairs.s2, metric="both")
        for key in ("wmd", "wrd"):
            out[f"-{key.upper()}"] = rho([r if isinstance(r, Exception) else -r[key] for r in res], f"-{key.upper()}")
            log(f"{model}: -{key.upper()} {out['-' + key.upper()]:.4f}")
    if keep_scores:
        out["scores"] = kept
    return out


def finish_builtin(src: str | os.PathLike, name: str, *, stage_metrics: Sequence[str | os.PathLike],
                   eval_file: str | os.PathLike, eval_name: str, data: dict, base: str,
                   idf: str | os.PathLike | None = None, commands: Sequence[str] = (),
                   dest: str | os.PathLike | None = None, quick: bool = False, device: str = "cpu") -> dict:
    """Last stage of a built-in similarity encoder's build: export ``src`` with
    :func:`nlptool.training.export_builtin` (``idf``: the IDF table shipped as ``idf.tsv``), measure
    the exported fp16 copy on ``eval_file`` (:func:`sts_scores`), and write its
    ``training_metrics.json`` (the ``stage_metrics`` JSON of each training stage, the data notes,
    the scores) and its card (:func:`card`). Returns those metrics."""
    import tempfile

    from transformers import AutoConfig

    from ..training import export_builtin, export_weights

    stages = [json.loads(Path(p).read_text(encoding="utf-8")) for p in stage_metrics]
    with tempfile.TemporaryDirectory(prefix="nlptool-sim-") as tmp:
        probe = Path(tmp, "fp16")  # the scores are those of the fp16 weights that ship
        export_weights(src, probe)
        if idf:  # the table that ships with it, which sts_scores reads from the model's directory
            import shutil

            shutil.copyfile(idf, probe / "idf.tsv")
        ev = sts_scores(str(probe), read_pairs([eval_file]), device=device)
        cfg = AutoConfig.from_pretrained(str(probe))
        metrics = {"name": name, "base": base, "layers": cfg.num_hidden_layers, "hidden": cfg.hidden_size,
                   "stages": stages, "data": data, "eval": {"name": eval_name, "n": ev.pop("n"), "spearman": ev},
                   "commands": list(commands)}

        def the_card(facts):
            metrics["size_bytes"] = facts["size_bytes"]
            return card(name, metrics, quick=quick)

        export_builtin(src, name, card=the_card, commands=commands, dest=dest, metrics=metrics,
                       extra_files={"idf.tsv": idf} if idf else None)
    return metrics
