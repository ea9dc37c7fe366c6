"""``nlptool segment``: unsupervised word segmentation (self-trained tagger or Perturbed Masking) and parsing.

Parse options, load the model(s), call :func:`nlptool.segment.api.segment_or_parse` per chunk, write.
"""

from __future__ import annotations

from enum import Enum
from typing import Optional

import typer

from . import app
from ._common import (
    BatchSizeOpt,
    ChunkSizeOpt,
    DeviceOpt,
    InputFileOpt,
    InputFormatOpt,
    InputsArg,
    OutputOpt,
    QuietOpt,
    StrictOpt,
    TextKeyOpt,
    boundary,
    info,
    load_for_cli,
    make_progress,
)
from ._common import Engine, EngineOpt, GpusPerWorkerOpt, OutputDirOpt, ShardOpt, WorkersOpt


class Method(str, Enum):
    tagger = "tagger"
    masking = "masking"


class ParseMode(str, Enum):
    none = "none"
    constituency = "constituency"
    dependency = "dependency"


class OutFormat(str, Enum):
    jsonl = "jsonl"
    text = "text"
    conllu = "conllu"


class Convert(str, Enum):
    auto = "auto"
    t2s = "t2s"
    none = "none"


#: The default method: the better of the two on PKU word F1 (docs/segment.md, `make bench-segment`): the tagger
#: (zh-seg-mini with its lexicon) 0.804 against masking 0.730 on the same first 100 lines; 0.808 on all lines.
DEFAULT_METHOD = Method.tagger
DEFAULT_MODELS = {Method.tagger: "zh-seg-mini", Method.masking: "zh-bert-mini"}


@app.command("segment")
def segment(
    inputs: list[str] = InputsArg,
    output: str = OutputOpt,
    input_format: str = InputFormatOpt,
    text_key: str = TextKeyOpt,
    words_key: str = typer.Option("words", "--words-key", help="With --parse: a JSON record's word list (parsed as given, not segmented)."),
    method: Method = typer.Option(DEFAULT_METHOD, "--method", help="tagger: the self-trained character tagger (zh-seg-mini, fast); masking: Perturbed Masking over a BERT."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Model of --method: built-in name, local directory or hub id (default: zh-seg-mini for tagger, zh-bert-mini for masking)."),
    user_dict: Optional[str] = InputFileOpt(None, "--user-dict", help="Words never split, jieba's format: 'word [count [tag]]' per line."),
    convert: Convert = typer.Option(Convert.auto, "--convert", help="Traditional -> simplified characters before the model (OpenCC, character by character; output keeps the input's characters): auto-detect, always (t2s) or never."),
    threshold: str = typer.Option("auto", "--threshold", help="masking only: 'auto' (label-free rule) or a number: join neighbours when their impact d >= it."),
    layer: int = typer.Option(-1, "--layer", help="Hidden layer of the BERT for masking and --parse (-1 = last, 0 = embeddings)."),
    parse: ParseMode = typer.Option(ParseMode.none, "--parse", help="Also parse (Perturbed Masking impact matrix of the words): constituency (MART tree) or dependency (Eisner heads)."),
    fmt: OutFormat = typer.Option(OutFormat.jsonl, "--format", help="jsonl (default), text (words joined by spaces) or conllu (with --parse dependency)."),
    device: str = DeviceOpt,
    batch_size: int = BatchSizeOpt,
    chunk_size: int = ChunkSizeOpt,
    strict: bool = StrictOpt,
    quiet: bool = QuietOpt,
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
    with boundary():
        from ..errors import UsageError

        if threshold != "auto":
            try:
                thr: float | str = float(threshold)
            except ValueError:
                raise UsageError(f"--threshold {threshold}: expected 'auto' or a number") from None
            if thr != thr or thr in (float("inf"), float("-inf")):
                raise UsageError(f"--threshold {threshold}: expected 'auto' or a finite number")
        else:
            thr = "auto"
        if fmt == OutFormat.conllu and parse != ParseMode.dependency:
            raise UsageError("--format conllu needs --parse dependency")
        from ..jsonl import JsonlWriter
        from ..engine import map_records
        from ..records import read_records
        from ..segment.api import auto_fallback, read_user_dict, segment_or_parse, teacher_of

        udict = read_user_dict(user_dict) if user_dict else None
        records = read_records(inputs, input_format=input_format, keys=[text_key], strict=strict, optional_keys=[words_key],
                               alternatives=[words_key] if parse != ParseMode.none else (), shard=shard)
        if engine is Engine.ray or output_dir:  # scale-out (docs/scale-out.md): the same worker on a Ray actor pool
            from ..ray_engine import run_cli
            from ..workers import Segmenter

            return run_cli(Segmenter(model=model, method=method.value, user_dict=user_dict, convert=convert.value,
                                     threshold=thr, layer=layer, parse=parse.value, device=device,
                                     batch_size=batch_size, text_key=text_key, words_key=words_key),
                           records, inputs, output, output_dir, fmt=fmt.value, workers=workers,
                           gpus_per_worker=gpus_per_worker, chunk_size=chunk_size, strict=strict,
                           input_format=input_format, keys=[text_key], shard=shard, optional_keys=[words_key],
                           alternatives=[words_key] if parse != ParseMode.none else ())
        name = model or DEFAULT_MODELS[method]
        kind = "char-tagger" if method == Method.tagger else "encoder"
        segmenter = load_for_cli(name, kind, device, quiet)
        parser = None
        if parse != ParseMode.none:
            # the impact matrix needs a BERT: the masking model itself, or the tagger's teacher
            parser = segmenter if method == Method.masking else load_for_cli(
                teacher_of(segmenter), "encoder", device, quiet)
        bert = segmenter if method == Method.masking else parser
        if bert is not None:  # --layer is checked once against the model, not per record
            n_layers = int(getattr(bert.model.config, "num_hidden_layers", 0) or 0)
            if n_layers and not -(n_layers + 1) <= layer <= n_layers:
                raise UsageError(f"--layer {layer}: the model {bert.name} has layers -{n_layers + 1}..{n_layers} "
                                 f"(0 = embeddings, -1 = last)")

        def fallback():  # calibrated lazily (and read from the shipped calibration when it matches)
            return auto_fallback(segmenter, layer=layer, batch_size=batch_size)

        def batch(recs):
            given = [r.texts.get(words_key) if parse != ParseMode.none and words_key in r.texts else None for r in recs]
            return segment_or_parse(
                [r.text if g is None else None for r, g in zip(recs, given)], segmenter=segmenter, method=method.value,
                given_words=given, parser=parser, parse=parse.value, threshold=thr, layer=layer,
                batch_size=batch_size, user_dict=udict, convert=convert.value, fallback=fallback,
            )

        n_errors = 0
        with make_progress(quiet) as progress, JsonlWriter(output) as out:
            task = progress.add_task("segment", total=None)

            def chunk_done(k):
                out.flush()  # one flush per chunk keeps `| head` responsive without a syscall per line
                progress.advance(task, k)

            for obj in map_records(records, batch, chunk_size=chunk_size, strict=strict, on_chunk=chunk_done):
                if "error" in obj:
                    n_errors += 1
                    if fmt != OutFormat.jsonl:
                        info(f"[yellow]skipped[/] {obj['error']}", quiet)
                if fmt == OutFormat.jsonl:
                    out.write(obj)
                elif fmt == OutFormat.text:
                    out.write_text(" ".join(w for w in obj.get("words", []) if w.strip()))
                else:
                    out.write_line(_conllu(obj))
        if n_errors:
            info(f"{n_errors} record(s) could not be processed (see their \"error\" field)", quiet)


def _conllu(obj: dict) -> str:
    """One CoNLL-U block (10 tab-separated columns; whitespace words are left out); the text,
    words and errors are kept on one line each (line breaks inside escaped)."""
    from ..records import escape_line

    lines = []
    if "error" in obj:
        return f"# error = {escape_line(str(obj['error']))}\n"
    words = obj.get("words", [])
    heads = obj.get("heads") or []
    keep = [i for i, w in enumerate(words) if w.strip()]
    new_id = {old: new + 1 for new, old in enumerate(keep)}
    text = obj.get("text")
    if isinstance(text, str):
        lines.append(f"# text = {escape_line(text)}")  # one comment line whatever the text holds
    for i in keep:
        h = heads[i] if i < len(heads) else None
        head = 0 if not h else new_id.get(h - 1, 0)
        rel = "root" if head == 0 else "dep"
        lines.append(f"{new_id[i]}\t{escape_line(words[i])}\t_\t_\t_\t_\t{head}\t{rel}\t_\t_")
    return "\n".join(lines) + "\n"
