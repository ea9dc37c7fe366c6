"""``nlptool attribute``: integrated-gradients token/word scores (and heatmaps) for a text classifier."""

from __future__ import annotations

import enum
from typing import Optional

import typer

from . import app
from ._common import (
    DeviceOpt,
    InputFormatOpt,
    InputsArg,
    OutputOpt,
    QuietOpt,
    StrictOpt,
    TextKeyOpt,
    boundary,
    info,
    optional_str,
)
from ._common import OutputFileOpt, ShardOpt


class Method(str, enum.Enum):
    gausslegendre = "gausslegendre"
    riemann_trapezoid = "riemann_trapezoid"


class Baseline(str, enum.Enum):
    pad = "pad"
    mask = "mask"
    unk = "unk"


class Explain(str, enum.Enum):
    probability = "probability"
    logit = "logit"


class Granularity(str, enum.Enum):
    token = "token"
    word = "word"


class Format(str, enum.Enum):
    jsonl = "jsonl"
    terminal = "terminal"


@app.command("attribute")
def attribute(
    inputs: list[str] = InputsArg,
    output: str = OutputOpt,
    input_format: str = InputFormatOpt,
    text_key: str = TextKeyOpt,
    model: str = typer.Option(
        "zh-sentiment-mini", "--model", "-m",
        help="A trained sequence classifier: built-in name (zh-sentiment-mini: Chinese review sentiment), local "
        "directory (e.g. from `nlptool train classifier`) or hub id. Models without a trained head are refused.",
    ),
    target: Optional[str] = typer.Option(None, "--target", help="Label name or index to explain, or 'all' for every label (default: each text's predicted label)."),
    granularity: Granularity = typer.Option(Granularity.token, "--granularity", help="token, or word (token scores summed per word: jieba words for Chinese text, the tokenizer's words otherwise)."),
    steps: int = typer.Option(50, "--steps", min=2, help="Integration steps (more = smaller completeness delta)."),
    method: Method = typer.Option(Method.gausslegendre, "--method", help="captum's integration nodes."),
    baseline: Baseline = typer.Option(Baseline.pad, "--baseline", help="Token replacing every non-special token in the reference input."),
    explain: Explain = typer.Option(Explain.probability, "--explain", help="Which output the attributions explain: the target's softmax probability or its logit."),
    internal_batch_size: Optional[int] = typer.Option(None, "--internal-batch-size", min=1, help="Rows per forward pass inside the integral (bounds memory; default steps x batch)."),
    batch_size: int = typer.Option(8, "--batch-size", min=1, help="Texts integrated together."),
    max_length: Optional[int] = typer.Option(None, "--max-length", min=8, help="Window in tokens (default: the model's); longer texts are truncated with a warning."),
    out_format: Format = typer.Option(Format.jsonl, "--format", help="jsonl (data on stdout) or terminal (coloured rendering with rich)."),
    html: Optional[str] = OutputFileOpt(None, "--html", help="Also write one self-contained HTML heatmap page to this file."),
    png: Optional[str] = OutputFileOpt(None, "--png", help="Also render the heatmap as a PNG image (matplotlib; needs a CJK font for Chinese)."),
    font: Optional[str] = typer.Option(None, "--font", help="Font file for --png (default: an installed CJK font, e.g. from fonts-noto-cjk)."),
    device: str = DeviceOpt,
    strict: bool = StrictOpt,
    quiet: bool = QuietOpt,
    shard: Optional[str] = ShardOpt,
):
    """Integrated gradients (captum) per token or word: signed scores, character offsets, completeness delta; HTML/PNG/terminal heatmaps."""
    with boundary():
        from ..attribute import attribute_texts, render_html, render_png, render_rich
        from ..jsonl import JsonlWriter
        from ..paths import atomic_output
        from ..engine import map_records
        from ..records import read_records
        from ._common import load_for_cli

        records = read_records(inputs, input_format=input_format, keys=[text_key], strict=strict, shard=shard)
        loaded = load_for_cli(model, "sequence-classification", device, quiet)
        if granularity is Granularity.word:
            from ._common import quiet_jieba

            quiet_jieba()
        target = optional_str(target)
        keep = html is not None or png is not None
        shown: list[tuple[str, dict]] = []
        n_warn = 0

        def batch(recs):
            res = attribute_texts(
                loaded, [r.text for r in recs], target=target, steps=steps, method=method.value,
                baseline=baseline.value, explain=explain.value, granularity=granularity.value,
                internal_batch_size=internal_batch_size, max_length=max_length, batch_size=batch_size,
            )
            if keep:
                shown.extend((r.text, x) for r, x in zip(recs, res))
            return res

        if out_format is Format.terminal:
            from rich.console import Console

            with atomic_output(output, "w", inputs=inputs or ()) as fh:
                out_console = Console(file=fh, highlight=False, soft_wrap=True)
                for obj in map_records(records, batch, chunk_size=64, strict=strict):
                    n_warn += bool(obj.get("warning"))
                    text = obj.get(text_key, "") if isinstance(obj.get(text_key, ""), str) else ""
                    out_console.print(render_rich(text, obj))
        else:
            with JsonlWriter(output) as w:
                for obj in map_records(records, batch, chunk_size=64, strict=strict):
                    n_warn += bool(obj.get("warning"))
                    w.write(obj)
        if n_warn:
            info(f"{n_warn} record(s) carry a warning (truncated text, or |delta| above 5 % of |F(x) - F(baseline)|: use more --steps)", quiet)
        if html:
            with atomic_output(html, "w", inputs=inputs or ()) as fh:
                fh.write(render_html(shown))
            info(f"heatmap page: {html}", quiet)
        if png:
            with atomic_output(png, "wb", inputs=inputs or ()) as fh:
                used = render_png(shown, fh, font=font)
            info(f"heatmap image: {png} (font {used})", quiet)
