"""Integrated gradients for text classifiers, with the completeness check kept and reported.

Integrated gradients (Sundararajan, Taly, Yan, "Axiomatic Attribution for Deep Networks", ICML
2017, eq. 1): for an input ``x``, a baseline ``x'`` and a scalar output ``F``,

    IG_i(x) = (x_i - x'_i) * integral_0^1 dF(x' + a (x - x'))/dx_i da

and the attributions are *complete*: ``sum_i IG_i(x) = F(x) - F(x')`` (their Proposition 1).
For text, ``x`` is the output of the model's token-embedding layer, ``(seq_len, hidden)``; the
baseline is the embedding of a reference input of the same length whose [CLS]/[SEP]/[PAD] are kept
and whose other tokens are replaced by [PAD], [MASK] or [UNK]. A token's score is its IG summed over
the embedding dimension (signed; positive = pushes ``F`` up). The integral is computed by captum's
``LayerIntegratedGradients`` (Gauss-Legendre or trapezoidal Riemann nodes), not by our own code.

``delta = sum(scores) - (F(x) - F(x'))`` measures how far the numerical integral is from
completeness; more steps shrink it. Su Jianlin's post (kexue.fm, 2020-06-28, "积分梯度") explains IG
for Chinese BERT; his bert4keras example scales the whole embedding matrix and transformers-interpret
L2-normalises the scores: both lose completeness, which nlptool keeps and shows.

Word granularity sums the token scores inside each word (jieba words for Chinese text, the
tokenizer's pre-tokenizer words otherwise); a sum over a partition of the tokens, so completeness
is unchanged. ``target="all"`` integrates once per label (transformers-interpret explains one label
per call).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from ..errors import ModelError, UsageError

METHODS = ("gausslegendre", "riemann_trapezoid")
BASELINES = ("pad", "mask", "unk")
EXPLAIN = ("probability", "logit")
GRANULARITIES = ("token", "word")
#: a record warns when |delta| exceeds this fraction of |F(x) - F(baseline)|
DELTA_WARN = 0.05


def logits_of(out):
    """The logits tensor of a model output (a ``ModelOutput``, a tuple, or a tensor)."""
    if hasattr(out, "logits"):
        return out.logits
    if isinstance(out, (tuple, list)):
        return out[0]
    return out


def baseline_ids(input_ids, special_mask, baseline_id: int):
    """Reference input: ``input_ids`` with every non-special position set to ``baseline_id``.

    Args:
        input_ids: ``(batch, seq_len)`` long tensor.
        special_mask: ``(batch, seq_len)`` bool tensor, True at [CLS]/[SEP]/[PAD] (kept).
        baseline_id: the [PAD], [MASK] or [UNK] id.
    """
    import torch

    return torch.where(special_mask, input_ids, torch.full_like(input_ids, int(baseline_id)))


def ig_scores(
    model,
    input_ids,
    attention_mask,
    ref_ids,
    target,
    *,
    explain: str = "probability",
    steps: int = 50,
    method: str = "gausslegendre",
    internal_batch_size: int | None = None,
):
    """Integrated gradients on the token-embedding layer of ``model`` (captum).

    Args:
        model: a torch module with ``get_input_embeddings()`` whose ``forward(input_ids=,
            attention_mask=)`` returns logits ``(batch, n_labels)`` (or an output with ``.logits``).
        input_ids, attention_mask, ref_ids: ``(batch, seq_len)`` long tensors (``ref_ids`` from
            :func:`baseline_ids`).
        target: ``(batch,)`` long tensor, the label whose output is explained.
        explain: ``"probability"`` (F = softmax(logits)[target], in [0, 1]) or ``"logit"``
            (F = logits[target]).
        steps: integration nodes (>= 2); method: ``gausslegendre`` or ``riemann_trapezoid``.
        internal_batch_size: rows per forward pass inside the integral (bounds memory;
            default ``steps * batch``).

    Returns:
        ``(scores, f_x, f_ref)``: scores ``(batch, seq_len)`` float64 (IG summed over the embedding
        dimension; exactly 0 where ``input_ids == ref_ids``), and ``F`` at the input and at the
        baseline, ``(batch,)`` float64.

    Raises:
        UsageError: an unknown ``method`` or ``explain``, or ``steps < 2``.
    """
    import torch
    from captum.attr import LayerIntegratedGradients

    if method not in METHODS:
        raise UsageError(f"integration method {method!r}: expected one of {', '.join(METHODS)}")
    if explain not in EXPLAIN:
        raise UsageError(f"explained output {explain!r}: expected one of {', '.join(EXPLAIN)}")
    if steps < 2:
        raise UsageError(f"{steps} integration steps: expected at least 2")

    def forward(ids, mask):
        logits = logits_of(model(input_ids=ids, attention_mask=mask)).float()
        return torch.softmax(logits, dim=-1) if explain == "probability" else logits

    lig = LayerIntegratedGradients(forward, model.get_input_embeddings())
    attr = lig.attribute(
        inputs=input_ids,
        baselines=ref_ids,
        target=target,
        additional_forward_args=(attention_mask,),
        n_steps=int(steps),
        method=method,
        internal_batch_size=internal_batch_size,
    )
    # captum 0.9's riemann_trapezoid uses the nodes linspace(0, 1, n) with weights (1/n)(1/2, 1, ..., 1, 1/2),
    # which sum to (n-1)/n, not 1: every score is short by a factor (n-1)/n and completeness fails by
    # |F(x) - F(x')| / n however smooth F is. Rescaling by 1 / sum(weights) gives the trapezoidal rule
    # (weights (1/(n-1))(1/2, 1, ..., 1, 1/2)); for gausslegendre the weights already sum to 1.
    from captum.attr._utils.approximation_methods import approximation_parameters

    weight_sum = math.fsum(approximation_parameters(method)[0](int(steps)))
    scores = attr.detach().double().sum(dim=-1) / weight_sum
    with torch.no_grad():
        rows = torch.arange(input_ids.shape[0], device=input_ids.device)
        f_x = forward(input_ids, attention_mask)[rows, target].double()
        f_ref = forward(ref_ids, attention_mask)[rows, target].double()
    return scores, f_x, f_ref


def resolve_target(target: str | int | None, config) -> int | None:
    """Map a target (label name or index; None = predicted label) to a label index.

    Raises:
        UsageError: an unknown name or an index outside ``[0, num_labels)``.
    """
    if target is None or target == "":
        return None
    n = int(config.num_labels)
    label2id = {str(k): int(v) for k, v in (getattr(config, "label2id", None) or {}).items()}
    text = str(target)
    if text in label2id:
        return label2id[text]
    if text.lstrip("-").isdigit():
        idx = int(text)
        if 0 <= idx < n:
            return idx
        raise UsageError(f"target {target}: index outside [0, {n}); labels: {label_list(config)}")
    raise UsageError(f"target {target!r}: not a label of this model; labels: {label_list(config)} (or all)")


def label_list(config) -> list[str]:
    """Label names by index from ``config.id2label`` (``LABEL_i`` when unnamed)."""
    id2label = {int(k): str(v) for k, v in (getattr(config, "id2label", None) or {}).items()}
    return [id2label.get(i, f"LABEL_{i}") for i in range(int(config.num_labels))]


def _baseline_token_id(tokenizer, baseline: str) -> int:
    if baseline not in BASELINES:
        raise UsageError(f"baseline {baseline!r}: expected one of {', '.join(BASELINES)}")
    tid = getattr(tokenizer, f"{baseline}_token_id", None)
    if tid is None:
        raise ModelError(f"this tokenizer has no [{baseline.upper()}] token for the {baseline} baseline; try another baseline")
    return int(tid)


def _has_cjk(text: str) -> bool:
    from ..text import is_cjk_char

    return any(is_cjk_char(c) for c in text)


def word_groups(text: str, tokens: Sequence[dict], word_ids: Sequence[int | None] | None = None) -> list[list[int]]:
    """Partition token indices into words: consecutive runs of tokens that fall in one word.

    Words are jieba's (``jieba.tokenize``, HMM on: Sun Junyi's prefix-dictionary DAG + HMM) when
    ``text`` has a CJK character, else the tokenizer's own words (``word_ids``, aligned with
    ``tokens``; BERT's pre-tokenizer splits on whitespace and punctuation). A token is put in the
    word holding its first character; a token crossing a word boundary keeps its tokens together.

    Args:
        tokens: ``{"start", "end"}`` character offsets into ``text``, in order, disjoint.
        word_ids: one word id per token (None for special tokens), from ``BatchEncoding.word_ids``.

    Returns:
        Lists of token indices, in order, covering every index exactly once.
    """
    if not tokens:
        return []
    if _has_cjk(text) or word_ids is None:
        from ..text import jieba_spans

        word_of = [0] * len(text)
        for n, (_, a, b) in enumerate(jieba_spans(text)):
            for i in range(a, b):
                word_of[i] = n
        keys = [word_of[t["start"]] if t["start"] < len(text) else -1 for t in tokens]
    else:
        keys = list(word_ids)
    groups: list[list[int]] = []
    for i, k in enumerate(keys):
        if groups and keys[groups[-1][-1]] == k and k is not None:
            groups[-1].append(i)
        else:
            groups.append([i])
    return groups


def attribute_texts(
    loaded,
    texts: Sequence[str],
    *,
    target: str | int | None = None,
    steps: int = 50,
    method: str = "gausslegendre",
    baseline: str = "pad",
    explain: str = "probability",
    granularity: str = "token",
    internal_batch_size: int | None = None,
    max_length: int | None = None,
    batch_size: int = 8,
) -> list[dict[str, Any]]:
    """Integrated-gradients attributions for each text, one result dict per text, in order.

    Args:
        loaded: a :class:`nlptool.models.LoadedModel` of kind ``sequence-classification`` with a
            fast tokenizer (character offsets come from its offset mapping).
        texts: the texts; a text longer than the window (``max_length`` or the model's) is
            truncated and its result carries ``"truncated": true`` and a ``"warning"``.
        target: label name or index; ``None`` explains each text's predicted label; ``"all"``
            explains every label (one integral per label).
        steps, method, explain, internal_batch_size: see :func:`ig_scores`.
        baseline: ``pad|mask|unk`` token replacing every non-special token in the reference.
        granularity: ``token``, or ``word`` (token scores summed per word, :func:`word_groups`).
        batch_size: texts integrated together (captum expands each by ``steps``).

    Returns:
        Dicts with ``label``/``probability`` (prediction), ``granularity``, the units: ``tokens``
        (``{"token", "start", "end"}``) or ``words`` (``{"word", "start", "end"}``), character offsets
        into the text, special tokens left out; then for one target: ``target``,
        ``target_probability``, ``scores`` (aligned with the units, signed, units of ``F``),
        ``f_x``, ``f_baseline``, ``delta`` = sum(scores) - (f_x - f_baseline), ``delta_ratio`` =
        |delta| / |f_x - f_baseline|; for ``target="all"`` those fields per label in a list
        ``attributions``. ``warning`` when a ratio exceeds :data:`DELTA_WARN` or the text was truncated.

    Raises:
        UsageError: bad option values; ModelError: a tokenizer without offsets or baseline token.
    """
    import torch

    if granularity not in GRANULARITIES:
        raise UsageError(f"granularity {granularity!r}: expected one of {', '.join(GRANULARITIES)}")
    tok, model, device = loaded.tokenizer, loaded.model, loaded.device
    if not getattr(tok, "is_fast", False):
        raise ModelError(f"{loaded.name}: attribution needs a fast tokenizer (for character offsets)")
    window = loaded.max_length if not max_length else min(int(max_length), loaded.max_length)
    ref_tok = _baseline_token_id(tok, baseline)
    names = label_list(model.config)
    explain_all = str(target) == "all" and "all" not in names
    tgt_fixed = None if explain_all else resolve_target(target, model.config)
    results: list[dict[str, Any] | None] = [None] * len(texts)
    from ..batching import length_order

    order = length_order([len(t) for t in texts])
    for b0 in range(0, len(order), max(1, batch_size)):
        idx = order[b0 : b0 + batch_size]
        batch_texts = [texts[i] for i in idx]
        full = tok(batch_texts, add_special_tokens=True, truncation=False)["input_ids"]
        enc = tok(
            batch_texts, truncation=True, max_length=window, padding=True,
            return_offsets_mapping=True, return_special_tokens_mask=True, return_tensors="pt",
        )
        ids = enc["input_ids"].to(device)
        mask = enc["attention_mask"].to(device)
        special = (enc["special_tokens_mask"].bool() | (enc["attention_mask"] == 0)).to(device)
        ref = baseline_ids(ids, special, ref_tok)
        with torch.no_grad():
            probs = torch.softmax(logits_of(model(input_ids=ids, attention_mask=mask)).float(), dim=-1)
        pred = probs.argmax(dim=-1)
        if explain_all:
            targets = [torch.full_like(pred, k) for k in range(len(names))]
        else:
            targets = [pred if tgt_fixed is None else torch.full_like(pred, tgt_fixed)]
        runs = []
        for tgt in targets:
            scores, f_x, f_ref = ig_scores(
                model, ids, mask, ref, tgt, explain=explain, steps=steps, method=method,
                internal_batch_size=internal_batch_size,
            )
            runs.append((tgt.cpu(), scores.cpu(), f_x.cpu(), f_ref.cpu()))
        probs, pred, special = probs.cpu(), pred.cpu(), special.cpu()
        for row, i in enumerate(idx):
            units, groups = _units(texts[i], enc, row, special[row], tok, granularity)
            res: dict[str, Any] = {
                "label": names[int(pred[row])],
                "probability": float(probs[row, pred[row]]),
                "granularity": granularity,
                ("words" if granularity == "word" else "tokens"): units,
            }
            parts = []
            for tgt, scores, f_x, f_ref in runs:
                keep = [float(v) for v, sp in zip(scores[row].tolist(), special[row].tolist()) if not sp]
                t = int(tgt[row])
                parts.append(_attribution(names[t], float(probs[row, t]), [math.fsum(keep[j] for j in g) for g in groups],
                                          float(f_x[row]), float(f_ref[row])))
            warnings = []
            if len(full[row]) > window:
                covered = units[-1]["end"] if units else 0
                res["truncated"] = True
                warnings.append(
                    f"text truncated to the model's window of {window} tokens ({len(full[row])} needed): "
                    f"characters from offset {covered} on are not attributed"
                )
            worst = max(parts, key=lambda a: a["delta_ratio"])
            if worst["delta_ratio"] > DELTA_WARN:
                warnings.append(
                    f"|delta| is {worst['delta_ratio']:.1%} of |F(x) - F(baseline)| (above {DELTA_WARN:.0%}): "
                    "the integral is inaccurate, use more integration steps"
                )
            if explain_all:
                res["attributions"] = parts
            else:
                res.update(parts[0])
            if warnings:
                res["warning"] = "; ".join(warnings)
            results[i] = res
    return results  # type: ignore[return-value]


def _units(text, enc, row, special, tok, granularity):
    """The non-special tokens of one row (or their words) and, per unit, its token indices."""
    ids = enc["input_ids"][row].tolist()
    offsets = enc["offset_mapping"][row].tolist()
    word_ids = enc.word_ids(row)
    tokens, wids = [], []
    for t, (s, e), sp, w in zip(ids, offsets, special.tolist(), word_ids):
        if sp:
            continue
        tokens.append({"token": tok.convert_ids_to_tokens(int(t)), "start": int(s), "end": int(e)})
        wids.append(w)
    if granularity == "token":
        return tokens, [[j] for j in range(len(tokens))]
    groups = word_groups(text, tokens, wids)
    words = []
    for g in groups:
        a, b = tokens[g[0]]["start"], max(tokens[j]["end"] for j in g)
        words.append({"word": text[a:b], "start": a, "end": b})
    return words, groups


def _attribution(target: str, p_target: float, scores: list[float], f_x: float, f_ref: float) -> dict[str, Any]:
    d_f = f_x - f_ref
    delta = math.fsum(scores) - d_f
    ratio = abs(delta) / abs(d_f) if d_f != 0 else (0.0 if abs(delta) < 1e-12 else 1.0)
    return {
        "target": target,
        "target_probability": p_target,
        "scores": scores,
        "f_x": f_x,
        "f_baseline": f_ref,
        "delta": delta,
        "delta_ratio": ratio,
    }
