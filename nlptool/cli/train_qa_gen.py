"""``nlptool train qa-gen``: fine-tune a BERT masked LM as a UniLM question-answer generator."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..qagen.train import QAGenSettings
from ..training import defaults
from . import train_app
from .console import info, train_log, train_progress
from .options import DeviceOpt, InputFilesArg, InputFilesOpt, ModelOpt, OutDirOpt, QuietOpt, SeedOpt
from .run import quiet_libraries

T = defaults(QAGenSettings)


@train_app.command("qa-gen")
def train_qa_gen(
    data: list[Path] = InputFilesArg(..., help="Training data: SQuAD v1.1 JSON (e.g. CMRC 2018) or JSONL {passage, question, answer[, answer_start, article]}."),
    out: Path = OutDirOpt(..., "--out", help="Output model directory (a normal Hugging Face directory + generation settings)."),
    model: str = ModelOpt(T["model"], help="Masked LM to start from: built-in name, local directory or hub id (its MLM head becomes the generator)."),
    holdout: float = typer.Option(T["holdout"], "--holdout", min=0.0, max=0.999, help="Share of the articles held out for the validation loss (without --eval)."),
    eval_file: Optional[list[Path]] = InputFilesOpt(None, "--eval", help="Validation data instead of --holdout (repeatable)."),
    max_passage_chars: int = typer.Option(T["max_passage_chars"], "--max-passage-chars", min=8, help="Passage chunk in characters (cut at sentence ends)."),
    max_answer_len: int = typer.Option(T["max_answer_len"], "--max-answer-len", min=1, help="Longest answer in tokens (longer training answers are dropped)."),
    max_question_len: int = typer.Option(T["max_question_len"], "--max-question-len", min=1, help="Longest question in tokens (longer ones are truncated)."),
    epochs: float = typer.Option(T["epochs"], "--epochs", min=1e-6, help="Passes over the training examples."),
    max_steps: Optional[int] = typer.Option(T["max_steps"], "--max-steps", min=1, help="Optimisation steps instead of --epochs (the schedule decays to 0 there)."),
    batch_size: int = typer.Option(T["batch_size"], "--batch-size", min=1, help="Sequences per step."),
    learning_rate: float = typer.Option(T["learning_rate"], "--learning-rate", min=1e-12, help="Peak AdamW learning rate (linear warm-up and decay)."),
    label_smoothing: float = typer.Option(T["label_smoothing"], "--label-smoothing", min=0.0, max=0.999, help="Label smoothing of the training loss (0 = plain cross-entropy)."),
    mark_answer: bool = typer.Option(T["answer_marks"], "--mark-answer/--no-mark-answer", help="Mark the answer span inside the passage (segment id 1) when decoding the question (answer-position feature)."),
    no_repeat_ngram: int = typer.Option(T["no_repeat_ngram"], "--no-repeat-ngram", min=0, help="Default n-gram blocking of question beam search stored with the model (0 = off)."),
    length_penalty: float = typer.Option(T["length_penalty"], "--length-penalty", min=0.0, help="Default beam length penalty alpha stored with the model (score / length^alpha)."),
    max_minutes: Optional[float] = typer.Option(T["max_minutes"], "--max-minutes", min=1e-6, help="Stop after this many minutes and keep the best checkpoint."),
    resume: bool = typer.Option(T["resume"], "--resume", help="Continue from the last checkpoint in OUT.work/checkpoints (kept after every run; without --resume a run starts over)."),
    seed: int = SeedOpt(T["seed"], help="Random seed (held-out articles, shuffling)."),
    device: str = DeviceOpt,
    quiet: bool = QuietOpt,
):
    """Fine-tune a BERT masked LM as a UniLM seq2seq question-answer generator (Su 2020-07-25)."""
    from ..qagen import read_qa_data
    from ..qagen import train_qa_gen as train

    quiet_libraries()
    items, counts = read_qa_data(data)
    eval_items = None
    if eval_file:
        eval_items, _ = read_qa_data(eval_file)
    skipped = counts["skipped_answer_not_in_passage"] + counts["skipped_no_answer"]
    info(f"{len(items):,} question-answer pairs ({skipped} skipped: no answer in the passage); model {model}", quiet)
    with train_progress(quiet) as progress:
        settings = QAGenSettings(
            model=model, holdout=holdout, max_passage_chars=max_passage_chars, max_answer_len=max_answer_len,
            max_question_len=max_question_len, epochs=epochs, max_steps=max_steps, batch_size=batch_size,
            learning_rate=learning_rate, max_minutes=max_minutes, resume=resume, seed=seed, device=device,
            answer_marks=mark_answer, label_smoothing=label_smoothing, no_repeat_ngram=no_repeat_ngram,
            length_penalty=length_penalty, log=train_log(quiet), progress=progress)
        metrics = train(items, out, settings, eval_items=eval_items)
    val = metrics["validation_loss"]
    info(
        f"saved {out}: {metrics['steps']} steps, {metrics['seconds']:.0f} s"
        + (f", validation loss {val:.3f} nats/token" if val is not None else "")
        + f"; metrics {out / 'metrics.json'}",
        quiet,
    )
