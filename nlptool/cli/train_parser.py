"""``nlptool train parser``: self-train the biaffine dependency parser on Perturbed Masking trees (no treebank)."""

from __future__ import annotations

from typing import Optional

import typer

from ..segment.train_parser import ParserSettings
from ..training import defaults
from . import train_app
from .console import info, train_log, train_progress
from .options import DeviceOpt, InputFileOpt, InputFilesArg, ModelOpt, OutDirOpt, QuietOpt, SeedOpt
from .run import quiet_libraries

D = defaults(ParserSettings)


@train_app.command("parser")
def parser(
    data: list[str] = InputFilesArg(..., help="Raw-text corpus file(s), one paragraph per line."),
    out: str = OutDirOpt(..., "--out", help="The model directory written."),
    model: str = ModelOpt(D["teacher"], help="The teacher BERT probed by Perturbed Masking (built-in name, local directory or hub id)."),
    segmenter: str = typer.Option(D["segmenter"], "--segmenter", help="The tagger that cuts the corpus into words (built-in name or a `train segmenter` directory)."),
    sentences: int = typer.Option(D["sentences"], "--sentences", min=10, help="Training sentences (the first of the shuffled corpus that fit the length range)."),
    min_words: int = typer.Option(D["min_words"], "--min-words", min=1, help="Shortest training sentence, in words."),
    max_words: int = typer.Option(D["max_words"], "--max-words", min=1, max=200, help="Longest training sentence, in words."),
    rounds: int = typer.Option(D["rounds"], "--rounds", min=1, max=20, help="Self-training rounds (the student relabels the sentences between rounds)."),
    epochs: float = typer.Option(D["epochs"], "--epochs", min=0.01, help="Passes over the sentences per round."),
    batch_size: int = typer.Option(D["batch_size"], "--batch-size", min=1, help="Sentences per optimisation step."),
    learning_rate: float = typer.Option(D["learning_rate"], "--learning-rate", min=1e-7, help="Peak Adam learning rate (linear decay to 0)."),
    dev_file: Optional[str] = InputFileOpt(D["dev_file"], "--dev", help="A CoNLL-U treebank scored after every round (UAS on gold words, report only)."),
    seed: int = SeedOpt(D["seed"], help="Corpus shuffle, initialisation and batch order."),
    device: str = DeviceOpt,
    quiet: bool = QuietOpt,
):
    """Train a dependency parser on the trees of Perturbed Masking (no treebank).

    The tagger segments the corpus, Perturbed Masking over the teacher BERT parses it (Wu et al.,
    ACL 2020; Eisner, punctuation never heads) and a small biaffine parser (Dozat and Manning, ICLR
    2017) learns those trees, then, for --rounds, its own (self-training). See docs/segment.md.
    """
    quiet_libraries()
    from ..segment.train_parser import train_parser

    with train_progress(quiet) as progress:
        settings = ParserSettings(
            teacher=model, segmenter=segmenter, sentences=sentences, min_words=min_words, max_words=max_words,
            rounds=rounds, epochs=epochs, batch_size=batch_size, learning_rate=learning_rate, dev_file=dev_file,
            seed=seed, device=device, log=train_log(quiet), progress=progress)
        metrics = train_parser(data, out, settings)
    last = metrics["rounds"][-1]
    info(f"saved {out}: round {last['round']}" + (f", dev UAS {last['dev_uas']}" if "dev_uas" in last else ""), quiet)
