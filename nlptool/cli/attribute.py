"""``nlptool attribute``: integrated-gradients token scores (and heatmaps) for a text classifier."""

from __future__ import annotations

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


@app.command("attribute")
def attribute(
    inputs: list[str] = InputsArg,
    output: str = OutputOpt,
    input_format: str = InputFormatOpt,
    text_key: str = TextKeyOpt,
    model: str = typer.Option(
        "zh-bert-mini", "--model", "-m",
        help="A sequence classifier: local directory (e.g. from `nlptool train classifier`), hub id or built-in name.",
    ),
    target: Optional[str] = typer.Option(None, "--target", help="Label name or index to explain (default: each text's predicted label)."),
    steps: int = typer.Option(50, "--steps", help="Integration steps (more = smaller completeness delta)."),
    method: str = typer.Option("gausslegendre", "--method", help="gausslegendre|riemann_trapezoid (captum's integration nodes)."),
    baseline: str = typer.Option("pad", "--baseline", help="pad|mask|unk: token replacing every non-special token in the reference input."),
    output_kind: str = typer.Option("probability", "--output", help="F explained: probability (softmax of the target) or logit."),
    internal_batch_size: Optional[int] = typer.Option(None, "--internal-batch-size", help="Rows per forward pass inside the integral (bounds memory; default steps x batch)."),
    batch_size: int = typer.Option(8, "--batch-size", help="Texts integrated together."),
    max_length: Optional[int] = typer.Option(None, "--max-length", help="Window in tokens (default: the model's); longer texts are truncated with a warning."),
    out_format: str = typer.Option("jsonl", "--format", help="jsonl (data on stdout) or terminal (coloured rendering with rich)."),
    html: Optional[str] = typer.Option(None, "--html", help="Also write one self-contained HTML heatmap page to this file."),
    png: Optional[str] = typer.Option(None, "--png", help="Also render the heatmap as a PNG image (matplotlib; needs a CJK font for Chinese)."),
    font: Optional[str] = typer.Option(None, "--font", help="Font file for --png (default: an installed CJK font, e.g. from fonts-noto-cjk)."),
    device: str = DeviceOpt,
    strict: bool = StrictOpt,
    quiet: bool = QuietOpt,
):
    """Integrated gradients (captum) per token: signed scores, character offsets, completeness delta; HTML/PNG/terminal heatmaps."""
    with boundary():
        from ..attribution import BASELINES, METHODS, OUTPUTS
        from ..errors import UsageError

        if method not in METHODS:
            raise UsageError(f"--method {method}: expected one of {', '.join(METHODS)}")
        if baseline not in BASELINES:
            raise UsageError(f"--baseline {baseline}: expected one of {', '.join(BASELINES)}")
        if output_kind not in OUTPUTS:
            raise UsageError(f"--output {output_kind}: expected one of {', '.join(OUTPUTS)}")
        if out_format not in ("jsonl", "terminal"):
            raise UsageError(f"--format {out_format}: expected jsonl or terminal")
        if steps < 2:
            raise UsageError(f"--steps {steps}: expected at least 2")

        from ..attribution import attribute_texts, render_html, render_png, render_rich
        from ..io import JsonlWriter, map_records, read_records
        from ._common import load_for_cli

        records = read_records(inputs, input_format=input_format, keys=[text_key], strict=strict)
        loaded = load_for_cli(model, "sequence-classification", device, quiet)
        target = optional_str(target)
        keep = html is not None or png is not None
        shown: list[tuple[str, dict]] = []
        n_warn = 0

        def batch(recs):
            res = attribute_texts(
                loaded, [r.text for r in recs], target=target, steps=steps, method=method, baseline=baseline,
                output=output_kind, internal_batch_size=internal_batch_size, max_length=max_length,
                batch_size=batch_size,
            )
            if keep:
                shown.extend((r.text, x) for r, x in zip(recs, res))
            return res

        if out_format == "terminal":
            import sys

            from rich.console import Console

            fh = sys.stdout if output == "-" else open(output, "w", encoding="utf-8")
            out_console = Console(file=fh, highlight=False, soft_wrap=True)
            try:
                for obj in map_records(records, batch, chunk_size=64, strict=strict):
                    n_warn += bool(obj.get("warning"))
                    text = obj.get(text_key, "") if isinstance(obj.get(text_key, ""), str) else ""
                    out_console.print(render_rich(text, obj))
            finally:
                if fh is not sys.stdout:
                    fh.close()
        else:
            with JsonlWriter(output) as w:
                for obj in map_records(records, batch, chunk_size=64, strict=strict):
                    n_warn += bool(obj.get("warning"))
                    w.write(obj)
        if n_warn:
            info(f"{n_warn} record(s) carry a warning (truncated text, or |delta| above 5 % of |F(x) - F(baseline)|)", quiet)
        if html:
            with open(html, "w", encoding="utf-8") as fh:
                fh.write(render_html(shown))
            info(f"heatmap page: {html}", quiet)
        if png:
            used = render_png(shown, png, font=font)
            info(f"heatmap image: {png} (font {used})", quiet)
