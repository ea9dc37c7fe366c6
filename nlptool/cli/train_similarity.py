"""``nlptool train similarity``: fine-tune an encoder for sentence similarity (CoSENT or SimCSE)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..similarity.train import METHODS, SimilaritySettings
from ..training import defaults
from . import train_app
from .console import info, train_log, train_progress
from .options import (DeviceOpt, InputFilesArg, InputFilesOpt, ModelOpt, OutDirOpt, OutputFileOpt, QuietOpt, SeedOpt,
                      choices)
from .run import quiet_libraries

D = defaults(SimilaritySettings)


Method = choices("Method", ("cosent", "simcse"))
Pooling = choices("Pooling", ("mean", "cls"))


@train_app.command("similarity")
def similarity(
    data: list[Path] = InputFilesArg(..., help="Training data: labelled pairs (TSV s1<TAB>s2<TAB>score or JSONL {sentence1, sentence2, label}) for cosent; raw sentences (one per line, or JSONL --text-key; pair files give both sentences) for simcse."),
    method: Method = typer.Option(Method(METHODS[0]), "--method", help="cosent: Su's CoSENT ranking loss on labelled pairs; simcse: unsupervised SimCSE (dropout views, in-batch negatives) on raw sentences."),
    out: Path = OutDirOpt(..., "--out", help="Output model directory (a normal Hugging Face encoder directory)."),
    model: str = ModelOpt(D["model"], help="Encoder to start from: built-in name, local directory or hub id."),
    eval_files: Optional[list[Path]] = InputFilesOpt(None, "--eval", help="Labelled pairs to evaluate on (Spearman of the cosine); without it --holdout splits DATA (cosent)."),
    holdout: float = typer.Option(D["holdout"], "--holdout", min=0.0, max=0.99, help="Share of labelled DATA held out for evaluation when no --eval is given."),
    epochs: float = typer.Option(D["epochs"], "--epochs", min=1e-9, help="Passes over the training data."),
    max_steps: Optional[int] = typer.Option(D["max_steps"], "--max-steps", min=1, help="Optimisation steps (overrides --epochs; the schedule decays to 0 there)."),
    max_minutes: Optional[float] = typer.Option(D["max_minutes"], "--max-minutes", min=1e-9, help="Stop after this wall time, evaluate and save."),
    learning_rate: float = typer.Option(D["learning_rate"], "--learning-rate", min=1e-9, help="Peak AdamW learning rate (10 % warm-up, linear decay)."),
    batch_size: int = typer.Option(D["batch_size"], "--batch-size", min=2, help="Pairs (cosent) or sentences (simcse) per step."),
    max_length: int = typer.Option(D["max_length"], "--max-length", min=8, help="Tokens per sentence (special tokens included)."),
    pooling: Pooling = typer.Option(Pooling(D["pooling"]), "--pooling", help="Sentence vector: mean of the text's token vectors (what similarity --pool mean and WMD/WRD use) or [CLS]."),
    scale: float = typer.Option(D["scale"], "--scale", min=1e-9, help="CoSENT lambda (20 in Su's post)."),
    temperature: float = typer.Option(D["temperature"], "--temperature", min=1e-9, help="SimCSE temperature (0.05 in the paper)."),
    text_key: str = typer.Option("text", "--text-key", help="JSON field of a raw sentence (simcse)."),
    report: Optional[Path] = OutputFileOpt(None, "--report", help="Also write the metrics JSON here (always in OUT/metrics.json)."),
    seed: int = SeedOpt(D["seed"], help="Random seed (split, shuffling, dropout)."),
    device: str = DeviceOpt,
    quiet: bool = QuietOpt,
):
    """Fine-tune a sentence encoder: CoSENT (Su 2022) on labelled pairs or unsupervised SimCSE (Gao et al. 2021)."""
    import json

    from ..paths import atomic_output
    from ..similarity.train import read_pairs, read_sentences, train_sentence_encoder

    quiet_libraries()
    eval_pairs = read_pairs(eval_files) if eval_files else None
    pairs = sentences = None
    if method is Method.cosent:
        pairs = read_pairs(data)
    else:
        sentences = read_sentences(data, text_key=text_key)
    with train_progress(quiet) as progress:
        settings = SimilaritySettings(model=model, holdout=holdout, epochs=epochs, max_steps=max_steps,
                                      max_minutes=max_minutes, batch_size=batch_size, learning_rate=learning_rate,
                                      max_length=max_length, pooling=pooling.value, scale=scale,
                                      temperature=temperature, seed=seed, device=device, log=train_log(quiet),
                                      progress=progress)
        metrics = train_sentence_encoder(method.value, out, settings, pairs=pairs, sentences=sentences,
                                         eval_pairs=eval_pairs)
    if report is not None:
        with atomic_output(report) as fh:
            fh.write(json.dumps(metrics, indent=2, ensure_ascii=False) + "\n")
    ev = metrics["eval_spearman"]
    info(f"saved {out}: {metrics['steps']} steps, loss {metrics['loss_first']:.3f} -> {metrics['loss_last']:.3f}"
         + (f", held-out Spearman {metrics['eval_spearman_before']:.4f} -> {ev:.4f}" if ev is not None else ""), quiet)
