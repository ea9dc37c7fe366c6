"""``nlptool attribute``: integrated-gradients token/word scores (and heatmaps) for a text classifier.

Parse the options, build a :class:`nlptool.attribute.Attributor` (its defaults, rules, formats and
side outputs), run it.
"""

from __future__ import annotations

from typing import Optional

import typer

from ..attribute.command import BOUNDS, CHUNK_SIZE, DEFAULT_MODEL, FORMATS, Attributor
from ..attribute.command import OPTION_DEFAULTS as D
from ..attribute.ig import BASELINES, EXPLAIN, GRANULARITIES, METHODS
from . import app
from .options import (ThreadsOpt, DeviceOpt, InputFormatOpt, InputsArg, ModelOpt, OutputFileOpt, OutputOpt, QuietOpt, ShardOpt,
                      StrictOpt, TextKeyOpt, choices)
from .run import quiet_jieba, run_record_command

Method = choices("Method", METHODS)
Baseline = choices("Baseline", BASELINES)
Explain = choices("Explain", EXPLAIN)
Granularity = choices("Granularity", GRANULARITIES)
Format = choices("Format", FORMATS)


@app.command("attribute")
def attribute(
    inputs: list[str] = InputsArg,
    output: str = OutputOpt,
    input_format: str = InputFormatOpt,
    text_key: str = TextKeyOpt,
    model: str = ModelOpt(D["model"], help=f"A trained sequence classifier: built-in name ({DEFAULT_MODEL}: Chinese review sentiment), local "
        "directory (e.g. from `nlptool train classifier`) or hub id. Models without a trained head are refused.",
    ),
    target: Optional[str] = typer.Option(D["target"], "--target", help="Label name or index to explain, or 'all' for every label (default: each text's predicted label)."),
    granularity: Granularity = typer.Option(D["granularity"], "--granularity", help="token, or word (token scores summed per word: jieba words for Chinese text, the tokenizer's words otherwise)."),
    steps: int = typer.Option(D["steps"], "--steps", min=BOUNDS["steps"][0], help="Integration steps (more = smaller completeness delta)."),
    method: Method = typer.Option(D["method"], "--method", help="captum's integration nodes."),
    baseline: Baseline = typer.Option(D["baseline"], "--baseline", help="Token replacing every non-special token in the reference input."),
    explain: Explain = typer.Option(D["explain"], "--explain", help="Which output the attributions explain: the target's softmax probability or its logit."),
    internal_batch_size: Optional[int] = typer.Option(D["internal_batch_size"], "--internal-batch-size", min=BOUNDS["internal_batch_size"][0], help="Rows (text x step) per forward pass inside the integral (bounds memory; default: passes of about 4,096 tokens on the CPU)."),
    batch_size: int = typer.Option(D["batch_size"], "--batch-size", min=BOUNDS["batch_size"][0], help="Texts integrated together."),
    max_length: Optional[int] = typer.Option(D["max_length"], "--max-length", min=BOUNDS["max_length"][0], help="Window in tokens (default: the model's); longer texts are truncated with a warning."),
    out_format: Format = typer.Option("jsonl", "--format", help="jsonl (data on stdout) or terminal (coloured rendering with rich)."),
    html: Optional[str] = OutputFileOpt(D["html"], "--html", help="Also write one self-contained HTML heatmap page to this file."),
    png: Optional[str] = OutputFileOpt(D["png"], "--png", help="Also render the heatmap as a PNG image (matplotlib; needs a CJK font for Chinese)."),
    font: Optional[str] = typer.Option(D["font"], "--font", help="Font file for --png (default: an installed CJK font, e.g. from fonts-noto-cjk)."),
    device: str = DeviceOpt,
    strict: bool = StrictOpt,
    quiet: bool = QuietOpt,
    threads: Optional[int] = ThreadsOpt(),
    shard: Optional[str] = ShardOpt,
):
    """Integrated gradients (captum) per token or word: signed scores, character offsets, completeness delta; HTML/PNG/terminal heatmaps."""
    attributor = Attributor(model=model, target=target, granularity=granularity.value, steps=steps,
                            method=method.value, baseline=baseline.value, explain=explain.value,
                            internal_batch_size=internal_batch_size, batch_size=batch_size, max_length=max_length,
                            device=device, text_key=text_key, html=html, png=png, font=font,
                            tty=None if output == "-" else False)
    if granularity.value == "word":
        quiet_jieba()  # jieba logs its dictionary build on stderr
    run_record_command(attributor, inputs, output=output, input_format=input_format, strict=strict, shard=shard,
                       chunk_size=CHUNK_SIZE, fmt=out_format.value, quiet=quiet, name="attribute")
