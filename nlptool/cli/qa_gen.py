"""``nlptool qa-gen`` and ``nlptool train qa-gen``: question-answer pairs from passages (UniLM on BERT)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..qagen.command import BOUNDS as B
from ..qagen.command import CHUNK_SIZE, DEFAULT_MODEL, QAGenerator
from ..qagen.command import OPTION_DEFAULTS as D
from ..qagen.train import QAGenSettings
from ..training import defaults
from . import app, train_app
from ._common import (
    DeviceOpt,
    InputFormatOpt,
    InputsArg,
    ModelOpt,
    OutDirOpt,
    OutputOpt,
    QuietOpt,
    SeedOpt,
    ShardOpt,
    StrictOpt,
    TextKeyOpt,
    boundary,
    info,
    run_record_command,
    train_log,
    train_progress,
)

T = defaults(QAGenSettings)


@train_app.command("qa-gen")
def train_qa_gen(
    data: list[Path] = typer.Argument(..., help="Training data: SQuAD v1.1 JSON (e.g. CMRC 2018) or JSONL {passage, question, answer[, answer_start, article]}.", show_default=False),
    out: Path = OutDirOpt(..., "--out", help="Output model directory (a normal Hugging Face directory + generation settings)."),
    model: str = ModelOpt(T["model"], help="Masked LM to start from: built-in name, local directory or hub id (its MLM head becomes the generator)."),
    holdout: float = typer.Option(T["holdout"], "--holdout", min=0.0, max=0.999, help="Share of the articles held out for the validation loss (without --eval)."),
    eval_file: Optional[list[Path]] = typer.Option(None, "--eval", help="Validation data instead of --holdout (repeatable)."),
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
    with boundary():
        from ..qagen import read_qa_data
        from ..qagen import train_qa_gen as train
        from ._common import quiet_libraries

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


@app.command("qa-gen")
def qa_gen(
    inputs: list[str] = InputsArg,
    output: str = OutputOpt,
    input_format: str = InputFormatOpt,
    text_key: str = TextKeyOpt,
    model: str = ModelOpt(D["model"], help=f"Generator: built-in {DEFAULT_MODEL}, or a directory / hub id trained by `nlptool train qa-gen`."),
    answers_key: str = typer.Option(D["answers_key"], "--answers-key", help="Field of a JSON record with a list of answers: one question per given answer instead of sampled pairs."),
    num_pairs: int = typer.Option(D["num_pairs"], "--num-pairs", min=B["num_pairs"][0], help="Answer samples per passage (at most this many pairs)."),
    top_p: Optional[float] = typer.Option(D["top_p"], "--top-p", min=B["top_p"][0], max=B["top_p"][1], help="Nucleus sampling mass for answers (default: the model's setting)."),
    beam_size: Optional[int] = typer.Option(D["beam_size"], "--beam-size", min=B["beam_size"][0], help="Beams per question (default: the model's setting)."),
    no_repeat_ngram: Optional[int] = typer.Option(D["no_repeat_ngram"], "--no-repeat-ngram", min=B["no_repeat_ngram"][0], help="Block repeated n-grams in questions (0 = off; default: the model's setting)."),
    length_penalty: Optional[float] = typer.Option(D["length_penalty"], "--length-penalty", min=B["length_penalty"][0], help="Beam length penalty alpha, score / length^alpha (default: the model's setting)."),
    max_answer_len: Optional[int] = typer.Option(D["max_answer_len"], "--max-answer-len", min=B["max_answer_len"][0], help="Tokens per answer (default: the model's training limit)."),
    max_question_len: Optional[int] = typer.Option(D["max_question_len"], "--max-question-len", min=B["max_question_len"][0], help="Tokens per question (default: the model's training limit)."),
    max_passage_chars: Optional[int] = typer.Option(D["max_passage_chars"], "--max-passage-chars", min=B["max_passage_chars"][0], help="Chunk length for long passages (default: the model's training value)."),
    round_trip: bool = typer.Option(D["round_trip"], "--round-trip/--no-round-trip", help="Drop pairs whose question the reader answers with a non-overlapping span (counted in qa_filtered)."),
    reader: str = typer.Option(D["reader"], "--reader", help="Extractive reader for the round trip: built-in name, directory or hub id trained by `nlptool train reader`."),
    min_consistency: Optional[float] = typer.Option(D["min_consistency"], "--min-consistency", min=B["min_consistency"][0], max=B["min_consistency"][1], help="Least character F1 between the reader's answer and the generated answer (default: the model's setting)."),
    seed: int = SeedOpt(D["seed"], min=B["seed"][0], help="Random seed: the same seed and passage give the same pairs."),
    batch_size: int = typer.Option(D["batch_size"], "--batch-size", min=B["batch_size"][0], help="Passage chunks decoded together (bounds memory)."),
    chunk_size: int = typer.Option(CHUNK_SIZE, "--chunk-size", min=1, help="Input records read and written per chunk (bounds memory)."),
    device: str = DeviceOpt,
    strict: bool = StrictOpt,
    quiet: bool = QuietOpt,
    shard: Optional[str] = ShardOpt,
):
    """Generate question-answer pairs per passage (nucleus-sampled answers, beam-searched questions,
    round-trip filtered), or one question per given answer for records with an `answers` list."""
    with boundary():
        generator = QAGenerator(model=model, num_pairs=num_pairs, top_p=top_p, beam_size=beam_size,
                                no_repeat_ngram=no_repeat_ngram, length_penalty=length_penalty,
                                max_answer_len=max_answer_len, max_question_len=max_question_len,
                                max_passage_chars=max_passage_chars, round_trip=round_trip, reader=reader,
                                min_consistency=min_consistency, seed=seed, batch_size=batch_size, device=device,
                                text_key=text_key, answers_key=answers_key)
        run_record_command(generator, inputs, output=output, input_format=input_format, strict=strict, shard=shard,
                           chunk_size=chunk_size, quiet=quiet, name="qa-gen")
