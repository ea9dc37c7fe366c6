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
"""

from __future__ import annotations

import html as _html
import math
import unicodedata
from collections.abc import Sequence
from typing import Any

from .errors import ModelError, NlptoolError, UsageError

METHODS = ("gausslegendre", "riemann_trapezoid")
BASELINES = ("pad", "mask", "unk")
OUTPUTS = ("probability", "logit")
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
    output: str = "probability",
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
        output: ``"probability"`` (F = softmax(logits)[target]) or ``"logit"`` (F = logits[target]).
        steps: integration nodes; method: ``gausslegendre`` or ``riemann_trapezoid``.
        internal_batch_size: rows per forward pass inside the integral (bounds memory;
            default ``steps * batch``).

    Returns:
        ``(scores, f_x, f_ref)``: scores ``(batch, seq_len)`` float64 (IG summed over the embedding
        dimension; exactly 0 where ``input_ids == ref_ids``), and ``F`` at the input and at the
        baseline, ``(batch,)`` float64.
    """
    import torch
    from captum.attr import LayerIntegratedGradients

    if method not in METHODS:
        raise UsageError(f"--method {method}: expected one of {', '.join(METHODS)}")
    if output not in OUTPUTS:
        raise UsageError(f"--output {output}: expected one of {', '.join(OUTPUTS)}")
    if steps < 2:
        raise UsageError(f"--steps {steps}: expected at least 2")

    def forward(ids, mask):
        logits = logits_of(model(input_ids=ids, attention_mask=mask)).float()
        return torch.softmax(logits, dim=-1) if output == "probability" else logits

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
    """Map ``--target`` (label name or index; None = predicted label) to a label index.

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
        raise UsageError(f"--target {target}: index outside [0, {n}); labels: {label_list(config)}")
    raise UsageError(f"--target {target!r}: not a label of this model; labels: {label_list(config)}")


def label_list(config) -> list[str]:
    """Label names by index from ``config.id2label`` (``LABEL_i`` when unnamed)."""
    id2label = {int(k): str(v) for k, v in (getattr(config, "id2label", None) or {}).items()}
    return [id2label.get(i, f"LABEL_{i}") for i in range(int(config.num_labels))]


def _baseline_token_id(tokenizer, baseline: str) -> int:
    if baseline not in BASELINES:
        raise UsageError(f"--baseline {baseline}: expected one of {', '.join(BASELINES)}")
    tid = getattr(tokenizer, f"{baseline}_token_id", None)
    if tid is None:
        raise ModelError(f"--baseline {baseline}: this tokenizer has no [{baseline.upper()}] token; try another baseline")
    return int(tid)


def attribute_texts(
    loaded,
    texts: Sequence[str],
    *,
    target: str | int | None = None,
    steps: int = 50,
    method: str = "gausslegendre",
    baseline: str = "pad",
    output: str = "probability",
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
        target: label name or index; ``None`` explains each text's predicted label.
        steps, method, output, internal_batch_size: see :func:`ig_scores`.
        baseline: ``pad|mask|unk`` token replacing every non-special token in the reference.
        batch_size: texts integrated together (captum expands each by ``steps``).

    Returns:
        Dicts with ``label``/``probability`` (prediction), ``target``, ``tokens`` (list of
        ``{"token", "start", "end"}``, character offsets into the text, special tokens left out),
        ``scores`` (aligned with ``tokens``, signed, units of ``F``), ``f_x``, ``f_baseline``,
        ``delta`` = sum(scores) - (f_x - f_baseline), ``delta_ratio`` = |delta| / |f_x - f_baseline|,
        and ``warning`` when that ratio exceeds :data:`DELTA_WARN` or the text was truncated.

    Raises:
        UsageError: bad option values; ModelError: a tokenizer without offsets or baseline token.
    """
    import torch

    tok, model, device = loaded.tokenizer, loaded.model, loaded.device
    if not getattr(tok, "is_fast", False):
        raise ModelError(f"{loaded.name}: attribution needs a fast tokenizer (for character offsets)")
    window = loaded.max_length if not max_length else min(int(max_length), loaded.max_length)
    ref_tok = _baseline_token_id(tok, baseline)
    tgt_fixed = resolve_target(target, model.config)
    names = label_list(model.config)
    results: list[dict[str, Any] | None] = [None] * len(texts)
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
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
        tgt = pred if tgt_fixed is None else torch.full_like(pred, tgt_fixed)
        scores, f_x, f_ref = ig_scores(
            model, ids, mask, ref, tgt, output=output, steps=steps, method=method,
            internal_batch_size=internal_batch_size,
        )
        for row, i in enumerate(idx):
            results[i] = _result(
                texts[i], enc["input_ids"][row], enc["offset_mapping"][row], special[row].cpu(),
                scores[row].cpu(), float(f_x[row]), float(f_ref[row]), int(pred[row]),
                float(probs[row, pred[row]]), int(tgt[row]), float(probs[row, tgt[row]]), names, tok,
                n_full=len(full[row]), window=window,
            )
    return results  # type: ignore[return-value]


def _result(text, ids, offsets, special, scores, f_x, f_ref, pred, p_pred, tgt, p_tgt, names, tok, *, n_full, window):
    tokens, vals = [], []
    for t, (s, e), sp, v in zip(ids.tolist(), offsets.tolist(), special.tolist(), scores.tolist()):
        if sp:
            continue
        tokens.append({"token": tok.convert_ids_to_tokens(int(t)), "start": int(s), "end": int(e)})
        vals.append(float(v))
    total = math.fsum(vals)
    d_f = f_x - f_ref
    delta = total - d_f
    ratio = abs(delta) / abs(d_f) if d_f != 0 else (0.0 if delta == 0 else math.inf)
    res: dict[str, Any] = {
        "label": names[pred],
        "probability": p_pred,
        "target": names[tgt],
        "target_probability": p_tgt,
        "tokens": tokens,
        "scores": vals,
        "f_x": f_x,
        "f_baseline": f_ref,
        "delta": delta,
        "delta_ratio": ratio,
    }
    warnings = []
    if n_full > window:
        covered = tokens[-1]["end"] if tokens else 0
        res["truncated"] = True
        warnings.append(
            f"text truncated to the model's window of {window} tokens ({n_full} needed): "
            f"characters from offset {covered} on are not attributed"
        )
    if ratio > DELTA_WARN:
        warnings.append(
            f"|delta| is {ratio:.1%} of |F(x) - F(baseline)| (above {DELTA_WARN:.0%}): "
            "the integral is inaccurate, use more --steps"
        )
    if warnings:
        res["warning"] = "; ".join(warnings)
    return res


# --------------------------------------------------------------------------- rendering

def _rgb(score: float, scale: float) -> tuple[int, int, int, float]:
    """Green for positive, red for negative; alpha = |score| / scale in [0, 1]."""
    a = 0.0 if scale <= 0 else min(1.0, abs(score) / scale)
    return ((22, 163, 74, a) if score >= 0 else (220, 38, 38, a))


def _segments(text: str, tokens: list[dict], scores: list[float]):
    """Cut ``text`` into ``(substring, score or None)`` pieces: token spans and the gaps between."""
    pos = 0
    out = []
    for t, s in zip(tokens, scores):
        a, b = t["start"], t["end"]
        if a < pos:  # overlapping offsets (several tokens for one char): merge into the previous
            if out and out[-1][1] is not None:
                out[-1] = (out[-1][0], out[-1][1] + s)
            continue
        if a > pos:
            out.append((text[pos:a], None))
        out.append((text[a:b], s))
        pos = b
    if pos < len(text):
        out.append((text[pos:], None))
    return out


def render_html(items: Sequence[tuple[str, dict]], title: str = "nlptool attribute") -> str:
    """One self-contained HTML page (inline CSS, no scripts, no web fonts): each text's tokens
    shaded by signed score (green = raises F, red = lowers it; opacity scaled per text by its
    largest |score|), with the prediction, target, F(x), F(baseline) and delta.

    ``items``: ``(text, result)`` pairs, ``result`` from :func:`attribute_texts` (results with an
    ``"error"`` are shown as the error)."""
    esc = _html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="zh"><head><meta charset="utf-8">',
        f"<title>{esc(title)}</title>",
        "<style>",
        "body{font-family:'Noto Sans CJK SC','WenQuanYi Micro Hei','PingFang SC','Microsoft YaHei',sans-serif;"
        "margin:2em;max-width:60em;color:#111}",
        ".rec{border-top:1px solid #ccc;padding:0.8em 0}",
        ".meta{font-size:0.85em;color:#444;margin-bottom:0.4em}",
        ".txt{font-size:1.25em;line-height:1.9em}",
        ".txt span.t{border-radius:3px;padding:0.05em 0}",
        ".warn{color:#a15c00;font-size:0.85em}",
        ".legend span{display:inline-block;padding:0.1em 0.6em;margin-right:0.3em;border-radius:3px}",
        "</style></head><body>",
        f"<h1 style='font-size:1.3em'>{esc(title)}</h1>",
        "<div class='legend'>score: "
        "<span style='background:rgba(220,38,38,1)'>&minus;max</span>"
        "<span style='background:rgba(220,38,38,0.4)'>&minus;</span>"
        "<span style='background:#fff;border:1px solid #ccc'>0</span>"
        "<span style='background:rgba(22,163,74,0.4)'>+</span>"
        "<span style='background:rgba(22,163,74,1)'>+max</span>"
        " green raises the target's F, red lowers it; opacity is |score| / max |score| of the text</div>",
    ]
    for n, (text, res) in enumerate(items, start=1):
        parts.append("<div class='rec'>")
        if res.get("error"):
            parts.append(f"<div class='warn'>#{n}: {esc(str(res['error']))}</div></div>")
            continue
        parts.append(
            f"<div class='meta'>#{n} predicted <b>{esc(str(res['label']))}</b> "
            f"(p = {res['probability']:.3f}); target <b>{esc(str(res['target']))}</b>; "
            f"F(x) = {res['f_x']:.4f}, F(baseline) = {res['f_baseline']:.4f}, "
            f"&Sigma; scores = {sum(res['scores']):.4f}, delta = {res['delta']:.2e}</div>"
        )
        scale = max((abs(s) for s in res["scores"]), default=0.0)
        buf = []
        for piece, s in _segments(text, res["tokens"], res["scores"]):
            if s is None:
                buf.append(esc(piece))
            else:
                r, g, b, a = _rgb(s, scale)
                buf.append(
                    f"<span class='t' title='{s:+.4f}' style='background:rgba({r},{g},{b},{a:.3f})'>{esc(piece)}</span>"
                )
        parts.append("<div class='txt'>" + "".join(buf) + "</div>")
        if res.get("warning"):
            parts.append(f"<div class='warn'>warning: {esc(res['warning'])}</div>")
        parts.append("</div>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def render_rich(text: str, res: dict):
    """A ``rich.text.Text`` of ``text`` with each token's background shaded by its score."""
    from rich.text import Text

    out = Text()
    if res.get("error"):
        out.append(f"error: {res['error']}", style="red")
        return out
    out.append(
        f"{res['label']} p={res['probability']:.3f}  target={res['target']}  delta={res['delta']:.1e}\n", style="dim"
    )
    scale = max((abs(s) for s in res["scores"]), default=0.0)
    for piece, s in _segments(text, res["tokens"], res["scores"]):
        if s is None:
            out.append(piece)
            continue
        r, g, b, a = _rgb(s, scale)
        mix = [int(round(255 + (c - 255) * a)) for c in (r, g, b)]
        out.append(piece, style=f"black on rgb({mix[0]},{mix[1]},{mix[2]})")
    return out


#: CJK fonts looked for, in order (family names as fontconfig/matplotlib know them).
CJK_FAMILIES = (
    "Noto Sans CJK SC", "Noto Sans CJK JP", "Noto Serif CJK SC", "WenQuanYi Micro Hei", "WenQuanYi Zen Hei",
    "Source Han Sans SC", "Source Han Sans CN", "SimHei", "Microsoft YaHei", "PingFang SC", "Heiti SC",
    "AR PL UMing CN", "Droid Sans Fallback",
)
_FONT_GLOBS = ("**/NotoSansCJK*", "**/NotoSerifCJK*", "**/wqy-microhei*", "**/wqy-zenhei*", "**/DroidSansFallback*",
               "**/SourceHanSans*", "**/uming*")


def find_cjk_font() -> str | None:
    """Path of an installed font with CJK glyphs, or None.

    Looks at matplotlib's font list for :data:`CJK_FAMILIES`, then at the files Debian's
    ``fonts-noto-cjk`` / ``fonts-wqy-microhei`` / ``fonts-wqy-zenhei`` install (under
    ``/usr/share/fonts``, ``/usr/local/share/fonts``, ``~/.local/share/fonts``, ``~/.fonts``),
    which catches fonts installed after matplotlib built its cache."""
    import glob
    import os

    from matplotlib import font_manager

    by_name = {f.name: f.fname for f in font_manager.fontManager.ttflist}
    for fam in CJK_FAMILIES:
        if fam in by_name and os.path.exists(by_name[fam]):
            return by_name[fam]
    roots = ["/usr/share/fonts", "/usr/local/share/fonts", os.path.expanduser("~/.local/share/fonts"),
             os.path.expanduser("~/.fonts")]
    for root in roots:
        for pat in _FONT_GLOBS:
            hits = sorted(glob.glob(os.path.join(root, pat), recursive=True))
            if hits:
                return hits[0]
    return None


def _has_cjk(text: str) -> bool:
    from .text import is_cjk_char

    return any(is_cjk_char(c) for c in text)


def _char_width(ch: str) -> float:
    return 1.0 if unicodedata.east_asian_width(ch) in ("W", "F") else 0.6


def render_png(items: Sequence[tuple[str, dict]], path: str, *, font: str | None = None, width_chars: int = 40,
               dpi: int = 150) -> str:
    """Render the heatmap of :func:`render_html` as a PNG image with matplotlib.

    Each text is laid out on a character grid (``width_chars`` full-width cells per line; CJK
    characters take one cell, others 0.6), tokens drawn on a box shaded like the HTML page.

    Args:
        font: a font file; default :func:`find_cjk_font`. Texts with CJK characters need one.

    Returns:
        the font file used (or ``"DejaVu Sans"`` when no CJK text needs one).

    Raises:
        NlptoolError: matplotlib is missing, or no CJK font is installed while a text needs it
            (message says which Debian package to install).
    """
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
        from matplotlib.font_manager import FontProperties
        from matplotlib.patches import Rectangle
    except ImportError:
        raise NlptoolError("--png needs matplotlib: pip install 'nlptool[png]' (or pip install matplotlib)") from None
    need_cjk = any(_has_cjk(t) for t, _ in items)
    if font is None:
        font = find_cjk_font()
    if font is None and need_cjk:
        raise NlptoolError(
            "--png: no font with CJK glyphs is installed, the Chinese characters would be empty boxes. "
            "Install one (Debian/Ubuntu: apt-get install fonts-noto-cjk, or fonts-wqy-microhei) "
            "or pass --font FILE"
        )
    fp = FontProperties(fname=font) if font else FontProperties(family="DejaVu Sans")
    # lay out: list of lines per record; each line a list of (x, w, piece, score)
    laid = []
    total_rows = 0.0
    for text, res in items:
        rows: list[list[tuple[float, float, str, float | None]]] = [[]]
        x = 0.0
        pieces = [(f"error: {res['error']}", None)] if res.get("error") else _segments(text, res["tokens"], res["scores"])
        for piece, s in pieces:
            for part in piece.split("\n"):
                w = sum(_char_width(c) for c in part)
                if x + w > width_chars and x > 0:
                    rows.append([])
                    x = 0.0
                rows[-1].append((x, w, part, s))
                x += w
        laid.append((res, rows))
        total_rows += len(rows) + 1.6
    cell = 0.28  # inches per cell
    fig_w = (width_chars + 2) * cell
    total_rows += 1.0  # legend line
    fig_h = max(1.0, (total_rows + 1.5) * cell * 1.5)
    fig = plt.figure(figsize=(fig_w, fig_h), dpi=dpi)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(-1, width_chars + 1)
    ax.set_ylim(total_rows * 1.5 + 1.5, 0)
    ax.axis("off")
    size = 72 * cell * 0.8
    ax.text(0, 0.6, "green raises the target's F, red lowers it; opacity = |score| / max |score| of the text",
            fontproperties=fp, fontsize=size * 0.5, va="center", color="#666")
    y = 2.0
    for n, (res, rows) in enumerate(laid, start=1):
        if res.get("error"):
            meta = f"#{n} error"
        else:
            meta = (f"#{n} {res['label']} p={res['probability']:.3f}  target={res['target']}  "
                    f"delta={res['delta']:.1e}")
        ax.text(0, y, meta, fontproperties=fp, fontsize=size * 0.6, va="center", color="#444")
        y += 1.5
        scale = max((abs(s) for s in res.get("scores", [])), default=0.0)
        for row in rows:
            for x0, w, part, s in row:
                if s is not None and part:
                    r, g, b, a = _rgb(s, scale)
                    ax.add_patch(Rectangle((x0, y - 0.6), w, 1.2, facecolor=(r / 255, g / 255, b / 255, a),
                                           edgecolor="none"))
                cx = x0
                for ch in part:
                    cw = _char_width(ch)
                    ax.text(cx + cw / 2, y, ch, fontproperties=fp, fontsize=size, ha="center", va="center")
                    cx += cw
            y += 1.5
        y += 0.9
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return font or "DejaVu Sans"
