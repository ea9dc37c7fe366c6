"""The one I/O layer: read text lines or JSONL records, write JSONL.

Every command reads its input through :func:`read_records` and writes through
:class:`JsonlWriter`, so the rules are the same everywhere:

* input is one or more paths, ``-`` for stdin; no path means stdin (a terminal stdin is a usage
  error, never a hang);
* ``input_format``: ``text`` (one text per line), ``jsonl`` (one JSON object per line) or ``auto``
  (a line whose first non-blank character is ``{`` is JSON, any other line is text);
* exactly one :class:`Record` per input line, in order. A line that cannot be used (invalid
  UTF-8, invalid JSON, not an object, missing key, non-string value) gives a record whose
  ``error`` says why and where; with ``strict=True`` it raises :class:`InputDataError` instead;
* empty lines are records with empty text, not errors;
* input is read lazily, so memory does not grow with the file (use :func:`chunked`).
"""

from __future__ import annotations

import io as _io
import json
import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, BinaryIO, TextIO

from .errors import InputDataError, UsageError

STDIN_NAME = "<stdin>"


@dataclass
class Record:
    """One input line.

    Attributes:
        source: file name, or ``<stdin>``.
        line: 1-based line number in ``source``.
        data: fields passed through to the output (the JSON object, or ``{key: text}`` for a text
            line; ``{}`` when the line could not be decoded).
        texts: the requested fields, ``{key: str}`` (empty when ``error`` is set).
        error: why the record cannot be processed, or ``None``.
        raw: the input line's exact bytes, line terminator included (``None`` unless
            ``read_records(..., keep_raw=True)``); for commands that copy lines through unchanged.
    """

    source: str
    line: int
    data: dict[str, Any] = field(default_factory=dict)
    texts: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    raw: bytes | None = field(default=None, repr=False)

    @property
    def text(self) -> str:
        """The first requested field (the usual single-text case)."""
        return next(iter(self.texts.values()), "")

    @property
    def where(self) -> str:
        return f"{self.source}:{self.line}"


def check_stdin(inputs: Sequence[str] | None) -> list[str]:
    """Normalise the input list: no paths means ``["-"]``.

    Raises:
        UsageError: stdin is read but is a terminal (the user forgot the file or the pipe).
    """
    paths = [str(p) for p in (inputs or [])] or ["-"]
    if "-" in paths:
        try:
            tty = sys.stdin is not None and sys.stdin.isatty()
        except (AttributeError, ValueError):
            tty = False
        if tty:
            raise UsageError("no input: give a file, or pipe text into stdin (e.g. `echo 文本 | nlptool ...`)")
    for p in paths:
        if p != "-" and not os.path.exists(p):
            raise UsageError(f"{p}: no such file")
        if p != "-" and os.path.isdir(p):
            raise UsageError(f"{p}: is a directory, expected a text or JSONL file")
    return paths


def _binary_lines(path: str) -> Iterator[bytes]:
    if path == "-":
        stream: BinaryIO = getattr(sys.stdin, "buffer", None) or _io.BytesIO(sys.stdin.read().encode())
        yield from stream
    else:
        with open(path, "rb") as fh:
            yield from fh


def read_records(
    inputs: Sequence[str] | None,
    *,
    input_format: str = "auto",
    keys: Sequence[str] = ("text",),
    strict: bool = False,
    tsv: bool | None = None,
    optional_keys: Sequence[str] = (),
    keep_raw: bool = False,
    alternatives: Sequence[str] = (),
) -> Iterator[Record]:
    """Yield one :class:`Record` per line of every input, in order.

    Args:
        inputs: paths; ``-`` or an empty list is stdin.
        input_format: ``auto|text|jsonl``.
        keys: the string fields a command needs. For a text line with one key the whole line is
            the text; with several keys (a pair command) the line is split on tabs into that many
            columns (TSV), extra columns being ignored.
        strict: raise on the first bad record instead of yielding it with ``error`` set.
        tsv: force (True) or forbid (False) tab splitting of text lines; default: ``len(keys) > 1``.
        optional_keys: JSON fields copied into ``texts`` when present (any JSON type; not checked).
        alternatives: JSON fields that, when present, make the ``keys`` optional (``segment
            --parse`` accepts a record with a ``words`` list and no text).
        keep_raw: also keep each line's exact bytes (terminator included) in ``Record.raw``.

    Raises:
        UsageError: unknown format, missing file, terminal stdin.
        InputDataError: only with ``strict=True``; names file and line.
    """
    if input_format not in ("auto", "text", "jsonl"):
        raise UsageError(f"--input-format {input_format}: expected auto, text or jsonl")
    keys = list(keys)
    if tsv is None:
        tsv = len(keys) > 1
    for path in check_stdin(inputs):
        source = STDIN_NAME if path == "-" else path
        for lineno, raw in enumerate(_binary_lines(path), start=1):
            rec = _parse_line(raw, source, lineno, input_format, keys, tsv, optional_keys, alternatives)
            if keep_raw:
                rec.raw = raw
            if rec.error and strict:
                raise InputDataError(rec.error, source, lineno)
            if rec.error:
                rec.error = f"line {lineno} of {source}: {rec.error}"
            yield rec


def _parse_line(raw: bytes, source: str, lineno: int, fmt: str, keys, tsv: bool, optional_keys, alternatives=()) -> Record:
    rec = Record(source=source, line=lineno)
    if raw.endswith(b"\n"):
        raw = raw[:-1]
    if raw.endswith(b"\r"):
        raw = raw[:-1]
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        rec.error = f"invalid UTF-8 at byte {exc.start} (re-encode the file as UTF-8, e.g. with iconv)"
        return rec
    if lineno == 1 and line.startswith("\ufeff"):
        line = line[1:]
    is_json = fmt == "jsonl" or (fmt == "auto" and line.lstrip().startswith("{"))
    if is_json and not line.strip():
        # an empty line in a JSONL file is an empty record, not an error
        rec.data = {}
        rec.texts = {k: "" for k in keys}
        return rec
    if not is_json:
        if tsv and len(keys) > 1:
            cols = line.split("\t")
            if len(cols) < len(keys) and line.strip():
                rec.data = {"text": line}
                rec.error = f"expected {len(keys)} tab-separated columns ({', '.join(keys)}), found {len(cols)}"
                return rec
            cols = (cols + [""] * len(keys))[: len(keys)]
            rec.data = dict(zip(keys, cols))
            rec.texts = dict(rec.data)
        else:
            rec.data = {keys[0]: line}
            rec.texts = {keys[0]: line}
        return rec
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        rec.error = f"invalid JSON ({exc.msg} at column {exc.colno})"
        return rec
    if not isinstance(obj, dict):
        rec.error = f"expected a JSON object, found {type(obj).__name__}"
        return rec
    rec.data = obj
    for k in keys:
        if k not in obj and any(o in obj for o in alternatives):
            continue
        if k not in obj:
            found = ", ".join(list(obj)[:8]) or "none"
            rec.error = f"missing key {k!r} (fields found: {found}; choose the field with --text-key)"
            return rec
        v = obj[k]
        if v is None:
            v = ""
        if not isinstance(v, str):
            rec.error = f"field {k!r} is {type(v).__name__}, expected a string"
            return rec
        rec.texts[k] = v
    for k in optional_keys:
        if k in obj:
            rec.texts[k] = obj[k]
    return rec


def output_record(rec: Record, results: dict[str, Any] | None = None, error: str | None = None) -> dict[str, Any]:
    """The output object for ``rec``: its passed-through fields plus ``results``.

    An input or processing error gives ``{...fields, "error": msg, "line": n}``; result keys
    overwrite input fields of the same name.
    """
    out = dict(rec.data)
    err = rec.error or error
    if err:
        if rec.error is None:
            err = f"line {rec.line} of {rec.source}: {err}"
        out["error"] = err
        out["line"] = rec.line
        return out
    if results:
        out.update(results)
    return out


class JsonlWriter:
    """Write JSON objects one per line (``ensure_ascii=False``) to a path or ``-`` (stdout).

    Use as a context manager. ``write_line`` writes a pre-formatted line (``--format text``).
    """

    def __init__(self, path: str | os.PathLike = "-"):
        self.path = str(path)
        self._fh: TextIO | None = None
        self._own = False

    def __enter__(self) -> "JsonlWriter":
        if self.path == "-":
            self._fh = sys.stdout
        else:
            self._fh = open(self.path, "w", encoding="utf-8", newline="\n")
            self._own = True
        return self

    def write(self, obj: dict[str, Any]) -> None:
        self._fh.write(json.dumps(obj, ensure_ascii=False) + "\n")

    def write_line(self, line: str) -> None:
        self._fh.write(line + "\n")

    def flush(self) -> None:
        self._fh.flush()

    def __exit__(self, *exc) -> None:
        if self._own:
            self._fh.close()
        else:
            self._fh.flush()


def jsonl_objects(fh: Iterable[str], path: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line number, object)`` for every non-blank line of a JSONL training/data file, where a
    bad line is fatal (unlike :func:`read_records`, which turns it into an error record).

    Raises:
        InputDataError: invalid JSON or a line that is not a JSON object (names file and line).
    """
    for lineno, line in enumerate(fh, start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputDataError(f"invalid JSON: {exc.msg}", path, lineno) from None
        if not isinstance(obj, dict):
            raise InputDataError("expected a JSON object", path, lineno)
        yield lineno, obj


def chunked(items: Iterable, size: int) -> Iterator[list]:
    """Yield lists of at most ``size`` consecutive items (bounded memory over a long input)."""
    buf: list = []
    for item in items:
        buf.append(item)
        if len(buf) >= size:
            yield buf
            buf = []
    if buf:
        yield buf


def map_records(
    records: Iterable[Record],
    batch_fn,
    *,
    chunk_size: int = 1000,
    strict: bool = False,
    on_chunk=None,
) -> Iterator[dict[str, Any]]:
    """Apply ``batch_fn`` to the good records, chunk by chunk, and yield one output object per
    input record, in input order (bad records become error objects).

    Args:
        records: from :func:`read_records`.
        batch_fn: ``list[Record] -> list[dict | Exception]``, one entry per record given; an
            exception entry (e.g. a text the model cannot take) becomes that record's ``error``.
        chunk_size: records read before ``batch_fn`` is called (bounds memory).
        strict: raise :class:`InputDataError` for the first per-record exception.
        on_chunk: called with the number of records after each chunk (progress).
    """
    for chunk in chunked(records, chunk_size):
        good = [r for r in chunk if not r.error]
        results = batch_fn(good) if good else []
        if len(results) != len(good):  # pragma: no cover - programming error
            raise RuntimeError("batch_fn returned a wrong number of results")
        by_id = {id(r): res for r, res in zip(good, results)}
        for r in chunk:
            if r.error:
                yield output_record(r)
                continue
            res = by_id[id(r)]
            if isinstance(res, Exception):
                if strict:
                    raise InputDataError(str(res), r.source, r.line)
                yield output_record(r, error=str(res))
            else:
                yield output_record(r, res)
        if on_chunk:
            on_chunk(len(chunk))
