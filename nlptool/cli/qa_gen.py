"""``nlptool qa-gen`` and ``nlptool train qa-gen``: question-answer pairs from passages (UniLM on BERT)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from . import app, train_app
from ._common import (
    DeviceOpt,
    InputFormatOpt,
    InputsArg,
    OutputOpt,
    QuietOpt,
    StrictOpt,
    TextKeyOpt,
    boundary,
    console,
    info,
)


@train_app.command("qa-gen")
def train_qa_gen(
    data: list[Path] = typer.Option(..., "--data", help="SQuAD v1.1 JSON (e.g. CMRC 2018) or JSONL {passage, question, answer}; repeat for several files."),
    out: Path = typer.Option(..., "--out", help="Output model directory (a normal Hugging Face directory + generation settings)."),
    model: str = typer.Option("zh-bert-mini", "--model", "-m", help="Masked LM to start from: built-in name, local directory or hub id (its MLM head becomes the generator)."),
    holdout: float = typer.Option(0.1, "--holdout", help="Fraction of the articles held out for the validation loss."),
    eval_file: Optional[list[Path]] = typer.Option(None, "--eval", help="Validation data instead of --holdout."),
    max_passage_chars: int = typer.Option(128, "--max-passage-chars", help="Passage chunk in characters (cut at sentence ends)."),
    max_answer_len: int = typer.Option(32, "--max-answer-len", help="Longest answer in tokens (longer training answers are dropped)."),
    max_question_len: int = typer.Option(32, "--max-question-len", help="Longest question in tokens (longer ones are truncated)."),
    epochs: float = typer.Option(10.0, "--epochs", help="Passes over the training examples."),
    batch_size: int = typer.Option(32, "--batch-size", help="Examples per step."),
    learning_rate: float = typer.Option(2e-4, "--learning-rate", help="Peak AdamW learning rate (linear warm-up and decay)."),
    max_minutes: Optional[float] = typer.Option(None, "--max-minutes", help="Stop after this many minutes and keep the best checkpoint."),
    resume: bool = typer.Option(False, "--resume/--no-resume", help="Continue from the last checkpoint in OUT/checkpoints."),
    copy_answers: bool = typer.Option(True, "--copy-answers/--free-answers", help="Sample answers only among tokens that continue a passage span (default), or freely as in Su's post (then answers not in the passage are filtered)."),
    seed: int = typer.Option(0, "--seed", help="Random seed (held-out articles, shuffling)."),
    device: str = DeviceOpt,
    quiet: bool = QuietOpt,
):
    """Fine-tune a BERT masked LM as a UniLM seq2seq question-answer generator (Su 2020-07-25)."""
    with boundary():
        from ..qagen import read_qa_data, train_qa_gen as train
        from ._common import quiet_libraries

        quiet_libraries()
        items, counts = read_qa_data(data)
        eval_items = None
        if eval_file:
            eval_items, _ = read_qa_data(eval_file)
        skipped = counts["skipped_answer_not_in_passage"] + counts["skipped_no_answer"]
        info(f"{len(items):,} question-answer pairs ({skipped} skipped: no answer in the passage); model {model}", quiet)
        metrics = train(
            items, out, model=model, holdout=holdout, eval_items=eval_items, max_passage_chars=max_passage_chars,
            max_answer_len=max_answer_len, max_question_len=max_question_len, epochs=epochs, batch_size=batch_size,
            learning_rate=learning_rate, max_minutes=max_minutes, resume=resume, seed=seed, device=device,
            log=None if quiet else (lambda s: console.print(s, highlight=False, soft_wrap=True)),
        )
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
    model: str = typer.Option(..., "--model", "-m", help="A model trained by `nlptool train qa-gen` (local directory or hub id)."),
    num_pairs: int = typer.Option(5, "--num-pairs", "-k", help="Answer samples per passage (at most this many pairs)."),
    top_p: Optional[float] = typer.Option(None, "--top-p", help="Nucleus sampling mass for answers (default: the model's setting, 0.95)."),
    beam_size: Optional[int] = typer.Option(None, "--beam-size", help="Beams per question (default: the model's setting, 4)."),
    max_answer_len: Optional[int] = typer.Option(None, "--max-answer-len", help="Tokens per answer (default: the model's training limit)."),
    max_question_len: Optional[int] = typer.Option(None, "--max-question-len", help="Tokens per question (default: the model's training limit)."),
    max_passage_chars: Optional[int] = typer.Option(None, "--max-passage-chars", help="Chunk length for long passages (default: the model's training value)."),
    copy_answers: bool = typer.Option(True, "--copy-answers/--free-answers", help="Sample answers only among tokens that continue a passage span (default), or freely as in Su's post (then answers not in the passage are filtered)."),
    seed: int = typer.Option(0, "--seed", help="Random seed: the same seed and passage give the same pairs."),
    batch_size: int = typer.Option(16, "--batch-size", help="Passage chunks decoded together (bounds memory)."),
    device: str = DeviceOpt,
    strict: bool = StrictOpt,
    quiet: bool = QuietOpt,
):
    """Generate question-answer pairs per passage: nucleus-sampled answers, beam-searched questions."""
    with boundary():
        from ..io import JsonlWriter, map_records, read_records
        from ..qagen import DEFAULTS, FILTERS, load_settings
        from ._common import load_for_cli

        records = read_records(inputs, input_format=input_format, keys=[text_key], strict=strict)
        loaded = load_for_cli(model, "masked-lm", device, quiet)
        settings = load_settings(loaded.path)
        if settings is None:
            info(f"warning: {model} has no qa-gen settings: it was not trained by `nlptool train qa-gen`, expect noise", quiet)
            settings = dict(DEFAULTS)
        opts = {
            "top_p": top_p if top_p is not None else settings["top_p"],
            "beam_size": beam_size if beam_size is not None else settings["beam_size"],
            "max_answer_len": max_answer_len if max_answer_len is not None else settings["max_answer_len"],
            "max_question_len": max_question_len if max_question_len is not None else settings["max_question_len"],
            "max_passage_chars": max_passage_chars if max_passage_chars is not None else settings["max_passage_chars"],
        }
        from ..qagen import generate_qa_pairs

        totals = dict.fromkeys(FILTERS, 0)
        n_cand = n_pairs = 0

        def batch(recs):
            nonlocal n_cand, n_pairs
            res = generate_qa_pairs(loaded, [r.text for r in recs], num_pairs=num_pairs, seed=seed,
                                    batch_size=batch_size, copy_answers=copy_answers, **opts)
            out = []
            for x in res:
                n_cand += x.candidates
                n_pairs += len(x.pairs)
                for k, v in x.filtered.items():
                    totals[k] += v
                out.append({"qa_pairs": x.pairs, "qa_filtered": {k: v for k, v in x.filtered.items() if v}})
            return out

        with JsonlWriter(output) as w:
            for obj in map_records(records, batch, chunk_size=64, strict=strict):
                w.write(obj)
        removed = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in totals.items() if v) or "none"
        info(f"{n_pairs:,} pairs kept of {n_cand:,} answer samples; removed: {removed}", quiet)
