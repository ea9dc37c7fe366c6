"""``nlptool eval ...``: measure a trained model on gold data (JSON report on stdout)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..qagen.command import DEFAULT_MODEL as QA_GEN_MODEL
from . import eval_app
from .console import info
from .options import DeviceOpt, InputFilesArg, InputFilesOpt, ModelOpt, OutputFileOpt, QuietOpt
from .run import load_for_cli


@eval_app.command("qa-gen")
def eval_qa_gen(
    data: Optional[list[Path]] = InputFilesArg(None, help="Gold data: SQuAD v1.1 JSON or JSONL {passage, question, answer}."),
    data_opt: Optional[list[Path]] = InputFilesOpt(None, "--data", hidden=True, help="Deprecated: give the files as DATA."),
    model: str = ModelOpt(QA_GEN_MODEL, help="Generator: built-in name, directory or hub id trained by `nlptool train qa-gen`."),
    output: str = OutputFileOpt("-", "--output", "-o", help="Output file for the JSON report ('-' = stdout)."),
    beam_size: Optional[int] = typer.Option(None, "--beam-size", min=1, help="Beams per question (default: the model's setting)."),
    no_repeat_ngram: Optional[int] = typer.Option(None, "--no-repeat-ngram", min=0, help="Block repeated n-grams (default: the model's setting)."),
    length_penalty: Optional[float] = typer.Option(None, "--length-penalty", min=0.0, help="Beam length penalty alpha (default: the model's setting)."),
    batch_size: int = typer.Option(32, "--batch-size", min=1, help="Questions decoded together."),
    device: str = DeviceOpt,
    quiet: bool = QuietOpt,
):
    """BLEU-4 (sacrebleu, zh tokenizer) and character ROUGE-L of questions generated for the gold
    answers against the gold questions, beside the template baseline, as one JSON line."""
    from ..errors import UsageError

    data = [*(data or []), *(data_opt or [])]
    if not data:
        raise UsageError("give the gold data file(s): nlptool eval qa-gen DATA...")
    from ..jsonl import JsonlWriter
    from ..qagen import evaluate_qa_gen, read_qa_data

    items, _ = read_qa_data(data)
    loaded = load_for_cli(model, "masked-lm", device, quiet)
    report = evaluate_qa_gen(loaded, items, batch_size=batch_size, beam_size=beam_size,
                             no_repeat_ngram=no_repeat_ngram, length_penalty=length_penalty)
    report = {"model_name": model, "data": [str(d) for d in data], **report}
    with JsonlWriter(output) as w:
        w.write(report)
    m, t = report["model"], report["template"]
    info(f"{report['questions']} questions: model BLEU-4 {m['bleu4']} ROUGE-L {m['rouge_l']}; "
         f"template {t['bleu4']} / {t['rouge_l']}", quiet)


