"""``nlptool segment``: unsupervised word segmentation and parsing by Perturbed Masking."""

from __future__ import annotations

from enum import Enum

import typer

from . import app
from ._common import (
    BatchSizeOpt,
    DeviceOpt,
    InputFormatOpt,
    InputsArg,
    ModelOpt,
    OutputOpt,
    QuietOpt,
    StrictOpt,
    TextKeyOpt,
    boundary,
    info,
    load_for_cli,
    make_progress,
)


class ParseMode(str, Enum):
    none = "none"
    constituency = "constituency"
    dependency = "dependency"


class OutFormat(str, Enum):
    jsonl = "jsonl"
    text = "text"
    conllu = "conllu"


@app.command("segment")
def segment(
    inputs: list[str] = InputsArg,
    output: str = OutputOpt,
    input_format: str = InputFormatOpt,
    text_key: str = TextKeyOpt,
    words_key: str = typer.Option("words", "--words-key", help="With --parse: a JSON record's word list (parsed as given, not segmented)."),
    model: str = ModelOpt,
    threshold: str = typer.Option("auto", "--threshold", help="'auto' (label-free rule, see README) or a number: join neighbours when their impact d >= it."),
    layer: int = typer.Option(-1, "--layer", help="Hidden layer to read (-1 = last, 0 = embeddings)."),
    parse: ParseMode = typer.Option(ParseMode.none, "--parse", help="Also parse: constituency (MART tree) or dependency (Eisner heads)."),
    fmt: OutFormat = typer.Option(OutFormat.jsonl, "--format", help="jsonl (default), text (words joined by spaces) or conllu (with --parse dependency)."),
    device: str = DeviceOpt,
    batch_size: int = BatchSizeOpt,
    chunk_size: int = typer.Option(500, "--chunk-size", help="Input lines read and processed together."),
    strict: bool = StrictOpt,
    quiet: bool = QuietOpt,
):
    """Segment Chinese text into words (and parse it) by Perturbed Masking over a BERT.

    Wu et al., ACL 2020; Su, kexue.fm 2020-06-10. Output: one JSON object per input line with
    "words" (they concatenate back to the text), plus "tree" or "heads" with --parse.
    """
    with boundary():
        from ..errors import UsageError

        if threshold != "auto":
            try:
                thr: float | str = float(threshold)
            except ValueError:
                raise UsageError(f"--threshold {threshold}: expected 'auto' or a number") from None
        else:
            thr = "auto"
        if fmt == OutFormat.conllu and parse != ParseMode.dependency:
            raise UsageError("--format conllu needs --parse dependency")
        from ..io import JsonlWriter, map_records, read_records

        records = read_records(inputs, input_format=input_format, keys=[text_key], strict=strict, optional_keys=[words_key],
                               alternatives=[words_key] if parse != ParseMode.none else ())
        loaded = load_for_cli(model, "encoder", device, quiet)
        from ..segment import auto_fallback, parse_words, segment_texts

        # calibrated lazily: only a two-unit clause under --threshold auto needs it
        def fallback():
            return auto_fallback(loaded, layer=layer, batch_size=batch_size)

        def batch(recs):
            results: list = [None] * len(recs)
            seg_idx = [i for i, r in enumerate(recs) if parse == ParseMode.none or words_key not in r.texts]
            segs = segment_texts(
                loaded, [recs[i].text for i in seg_idx], threshold=thr, layer=layer,
                batch_size=batch_size, fallback=fallback,
            )
            word_lists: list = [None] * len(recs)
            for i, s in zip(seg_idx, segs):
                word_lists[i] = s.words
            for i, r in enumerate(recs):
                if word_lists[i] is None:
                    given = r.texts[words_key]
                    if not isinstance(given, list) or not all(isinstance(w, str) for w in given):
                        results[i] = ValueError(f"field {words_key!r} must be a list of strings")
                    else:
                        word_lists[i] = given
            if parse != ParseMode.none:
                ok = [i for i in range(len(recs)) if results[i] is None]
                parsed = parse_words(loaded, [word_lists[i] for i in ok], mode=parse.value, layer=layer, batch_size=batch_size)
                for i, p in zip(ok, parsed):
                    results[i] = {"words": p.words, "tree": p.tree} if parse == ParseMode.constituency else {"words": p.words, "heads": p.heads}
            else:
                for i in range(len(recs)):
                    if results[i] is None:
                        results[i] = {"words": word_lists[i]}
            return results

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
                    out.write_line(" ".join(w for w in obj.get("words", []) if w.strip()))
                else:
                    out.write_line(_conllu(obj))
        if n_errors:
            info(f"{n_errors} record(s) could not be processed (see their \"error\" field)", quiet)


def _conllu(obj: dict) -> str:
    """One CoNLL-U block (10 tab-separated columns; whitespace words are left out)."""
    lines = []
    if "error" in obj:
        return f"# error = {obj['error']}\n"
    words = obj.get("words", [])
    heads = obj.get("heads") or []
    keep = [i for i, w in enumerate(words) if w.strip()]
    new_id = {old: new + 1 for new, old in enumerate(keep)}
    text = obj.get("text")
    if isinstance(text, str):
        lines.append(f"# text = {text}")
    for i in keep:
        h = heads[i] if i < len(heads) else None
        head = 0 if not h else new_id.get(h - 1, 0)
        rel = "root" if head == 0 else "dep"
        lines.append(f"{new_id[i]}\t{words[i]}\t_\t_\t_\t_\t{head}\t{rel}\t_\t_")
    return "\n".join(lines) + "\n"
