"""``nlptool segment``: unsupervised word segmentation (self-trained tagger or Perturbed Masking) and parsing.

Parse the options, build a :class:`nlptool.segment.Segmenter` (its defaults and rules), run it.
"""

from __future__ import annotations

from typing import Optional

import typer

from ..segment.command import (CONVERT_MODES, DEFAULT_METHOD, DEFAULT_MODELS, DEFAULT_PARSE_METHOD, DEFAULT_PARSER,
                               PARSE_METHODS, PARSE_MODES, Segmenter)
from . import app
from .options import (ThreadsOpt, BatchSizeOpt, ChunkSizeOpt, DeviceOpt, Engine, EngineOpt, GpusPerWorkerOpt, InputFileOpt,
                      InputFormatOpt, InputsArg, ModelOpt, OutputDirOpt, OutputOpt, QuietOpt, ShardOpt, StrictOpt,
                      TextKeyOpt, WorkersOpt, choices)
from .run import run_record_command

Method = choices("Method", DEFAULT_MODELS)
ParseMode = choices("ParseMode", PARSE_MODES)
ParseMethod = choices("ParseMethod", PARSE_METHODS)
OutFormat = choices("OutFormat", ("jsonl", *Segmenter.formats))
Convert = choices("Convert", CONVERT_MODES)
_DEFAULTS = ", ".join(f"{name} for {m}" for m, name in DEFAULT_MODELS.items())


@app.command("segment")
def segment(
    inputs: list[str] = InputsArg,
    output: str = OutputOpt,
    input_format: str = InputFormatOpt,
    text_key: str = TextKeyOpt,
    words_key: str = typer.Option("words", "--words-key", help="With --parse: a JSON record's word list (parsed as given, not segmented)."),
    method: Method = typer.Option(DEFAULT_METHOD, "--method", help=f"tagger: the self-trained character tagger ({DEFAULT_MODELS['tagger']}, fast); masking: Perturbed Masking over a BERT."),
    model: Optional[str] = ModelOpt(None, help=f"Model of --method: built-in name, local directory or hub id (default: {_DEFAULTS})."),
    user_dict: Optional[str] = InputFileOpt(None, "--user-dict", help="Words never split, jieba's format: 'word [count [tag]]' per line."),
    convert: Convert = typer.Option("auto", "--convert", help="Traditional -> simplified characters before the model (OpenCC, character by character; output keeps the input's characters): auto-detect, always (t2s) or never."),
    threshold: str = typer.Option("auto", "--threshold", help="masking only: 'auto' (label-free rule) or a number: join neighbours when their impact d >= it."),
    layer: Optional[int] = typer.Option(None, "--layer", help="Hidden layer of the BERT for --method masking, --parse constituency and --parse-method masking (-1 = last, 0 = embeddings; default: -1, and 1 for --parse-method masking)."),
    parse: ParseMode = typer.Option("none", "--parse", help="Also parse the words: constituency (MART tree over the Perturbed Masking impact matrix) or dependency (heads, see --parse-method)."),
    parse_method: Optional[ParseMethod] = typer.Option(None, "--parse-method", help=f"With --parse dependency: student (the self-trained biaffine parser {DEFAULT_PARSER}) or masking (Eisner over the impact matrix); default {DEFAULT_PARSE_METHOD}."),
    parse_model: Optional[str] = typer.Option(None, "--parse-model", help=f"The parser of --parse-method student: built-in name or a directory from `nlptool train parser` (default {DEFAULT_PARSER})."),
    fmt: OutFormat = typer.Option("jsonl", "--format", help="jsonl (default), text (words joined by spaces) or conllu (with --parse dependency)."),
    device: str = DeviceOpt,
    batch_size: int = BatchSizeOpt,
    chunk_size: int = ChunkSizeOpt,
    strict: bool = StrictOpt,
    quiet: bool = QuietOpt,
    threads: Optional[int] = ThreadsOpt(),
    shard: Optional[str] = ShardOpt,
    engine: Engine = EngineOpt,
    workers: int = WorkersOpt,
    gpus_per_worker: float = GpusPerWorkerOpt,
    output_dir: Optional[str] = OutputDirOpt,
):
    """Segment Chinese text into words (and parse it), without any gold segmentation.

    --method tagger: a character tagger self-trained on Perturbed Masking (Li et al., Findings ACL 2022);
    --method masking: Perturbed Masking over a BERT (Wu et al., ACL 2020; Su, kexue.fm 2020-06-10).
    Output: one JSON object per input line with "words" (they concatenate back to the text), plus
    "tree" or "heads" with --parse. See docs/segment.md.
    """
    segmenter = Segmenter(model=model, method=method.value, user_dict=user_dict, convert=convert.value,
                          threshold=threshold, layer=layer, parse=parse.value,
                          parse_method=parse_method.value if parse_method else None, parse_model=parse_model, device=device,
                          batch_size=batch_size, text_key=text_key, words_key=words_key)
    segmenter.check_format(fmt.value)
    run_record_command(segmenter, inputs, output=output, input_format=input_format, strict=strict, shard=shard,
                       chunk_size=chunk_size, fmt=fmt.value, quiet=quiet, engine=engine, workers=workers,
                       gpus_per_worker=gpus_per_worker, output_dir=output_dir, name="segment")
