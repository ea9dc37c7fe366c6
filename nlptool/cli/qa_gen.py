"""``nlptool qa-gen``: question-answer pairs from passages (UniLM on BERT; trained by ``train qa-gen``).

Parse the options, build a :class:`nlptool.qagen.QAGenerator` (its defaults and rules), run it.
"""

from __future__ import annotations

from typing import Optional

import typer

from ..qagen.command import BOUNDS as B
from ..qagen.command import CHUNK_SIZE, DEFAULT_MODEL, QAGenerator
from ..qagen.command import OPTION_DEFAULTS as D
from . import app
from .options import (ThreadsOpt, DeviceOpt, InputFormatOpt, InputsArg, ModelOpt, OutputOpt, QuietOpt, SeedOpt, ShardOpt,
                      StrictOpt, TextKeyOpt)
from .run import run_record_command


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
    threads: Optional[int] = ThreadsOpt(),
    shard: Optional[str] = ShardOpt,
):
    """Generate question-answer pairs per passage (nucleus-sampled answers, beam-searched questions,
    round-trip filtered), or one question per given answer for records with an `answers` list."""
    generator = QAGenerator(model=model, num_pairs=num_pairs, top_p=top_p, beam_size=beam_size,
                            no_repeat_ngram=no_repeat_ngram, length_penalty=length_penalty,
                            max_answer_len=max_answer_len, max_question_len=max_question_len,
                            max_passage_chars=max_passage_chars, round_trip=round_trip, reader=reader,
                            min_consistency=min_consistency, seed=seed, batch_size=batch_size, device=device,
                            text_key=text_key, answers_key=answers_key)
    run_record_command(generator, inputs, output=output, input_format=input_format, strict=strict, shard=shard,
                       chunk_size=chunk_size, quiet=quiet, name="qa-gen")
