"""``nlptool train reader``: an extractive span reader (BERT start/end) for qa-gen's round trip."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..qagen.reader import ReaderSettings
from ..training import defaults
from . import train_app
from .console import info, train_log, train_progress
from .options import DeviceOpt, InputFilesArg, InputFilesOpt, ModelOpt, OutDirOpt, QuietOpt, SeedOpt
from .run import quiet_libraries

D = defaults(ReaderSettings)


@train_app.command("reader")
def train_reader(
    data: list[Path] = InputFilesArg(..., help="Training data: SQuAD v1.1 JSON (e.g. CMRC 2018) or JSONL {passage, question, answer}."),
    out: Path = OutDirOpt(..., "--out", help="Output model directory."),
    model: str = ModelOpt(D["model"], help="Encoder to start from: built-in name, local directory or hub id."),
    holdout: float = typer.Option(D["holdout"], "--holdout", min=0.0, max=0.999, help="Share of the articles held out for exact match / char F1 (without --eval)."),
    eval_file: Optional[list[Path]] = InputFilesOpt(None, "--eval", help="Evaluation data instead of --holdout (repeatable)."),
    max_passage_chars: int = typer.Option(D["max_passage_chars"], "--max-passage-chars", min=8, help="Passage chunk in characters (the chunk containing the answer)."),
    epochs: float = typer.Option(D["epochs"], "--epochs", min=1e-6, help="Passes over the training examples."),
    max_steps: Optional[int] = typer.Option(D["max_steps"], "--max-steps", min=1, help="Optimisation steps instead of --epochs."),
    batch_size: int = typer.Option(D["batch_size"], "--batch-size", min=1, help="Sequences per step."),
    learning_rate: float = typer.Option(D["learning_rate"], "--learning-rate", min=1e-12, help="Peak AdamW learning rate."),
    max_minutes: Optional[float] = typer.Option(D["max_minutes"], "--max-minutes", min=1e-6, help="Stop after this many minutes and save."),
    seed: int = SeedOpt(D["seed"], help="Random seed (held-out articles, shuffling)."),
    device: str = DeviceOpt,
    quiet: bool = QuietOpt,
):
    """Fine-tune a BERT as an extractive reader (BertForQuestionAnswering span start/end)."""
    from ..qagen import read_qa_data
    from ..qagen.reader import train_reader as train

    quiet_libraries()
    items, _ = read_qa_data(data)
    eval_items = read_qa_data(eval_file)[0] if eval_file else None
    with train_progress(quiet) as progress:
        settings = ReaderSettings(model=model, holdout=holdout, max_passage_chars=max_passage_chars, epochs=epochs,
                                  max_steps=max_steps, batch_size=batch_size, learning_rate=learning_rate,
                                  max_minutes=max_minutes, seed=seed, device=device, log=train_log(quiet),
                                  progress=progress)
        metrics = train(items, out, settings, eval_items=eval_items)
    held = metrics["heldout"]
    info(f"saved {out}: {metrics['steps']} steps, {metrics['seconds']:.0f} s"
         + (f", held-out exact match {held['exact_match']:.3f}, char F1 {held['char_f1']:.3f}" if held else ""), quiet)
