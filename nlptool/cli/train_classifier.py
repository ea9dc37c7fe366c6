"""``nlptool train classifier``: fine-tune a sequence classifier on ``text,label`` rows."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from . import train_app
from ._common import DeviceOpt, QuietOpt, boundary, console, info


@train_app.command("classifier")
def classifier(
    data: list[Path] = typer.Argument(..., help="Training data: CSV/TSV with a header row, or JSONL.", show_default=False),
    out: Path = typer.Option(..., "--out", help="Output model directory (a normal Hugging Face directory)."),
    model: str = typer.Option(
        "zh-bert-mini", "--model", "-m",
        help="Encoder to start from: built-in name (zh-bert-mini, en-minilm), local directory or hub id.",
    ),
    text_key: str = typer.Option("text", "--text-key", help="Column / JSON field holding the text."),
    label_key: str = typer.Option("label", "--label-key", help="Column / JSON field holding the label."),
    data_format: str = typer.Option("auto", "--data-format", help="auto|csv|tsv|jsonl (auto: by file extension)."),
    holdout: float = typer.Option(0.2, "--holdout", help="Fraction held out (stratified by label) for accuracy/F1."),
    eval_file: Optional[Path] = typer.Option(None, "--eval", help="Held-out file instead of --holdout."),
    epochs: float = typer.Option(2.0, "--epochs", help="Passes over the training rows."),
    batch_size: int = typer.Option(32, "--batch-size", help="Rows per step."),
    learning_rate: float = typer.Option(5e-5, "--learning-rate", help="Peak AdamW learning rate (linear decay)."),
    max_length: int = typer.Option(128, "--max-length", help="Tokens per text (longer texts are truncated)."),
    max_minutes: Optional[float] = typer.Option(None, "--max-minutes", help="Stop after this many minutes, evaluate and save."),
    metrics: Optional[Path] = typer.Option(None, "--metrics", help="Metrics JSON file (default OUT/metrics.json)."),
    seed: int = typer.Option(0, "--seed", help="Random seed (split, head initialisation, shuffling)."),
    device: str = DeviceOpt,
    quiet: bool = QuietOpt,
):
    """Fine-tune AutoModelForSequenceClassification on text,label data; held-out accuracy/F1 per epoch."""
    with boundary():
        from ..classifier import read_labeled, train_classifier
        from ._common import quiet_libraries

        quiet_libraries()
        rows = read_labeled(data, text_key=text_key, label_key=label_key, data_format=data_format)
        eval_rows = None
        if eval_file is not None:
            eval_rows = read_labeled([eval_file], text_key=text_key, label_key=label_key, data_format=data_format)
        info(f"{len(rows.texts):,} rows, labels {sorted(set(rows.labels))}; model {model}", quiet)
        result = train_classifier(
            rows, out, model=model, holdout=holdout, eval_data=eval_rows, epochs=epochs, batch_size=batch_size,
            learning_rate=learning_rate, max_length=max_length, max_minutes=max_minutes, seed=seed,
            device=device, metrics_path=metrics,
            log=None if quiet else (lambda s: console.print(s, highlight=False, soft_wrap=True)),
        )
        fin = result["final"]
        where = metrics or (out / "metrics.json")
        if fin:
            info(
                f"saved {out}: {result['n_train']:,} train / {result['n_heldout']:,} held-out rows, "
                f"accuracy {fin['accuracy']:.4f}, macro-F1 {fin['f1']:.4f}, {result['seconds']:.0f} s; metrics {where}",
                quiet,
            )
        else:
            info(f"saved {out} ({result['steps']} steps, no held-out rows); metrics {where}", quiet)
