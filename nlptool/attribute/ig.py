"""Integrated gradients for text classifiers, with the completeness check kept and reported.

Integrated gradients (Sundararajan, Taly, Yan, "Axiomatic Attribution for Deep Networks", ICML
2017, eq. 1): for an input ``x``, a baseline ``x'`` and a scalar output ``F``,

    IG_i(x) = (x_i - x'_i) * integral_0^1 dF(x' + a (x - x'))/dx_i da

and the attributions are *complete*: ``sum_i IG_i(x) = F(x) - F(x')`` (their Proposition 1).
For text, ``x`` is the output of the model's token-embedding layer, ``(seq_len, hidden)``; the
baseline is the embedding of a reference input of the same length whose [CLS]/[SEP]/[PAD] are kept
and whose other tokens are replaced by [PAD], [MASK] or [UNK]. A token's score is its IG summed over
the embedding dimension (signed; positive = pushes ``F`` up). The integral is a quadrature over
captum's nodes (Gauss-Legendre or trapezoidal Riemann, :func:`integration_nodes`). By default
(:func:`ig_scores_batched`) the interpolated embeddings of every (text, node) pair of a batch are
rows of shared forward/backward passes of a few thousand tokens, texts in length order, each pass
cut to its longest text and the rest hidden by the attention mask; captum's
``LayerIntegratedGradients`` (:func:`ig_scores`, one call per batch and target, all rows at once)
is the reference it is tested against: the same scores to float rounding, 2.95x slower on 1,000
reviews on one CPU core (docs/attribute.md, *Speed*). A BERT classifier's last layer is computed at
[CLS] only inside the integral (:func:`cls_forward`).

``delta = sum(scores) - (F(x) - F(x'))`` measures how far the numerical integral is from
completeness; more steps shrink it. Su Jianlin's post (kexue.fm, 2020-06-28, "积分梯度") explains IG
for Chinese BERT; his bert4keras example scales the whole embedding matrix and transformers-interpret
L2-normalises the scores: both lose completeness, which nlptool keeps and shows.

Word granularity sums the token scores inside each word (jieba words for Chinese text, the
tokenizer's pre-tokenizer words otherwise); a sum over a partition of the tokens, so completeness
is unchanged. ``target="all"`` integrates every label, one backward pass per label over shared
forward passes (transformers-interpret explains one label per call).
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
    """Integrated gradients on the token-embedding layer of ``model`` by captum's
    ``LayerIntegratedGradients``: the reference of :func:`ig_scores_batched` (``attribute_texts(...,
    batched=False)``); all ``steps x batch`` rows in one pass unless ``internal_batch_size``.

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


#: Tokens (rows x padded length) per forward pass of :func:`ig_scores_batched` when no
#: ``internal_batch_size`` is given, by device type. On the CPU a forward + backward of
#: zh-sentiment-mini ran at about 4,500 tokens/s with passes of 1,000-4,000 tokens and 2,700 with
#: 400 rows x 128 tokens (captum's one pass for 8 texts x 50 steps; 1 thread, busy 2-core machine);
#: 1,024-8,192 were alike end to end. The CUDA figure is not tuned (no GPU measured). On any device
#: the activations kept for one backward pass are bounded by it (captum's one pass is not).
TOKENS_PER_FORWARD = {"cpu": 4096, "cuda": 32768}


def integration_nodes(method: str, steps: int) -> tuple[list[float], list[float]]:
    """Nodes ``alpha_k`` in [0, 1] and weights ``w_k`` (summing to 1) of the path integral.

    ``gausslegendre``: the ``steps``-point Gauss-Legendre rule on [-1, 1]
    (``numpy.polynomial.legendre.leggauss``) mapped to [0, 1]: ``alpha = (1 + x) / 2``, ``w = w_x / 2``;
    exact for polynomials of degree ``2 steps - 1``. ``riemann_trapezoid``: ``alpha_k = k / (steps - 1)``
    and the trapezoidal weights ``(1/(steps-1)) (1/2, 1, ..., 1, 1/2)``. These are captum's nodes
    (``captum.attr._utils.approximation_methods``); its trapezoid weights ``(1/steps)(1/2, 1, ..., 1/2)``
    sum to ``(steps-1)/steps`` and are rescaled here to sum to 1 (see :func:`ig_scores`).

    Raises:
        UsageError: an unknown ``method``, or ``steps < 2``.
    """
    import numpy as np

    if method not in METHODS:
        raise UsageError(f"integration method {method!r}: expected one of {', '.join(METHODS)}")
    if steps < 2:
        raise UsageError(f"{steps} integration steps: expected at least 2")
    n = int(steps)
    if method == "gausslegendre":
        x, w = np.polynomial.legendre.leggauss(n)
        return (0.5 * (1.0 + x)).tolist(), (0.5 * w).tolist()
    w = np.full(n, 1.0 / (n - 1))
    w[0] = w[-1] = 0.5 / (n - 1)
    return np.linspace(0.0, 1.0, n).tolist(), w.tolist()


def cls_forward(model):
    """For a BERT sequence classifier (nlptool's plain-torch one or transformers'
    ``BertForSequenceClassification``), a forward ``(input_ids, attention_mask) -> logits
    (batch, n_labels)`` that runs the last layer's queries, attention output and feed-forward at
    [CLS] only; None for any other model.

    The classifier reads the pooled [CLS] vector of the last layer alone (Devlin et al. 2019,
    section 4.1), so the last layer's other positions only supply keys and values: the same logits
    (to float rounding) for about 20-30 % less work in a forward and backward pass of
    zh-sentiment-mini (4 layers). As :func:`nlptool.segment.masking._encode_selected` does for one
    layer of the impact matrix. The word embeddings are looked up through
    ``bert.embeddings`` (the hooked module). :func:`ig_scores_batched` checks the result against
    the model's own forward on every pass of real inputs and falls back to the latter on a mismatch.
    """
    import torch
    import torch.nn.functional as F

    bert, config = getattr(model, "bert", None), getattr(model, "config", None)
    if (type(model).__name__ != "BertForSequenceClassification" or bert is None or model.training
            or getattr(bert, "pooler", None) is None or not hasattr(model, "classifier")
            or getattr(config, "position_embedding_type", "absolute") != "absolute"
            or getattr(config, "is_decoder", False) or getattr(config, "add_cross_attention", False)):
        return None
    layers = bert.encoder.layer
    last = layers[-1]
    sa = last.attention.self
    heads, dh = int(sa.num_attention_heads), int(sa.attention_head_size)

    def forward(ids, mask):
        h = bert.embeddings(input_ids=ids)
        rows, n = ids.shape
        ext = torch.zeros((rows, 1, 1, n), dtype=h.dtype, device=h.device)
        ext.masked_fill_(mask[:, None, None, :] == 0, torch.finfo(h.dtype).min)
        for lyr in layers[:-1]:
            h = lyr(h, attention_mask=ext)
            h = h[0] if isinstance(h, tuple) else h
        x = h[:, :1]  # (rows, 1, hidden): [CLS]
        q = sa.query(x).view(rows, 1, heads, dh).transpose(1, 2)
        k = sa.key(h).view(rows, n, heads, dh).transpose(1, 2)
        v = sa.value(h).view(rows, n, heads, dh).transpose(1, 2)
        ctx = F.scaled_dot_product_attention(q, k, v, attn_mask=ext, scale=dh**-0.5)
        attn = last.attention.output(ctx.transpose(1, 2).reshape(rows, 1, heads * dh), x)
        out = last.output(last.intermediate(attn), attn)
        return model.classifier(model.dropout(bert.pooler(out)))

    return forward


def ig_scores_batched(
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
    tokens_per_forward: int | None = None,
    use_cls_forward: bool = True,
):
    """Integrated gradients on the token-embedding layer, the interpolation steps of several texts
    in one forward/backward pass: the same integral as :func:`ig_scores` (captum), computed here.

    Every (text, node) pair is one row: its embeddings ``x' + alpha_k (x - x')`` replace the output of
    ``model.get_input_embeddings()`` (a forward hook, as captum's ``LayerIntegratedGradients`` does).
    Rows are ordered by text length and cut into chunks of about ``tokens_per_forward`` tokens
    (rows x the chunk's longest text; trailing padding beyond it is dropped, the attention mask
    hides the rest), so the steps of short texts share one pass and a long text is not padded
    against a batch. A token's score ``sum_h (x - x')_h sum_k w_k dF/dx_h(x' + alpha_k (x - x'))``
    (nodes and weights :func:`integration_nodes`) is accumulated node by node in float64. A BERT
    classifier's passes compute the last layer at [CLS] only (:func:`cls_forward`).

    Args:
        model, input_ids, attention_mask, ref_ids, explain, steps, method: as :func:`ig_scores`.
            ``attention_mask`` must be 0 only at padding, which no text attends to.
        target: ``(batch,)`` long tensor, one label per text; or ``(batch, n_targets)``: several
            labels per text, integrated over the same forward passes (one backward pass each).
        internal_batch_size: rows per forward pass; default: as many as fit in
            ``tokens_per_forward`` tokens.
        tokens_per_forward: default :data:`TOKENS_PER_FORWARD` of the device type (4,096 on the CPU).
        use_cls_forward: run a BERT classifier's last layer at [CLS] only (:func:`cls_forward`),
            after checking it against the model's forward on this batch's inputs; False: always
            the model's own forward.

    Returns:
        ``(scores, f_x, f_ref)`` as :func:`ig_scores`: scores ``(batch, seq_len)`` float64 (or
        ``(batch, n_targets, seq_len)`` for a 2-d ``target``), F at the input and at the
        baseline ``(batch,)`` (or ``(batch, n_targets)``) float64.

    Raises:
        UsageError: an unknown ``method`` or ``explain``, or ``steps < 2``.
    """
    import torch

    if explain not in EXPLAIN:
        raise UsageError(f"explained output {explain!r}: expected one of {', '.join(EXPLAIN)}")
    alphas, weights = integration_nodes(method, steps)
    one_target = target.dim() == 1
    targets = target[:, None] if one_target else target
    n_texts, seq_len = input_ids.shape
    n_steps, n_tgt = len(alphas), targets.shape[1]
    device = input_ids.device

    def output(logits):
        logits = logits.float()
        return torch.softmax(logits, dim=-1) if explain == "probability" else logits

    def forward(ids, mask):
        return output(logits_of(model(input_ids=ids, attention_mask=mask)))

    fast = cls_forward(model) if use_cls_forward else None
    layer = model.get_input_embeddings()
    with torch.no_grad():
        x = layer(input_ids)
        x_ref = layer(ref_ids)
    dtype = x.dtype
    base, diff = x_ref.float(), (x - x_ref).float()
    # a text's length: its last attended position + 1 (what follows is padding, dropped per chunk)
    pos = torch.arange(1, seq_len + 1, device=device)
    lengths = (attention_mask.ne(0).long() * pos).amax(dim=1).clamp(min=1).tolist() if seq_len else [1] * n_texts
    order = sorted(range(n_texts), key=lambda i: (lengths[i], i))
    budget = int(tokens_per_forward or TOKENS_PER_FORWARD.get(device.type, TOKENS_PER_FORWARD["cuda"]))

    # F at the input and at the baseline, the texts in length order, each pass trimmed to its longest
    f_x = torch.empty((n_texts, n_tgt), dtype=torch.float64, device=device)
    f_ref = torch.empty_like(f_x)
    with torch.no_grad():
        for start, stop, width in _chunks([lengths[i] for i in order], budget, internal_batch_size):
            idx = torch.tensor(order[start:stop], device=device)
            for ids, f in ((input_ids, f_x), (ref_ids, f_ref)):
                logits = logits_of(model(input_ids=ids[idx, :width], attention_mask=attention_mask[idx, :width]))
                f[idx] = output(logits).gather(1, targets[idx]).double()
                if fast is not None:  # the [CLS]-only forward must give the model's logits
                    got = fast(ids[idx, :width], attention_mask[idx, :width]).float()
                    tol = 64 * torch.finfo(logits.dtype).eps * (1 + logits.float().abs())
                    if got.shape != logits.shape or not bool(((got - logits.float()).abs() <= tol).all()):
                        fast = None

    # the integral: one row per (text, node), texts in length order
    rows = [(i, k) for i in order for k in range(n_steps)]
    alpha_t = torch.tensor(alphas, dtype=torch.float32, device=device)
    weight_t = torch.tensor(weights, dtype=torch.float64, device=device)
    scores = torch.zeros((n_tgt, n_texts, seq_len), dtype=torch.float64, device=device)
    for start, stop, width in _chunks([lengths[i] for i, _ in rows], budget, internal_batch_size):
        text_idx = torch.tensor([i for i, _ in rows[start:stop]], device=device)
        step_idx = torch.tensor([k for _, k in rows[start:stop]], device=device)
        step = diff[text_idx, :width]
        point = (base[text_idx, :width] + alpha_t[step_idx, None, None] * step).to(dtype).requires_grad_(True)
        hook = layer.register_forward_hook(lambda module, inputs, output, point=point: point)
        try:
            with torch.enable_grad():
                ids_c, mask_c = input_ids[text_idx, :width], attention_mask[text_idx, :width]
                out = output(fast(ids_c, mask_c)) if fast is not None else forward(ids_c, mask_c)
                picked = out.gather(1, targets[text_idx])
                for t in range(n_tgt):
                    (grad,) = torch.autograd.grad(picked[:, t].sum(), point, retain_graph=t < n_tgt - 1)
                    # (x - x') . w_k dF/dx at this node: the sum over nodes is linear, so it is
                    # accumulated per token here instead of summing gradients first
                    term = (grad.double() * step.double()).sum(dim=-1) * weight_t[step_idx, None]
                    scores[t, :, :width].index_add_(0, text_idx, term)
        finally:
            hook.remove()
    scores = scores.transpose(0, 1)  # (batch, n_targets, seq_len)
    if one_target:
        return scores[:, 0], f_x[:, 0], f_ref[:, 0]
    return scores, f_x, f_ref


def _chunks(widths: Sequence[int], budget: int, max_rows: int | None):
    """Cut rows of the given widths (tokens, in order) into consecutive passes ``(start, stop,
    width)``: ``max_rows`` rows each, or (``max_rows`` None) as many as keep ``rows x width <=
    budget`` (at least one), ``width`` being the widest row of the pass."""
    start = 0
    while start < len(widths):
        stop, width = start + 1, widths[start]
        while stop < len(widths):
            wider = max(width, widths[stop])
            if (stop - start + 1 > max_rows) if max_rows else ((stop - start + 1) * wider > budget):
                break
            width, stop = wider, stop + 1
        yield start, stop, width
        start = stop


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
    batched: bool = True,
) -> list[dict[str, Any]]:
    """Integrated-gradients attributions for each text, one result dict per text, in order.

    Args:
        loaded: a :class:`nlptool.models.LoadedModel` of kind ``sequence-classification`` with a
            fast tokenizer (character offsets come from its offset mapping).
        texts: the texts; a text longer than the window (``max_length`` or the model's) is
            truncated and its result carries ``"truncated": true`` and a ``"warning"``.
        target: label name or index; ``None`` explains each text's predicted label; ``"all"``
            explains every label (one integral per label).
        steps, method, explain: see :func:`ig_scores`.
        internal_batch_size: rows (text x integration node) per forward pass; default: chunks of
            about :data:`TOKENS_PER_FORWARD` tokens (batched), all ``steps x batch_size`` rows at once
            (``batched=False``).
        baseline: ``pad|mask|unk`` token replacing every non-special token in the reference.
        granularity: ``token``, or ``word`` (token scores summed per word, :func:`word_groups`).
        batch_size: texts tokenized and integrated together, in length order.
        batched: True (the default): :func:`ig_scores_batched`, the integration nodes of all the
            batch's texts (and every label of ``target="all"``) share forward passes of a few
            thousand tokens. False: captum's ``LayerIntegratedGradients`` (:func:`ig_scores`), one
            call per target, the reference the batched path is tested against (the same scores to
            float rounding, about 1e-8 on zh-sentiment-mini) and the speed before it.

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
        if batched:  # every target over the same forward passes
            tgts = torch.stack(targets, dim=1)
            scores, f_x, f_ref = ig_scores_batched(
                model, ids, mask, ref, tgts, explain=explain, steps=steps, method=method,
                internal_batch_size=internal_batch_size,
            )
            runs = [(tgts[:, t].cpu(), scores[:, t].cpu(), f_x[:, t].cpu(), f_ref[:, t].cpu()) for t in range(len(targets))]
        else:
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
