"""``nlptool train classifier``: fine-tune a sequence classifier on ``text,label`` rows."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..attribute.classifier import ClassifierSettings
from ..training import defaults
from . import train_app
from .console import info, train_log, train_progress
from .options import (DeviceOpt, InputFilesArg, InputFilesOpt, ModelOpt, OutDirOpt, OutputFileOpt, QuietOpt, SeedOpt,
                      choices)
from .run import quiet_libraries

D = defaults(ClassifierSettings)


DataFormat = choices("DataFormat", ("auto", "csv", "tsv", "jsonl"))


@train_app.command("classifier")
def classifier(
    data: list[Path] = InputFilesArg(..., help="Training data: CSV/TSV with a header row, or JSONL."),
    out: Path = OutDirOpt(..., "--out", help="Output model directory (a normal Hugging Face directory)."),
    model: str = ModelOpt(D["model"], help="Encoder to start from: built-in name (zh-bert-mini, en-minilm), local directory or hub id.",
    ),
    text_key: str = typer.Option("text", "--text-key", help="Column / JSON field holding the text."),
    label_key: str = typer.Option("label", "--label-key", help="Column / JSON field holding the label."),
    data_format: DataFormat = typer.Option(DataFormat.auto, "--input-format", "--data-format", help="How DATA is read (auto: by file extension)."),
    holdout: float = typer.Option(D["holdout"], "--holdout", min=0.0, max=0.99, help="Share of DATA held out (stratified by label) for accuracy/F1; ignored with --eval."),
    eval_files: Optional[list[Path]] = InputFilesOpt(None, "--eval", help="Evaluation data instead of --holdout (repeatable)."),
    epochs: float = typer.Option(D["epochs"], "--epochs", min=1e-6, help="Passes over the training rows."),
    max_steps: Optional[int] = typer.Option(D["max_steps"], "--max-steps", min=1, help="Optimisation steps (overrides --epochs; the schedule decays to 0 there)."),
    batch_size: int = typer.Option(D["batch_size"], "--batch-size", min=1, help="Rows per step."),
    learning_rate: float = typer.Option(D["learning_rate"], "--learning-rate", min=1e-12, help="Peak AdamW learning rate (linear decay)."),
    max_length: int = typer.Option(D["max_length"], "--max-length", min=8, help="Tokens per text (special tokens included; longer texts are truncated)."),
    max_minutes: Optional[float] = typer.Option(D["max_minutes"], "--max-minutes", min=1e-6, help="Stop after this many minutes, evaluate and save."),
    report: Optional[Path] = OutputFileOpt(None, "--report", help="Metrics JSON report (default OUT/metrics.json)."),
    seed: int = SeedOpt(D["seed"], help="Random seed (split, head initialisation, shuffling)."),
    device: str = DeviceOpt,
    quiet: bool = QuietOpt,
):
    """Fine-tune AutoModelForSequenceClassification on text,label data; held-out accuracy/F1 per epoch."""
    from ..attribute.classifier import LabeledData, read_labeled, train_classifier

    fmt = data_format.value
    quiet_libraries()
    rows = read_labeled(data, text_key=text_key, label_key=label_key, data_format=fmt)
    eval_rows = None
    if eval_files:
        parts = [read_labeled([f], text_key=text_key, label_key=label_key, data_format=fmt) for f in eval_files]
        eval_rows = LabeledData(
            [t for p in parts for t in p.texts], [x for p in parts for x in p.labels], [w for p in parts for w in p.where]
        )
    info(f"{len(rows.texts):,} rows, labels {sorted(set(rows.labels))}; model {model}", quiet)
    with train_progress(quiet) as progress:
        settings = ClassifierSettings(model=model, holdout=holdout, epochs=epochs, max_steps=max_steps,
                                      batch_size=batch_size, learning_rate=learning_rate, max_length=max_length,
                                      max_minutes=max_minutes, seed=seed, device=device, log=train_log(quiet),
                                      progress=progress)
        result = train_classifier(rows, out, settings, eval_data=eval_rows, metrics_path=report)
    fin = result["final"]
    where = report or (out / "metrics.json")
    if fin:
        info(
            f"saved {out}: {result['n_train']:,} train / {result['n_heldout']:,} held-out rows, "
            f"accuracy {fin['accuracy']:.4f}, macro-F1 {fin['f1']:.4f}, {result['seconds']:.0f} s; metrics {where}",
            quiet,
        )
    else:
        info(f"saved {out} ({result['steps']} steps, no held-out rows); metrics {where}", quiet)
