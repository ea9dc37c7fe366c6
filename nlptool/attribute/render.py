"""Heatmaps of integrated-gradients results: a self-contained HTML page, a rich terminal rendering,
and a PNG image (matplotlib with a CJK font).

Every renderer takes ``(text, result)`` pairs with ``result`` from
:func:`nlptool.attribute.attribute_texts`; units are tokens or words (``--granularity``), and a
``target="all"`` result is drawn once per label.
"""

from __future__ import annotations

import html as _html
import unicodedata
from collections.abc import Sequence

from ..errors import NlptoolError
from .ig import _has_cjk


def _units(res: dict) -> list[dict]:
    return res.get("words") or res.get("tokens") or []


def views(res: dict) -> list[dict]:
    """One flat result per explained label: ``res`` itself, or for a ``target="all"`` result one
    copy per entry of ``attributions`` with that entry's fields on top."""
    if res.get("attributions"):
        base = {k: v for k, v in res.items() if k != "attributions"}
        return [{**base, **a} for a in res["attributions"]]
    return [res]

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
    flat = [(n, text, v) for n, (text, whole) in enumerate(items, start=1) for v in views(whole)]
    for n, text, res in flat:
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
        for piece, s in _segments(text, _units(res), res["scores"]):
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


def render_plain(text: str, whole: dict) -> str:
    """The terminal view without colours (a pipe, a file, ``NO_COLOR``): the same header line
    per explained label, then each token (word) followed by its score in brackets, e.g.
    ``服务[+0.412]太[-0.031]差[+0.388]``; text between units is kept as it is."""
    if whole.get("error"):
        return f"error: {whole['error']}"
    lines = []
    for res in views(whole):
        lines.append(f"{res['label']} p={res['probability']:.3f}  target={res['target']}  delta={res['delta']:.1e}")
        lines.append("".join(piece if s is None else f"{piece}[{s:+.3f}]"
                             for piece, s in _segments(text, _units(res), res["scores"])))
    return "\n".join(lines)


def render_rich(text: str, whole: dict):
    """A ``rich.text.Text`` of ``text`` with each token's (word's) background shaded by its score;
    one line per explained label."""
    from rich.text import Text

    out = Text()
    if whole.get("error"):
        out.append(f"error: {whole['error']}", style="red")
        return out
    for k, res in enumerate(views(whole)):
        if k:
            out.append("\n")
        out.append(
            f"{res['label']} p={res['probability']:.3f}  target={res['target']}  delta={res['delta']:.1e}\n", style="dim"
        )
        scale = max((abs(s) for s in res["scores"]), default=0.0)
        for piece, s in _segments(text, _units(res), res["scores"]):
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


def _char_width(ch: str) -> float:
    return 1.0 if unicodedata.east_asian_width(ch) in ("W", "F") else 0.6


def check_png_font(font: str | None) -> str:
    """The font file a PNG heatmap will use, checked before any model loads: ``font`` when given
    (it must exist and be a font FreeType can open), else an installed CJK font
    (:func:`find_cjk_font`).

    Raises:
        UsageError: matplotlib is missing; ``font`` does not exist or is not a font; no CJK font
            is installed (naming ``--font`` and the Debian package to install).
    """
    import os

    from ..errors import UsageError

    try:
        from matplotlib import ft2font
    except ImportError:
        raise UsageError("--png needs matplotlib: pip install 'nlptool[png]' (or pip install matplotlib)") from None
    if font is None:
        found = find_cjk_font()
        if found is None:
            raise UsageError("--png: no font with CJK glyphs is installed (the Chinese characters would be empty "
                             "boxes): apt-get install fonts-noto-cjk (or fonts-wqy-microhei), or give --font FILE")
        return found
    if not os.path.isfile(font):
        raise UsageError(f"--font {font}: no such file")
    try:
        ft2font.FT2Font(font)
    except (RuntimeError, OSError, ValueError) as exc:
        raise UsageError(f"--font {font}: not a font file FreeType can open ({exc})") from None
    return font


def render_png(items: Sequence[tuple[str, dict]], path, *, font: str | None = None, width_chars: int = 40,
               dpi: int = 150) -> str:
    """Render the heatmap of :func:`render_html` as a PNG image with matplotlib.

    Each text is laid out on a character grid (``width_chars`` full-width cells per line; CJK
    characters take one cell, others 0.6), tokens drawn on a box shaded like the HTML page.

    Args:
        path: a file name or a binary file object the PNG is written to.
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
        raise NlptoolError("PNG rendering needs matplotlib: pip install 'nlptool[png]' (or pip install matplotlib)") from None
    need_cjk = any(_has_cjk(t) for t, _ in items)
    if font is None:
        font = find_cjk_font()
    if font is None and need_cjk:
        raise NlptoolError(
            "PNG rendering: no font with CJK glyphs is installed, the Chinese characters would be empty boxes. "
            "Install one (Debian/Ubuntu: apt-get install fonts-noto-cjk, or fonts-wqy-microhei) "
            "or name a font file"
        )
    fp = FontProperties(fname=font) if font else FontProperties(family="DejaVu Sans")
    # lay out: list of lines per record; each line a list of (x, w, piece, score)
    laid = []
    total_rows = 0.0
    flat = [(text, v) for text, whole in items for v in views(whole)]
    for text, res in flat:
        rows: list[list[tuple[float, float, str, float | None]]] = [[]]
        x = 0.0
        pieces = [(f"error: {res['error']}", None)] if res.get("error") else _segments(text, _units(res), res["scores"])
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
    fig.savefig(path, dpi=dpi, format="png")
    plt.close(fig)
    return font or "DejaVu Sans"
