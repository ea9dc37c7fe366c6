"""Record reading: text lines, JSONL, TSV pairs and CSV/TSV tables in, one :class:`Record` per input
line (per record of a table).

Every command reads its input through :func:`read_records`, so the rules are the same everywhere:

* input is one or more paths, ``-`` for stdin; no path means stdin (a terminal stdin is a usage
  error, never a hang); gzip, bzip2 and xz input (file or stdin) is decompressed as it is read,
  recognised by its first bytes (:func:`compression_of`); line numbers are the decompressed text's;
* ``input_format``: ``text`` (one text per line), ``jsonl`` (one JSON object per line), ``auto``
  (a line whose first non-blank character is ``{`` is JSON, any other line is text; a file named
  ``*.csv`` is ``csv``), ``csv`` or ``tsv`` (a header row, then records: :func:`_table_records`);
* exactly one :class:`Record` per input line (per table record), in order. A line that cannot be
  used (invalid UTF-8, invalid JSON, not an object, missing key, non-string value) gives a record whose
  ``error`` says why and where; with ``strict=True`` it raises :class:`InputDataError` instead;
* empty lines are records with empty text, not errors;
* input is read lazily, so memory does not grow with the file; the paths are checked eagerly,
  when :func:`read_records` is called, so a missing file is reported before a model loads;
* a JSON line nested deeper than :data:`MAX_JSON_DEPTH`, or holding a lone surrogate
  (``"\\ud800"``, not valid Unicode text), is an error record like any other bad line.

Data files of the ``train``/``eval`` commands are read with :func:`data_lines`,
:func:`jsonl_objects` and :func:`check_json_field` (one line, one file name, one line number per error).
"""

from __future__ import annotations

import io as _io
import json
import os
import re
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from .errors import InputDataError, UsageError

from .paths import check_input_path

STDIN_NAME = "<stdin>"

#: JSON input nested deeper than this (objects/arrays) is an error record, not a RecursionError.
MAX_JSON_DEPTH = 100

# A \\uD800-\\uDFFF escape in a JSON line: only then can json.loads produce a lone surrogate.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


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
        index: 0-based position of the line among all lines of all inputs, in reading order
            (the same with or without ``shard``; seeds per-record sampling, see docs/scale-out.md).
    """

    source: str
    line: int
    data: dict[str, Any] = field(default_factory=dict)
    texts: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    raw: bytes | None = field(default=None, repr=False)
    index: int = -1

    @property
    def text(self) -> str:
        """The first requested field (the usual single-text case)."""
        return next(iter(self.texts.values()), "")

    @property
    def where(self) -> str:
        return f"{self.source}:{self.line}"



def stdin_is_terminal() -> bool:
    """True when standard input is an interactive terminal (nothing piped in); False for a pipe,
    a file, or a closed stdin (``<&-``, reported where it is read)."""
    try:
        return sys.stdin is not None and sys.stdin.isatty()
    except (AttributeError, ValueError):
        return False


def check_stdin(inputs: Sequence[str] | None) -> list[str]:
    """Normalise the input list: no paths means ``["-"]``.

    Raises:
        UsageError: stdin is read but is a terminal (the user forgot the file or the pipe).
    """
    paths = [str(p) for p in (inputs or [])] or ["-"]
    if "-" in paths:
        if stdin_is_terminal():
            raise UsageError("no input: give a file, or pipe text into stdin (e.g. `echo 文本 | nlptool ...`)")
    for p in paths:
        check_input_path(p)
    return paths


#: Characters that end a line for ``str.splitlines`` (and so for most line-oriented tools).
_LINE_BREAKS = {"\n": "\\n", "\r": "\\r", "\x0b": "\\u000b", "\x0c": "\\u000c", "\x1c": "\\u001c",
                "\x1d": "\\u001d", "\x1e": "\\u001e", "\x85": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"}
_LINE_BREAK_RE = re.compile("[" + "".join(_LINE_BREAKS) + "]")


def escape_line(text: str) -> str:
    """``text`` on one physical line: every line break inside it (``\\n``, ``\\r``, U+2028, ...
    everything ``str.splitlines`` splits on) is written as a backslash escape (``\\n`` as the two
    characters ``\\`` ``n``). Text output formats use it so that one record is one line."""
    return _LINE_BREAK_RE.sub(lambda m: _LINE_BREAKS[m.group()], text)


#: A line longer than this (bytes) is an error record and is never held in memory whole, so no
#: single line can exhaust memory. ``read_records(..., keep_raw=True)`` (lossless copying) has no cap.
MAX_LINE_BYTES = 64 * 1024 * 1024


class _TooLong(bytes):
    """Marker for a line over :data:`MAX_LINE_BYTES`; ``size`` is its length in bytes."""

    size = 0


#: Leading bytes of the compressed formats read transparently, and the tool that tests such a file.
_MAGIC = ((b"\x1f\x8b\x08", "gzip", "gzip -t"), (b"BZh", "bzip2", "bzip2 -t"), (b"\xfd7zXZ\x00", "xz", "xz -t"))


def compression_of(head: bytes) -> tuple[str, str] | None:
    """``(format, test command)`` when ``head`` (a stream's first bytes, 6 suffice) starts like a
    gzip, bzip2 or xz stream (by magic bytes, whatever the file is called), else None."""
    for magic, name, tool in _MAGIC:
        if head.startswith(magic) and (name != "bzip2" or head[3:4] in b"123456789"):
            return name, tool
    return None


class _Prefixed(_io.RawIOBase):
    """A raw stream that gives ``head`` (bytes already read from ``rest``) and then ``rest``: how
    the first bytes of stdin or a pipe are looked at without losing them."""

    def __init__(self, head: bytes, rest: BinaryIO):
        self._head, self._rest = head, rest

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:
        if self._head:
            n = min(len(buf), len(self._head))
            buf[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        data = self._rest.read1(len(buf)) if hasattr(self._rest, "read1") else self._rest.read(len(buf))
        buf[: len(data)] = data
        return len(data)


def _open_input(path: str, stack) -> tuple[BinaryIO, tuple[str, str] | None]:
    """``path`` (``-`` = stdin) as a binary stream, decompressed when its first bytes are those of
    gzip, bzip2 or xz (:func:`compression_of`); files opened are closed by ``stack``."""
    if path == "-":
        if sys.stdin is None:
            raise UsageError("standard input is closed (<&-): give an input file")
        fh: BinaryIO = getattr(sys.stdin, "buffer", None) or _io.BytesIO(sys.stdin.read().encode())
    else:
        fh = stack.enter_context(open(path, "rb"))
    head = fh.read(6)  # a buffered read: up to 6 bytes, fewer only at the end of the input
    if fh.seekable():
        fh.seek(-len(head), os.SEEK_CUR)
    else:
        fh = _io.BufferedReader(_Prefixed(head, fh), buffer_size=1 << 16)
    kind = compression_of(head)
    if kind is None:
        return fh, None
    import bz2
    import gzip
    import lzma

    stream: Any  # GzipFile, BZ2File or LZMAFile: binary streams that typeshed types apart
    if kind[0] == "gzip":
        stream = gzip.GzipFile(fileobj=fh, mode="rb")
    elif kind[0] == "bzip2":
        stream = bz2.BZ2File(fh)
    else:
        stream = lzma.LZMAFile(fh)
    return stack.enter_context(stream), kind


def _decompression_error(exc: BaseException) -> bool:
    """True for what gzip/bz2/lzma raise on corrupt or truncated data (not a disk's I/O error)."""
    import lzma
    import zlib

    if isinstance(exc, (EOFError, zlib.error, lzma.LZMAError)):
        return True
    return isinstance(exc, OSError) and exc.errno is None


def _binary_lines(path: str, limit: int | None = None) -> Iterator[bytes]:
    """The lines of ``path`` (``-`` = stdin) as bytes, ``\\n`` included, decompressed when the input
    is gzip/bzip2/xz (so line numbers are those of the decompressed text); a line over ``limit``
    bytes is a :class:`_TooLong` marker (see :func:`_capped`).

    Raises:
        InputDataError: compressed data that is corrupt or truncated (names the file and the first
            line that could not be read; the lines before it have been yielded).
    """
    import contextlib

    source = STDIN_NAME if path == "-" else path
    with contextlib.ExitStack() as stack:
        stream, kind = _open_input(path, stack)
        n = 0
        try:
            for line in _capped(stream, limit):
                yield line
                n += 1
        except Exception as exc:  # noqa: BLE001 - only decompression errors are caught, see below
            if kind is None or not _decompression_error(exc):
                raise
            reason = " ".join((str(exc) or type(exc).__name__).split())
            raise InputDataError(f"{kind[0]} data is corrupt or truncated after line {n} ({reason}); test the file "
                                 f"with `{kind[1]} {'FILE' if path == '-' else path}`", source, n + 1) from None


def _capped(stream, limit: int | None) -> Iterator[bytes]:
    if limit is None:
        yield from stream
        return
    while True:
        line = stream.readline(limit + 1)
        if not line:
            return
        if len(line) > limit and not line.endswith(b"\n"):
            n = len(line)
            while True:  # skip the rest of the line in bounded pieces
                part = stream.readline(1 << 20)
                n += len(part)
                if not part or part.endswith(b"\n"):
                    n -= part.endswith(b"\n")
                    break
            marker = _TooLong(b"")
            marker.size = n
            yield marker
        else:
            yield line


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
    list_keys: Sequence[str] = (),
    shard: tuple[int, int] | None = None,
) -> Iterator[Record]:
    """Yield one :class:`Record` per line of every input, in order.

    Args:
        inputs: paths; ``-`` or an empty list is stdin. Files and stdin compressed with gzip,
            bzip2 or xz are decompressed as they are read (recognised by their first bytes).
        input_format: ``auto|text|jsonl|csv|tsv``; ``auto`` reads a file named ``*.csv``
            (``*.csv.gz``, ...) as ``csv`` unless its first line starts with ``{``. ``csv``/``tsv``:
            a header row names the columns, ``keys`` must be among them, every column is passed
            through as a string field, and one record (several lines when a quoted field holds a
            line break) gives one :class:`Record` numbered by its first line; see :func:`_table_records`.
        keys: the string fields a command needs. For a text line with one key the whole line is
            the text; with several keys (a pair command) the line is split on tabs into that many
            columns (TSV), the columns after them passed through in ``data`` as ``label`` (the first
            one after the keys) and ``col4``, ``col5``, ... (1-based column numbers; see
            :func:`tsv_extra_names`).
        strict: raise on the first bad record instead of yielding it with ``error`` set.
        tsv: force (True) or forbid (False) tab splitting of text lines; default: ``len(keys) > 1``.
        optional_keys: JSON fields copied into ``texts`` when present (any JSON type; not checked).
        alternatives: JSON fields that, when present, make the ``keys`` optional (``segment
            --parse`` accepts a record with a ``words`` list and no text).
        keep_raw: also keep each line's exact bytes (terminator included) in ``Record.raw``.
        list_keys: those of ``keys`` whose JSON value may also be a list of strings (kept as a
            list in ``texts``; ``similarity`` takes several references this way).
        shard: ``(i, n)``: yield only the records whose :attr:`Record.index` is ``i`` modulo
            ``n`` (``0 <= i < n``; see :func:`parse_shard`); the other lines are not parsed, and a
            bad line outside the shard does not stop a ``strict`` run. Interleaving the outputs
            of shards ``0..n-1`` (record ``j`` of shard ``i`` at position ``j * n + i``) restores
            the unsharded output.

    Raises:
        UsageError: unknown format, missing/unreadable file or a directory, terminal stdin, a
            CSV/TSV header without a column of ``keys`` or naming a column twice; raised by the call
            itself, before the first record is read (the reading is lazy), except for the header
            of stdin or a pipe, which is read with the first record.
        InputDataError: with ``strict=True``, the first bad record; always: compressed data that is
            corrupt or truncated, a CSV/TSV header that cannot be read. Names file and line
            (raised while iterating, after the records before it).
    """
    fmt = getattr(input_format, "value", input_format)
    if fmt not in INPUT_FORMATS:
        raise UsageError(f"input format {fmt!r}: expected one of {', '.join(INPUT_FORMATS)}")
    paths = check_stdin(inputs)
    keys = list(keys)
    if tsv is None:
        tsv = len(keys) > 1
    if shard is not None:
        shard = parse_shard(shard)
    for path in paths:  # a table's header is checked now, before any model loads
        if _path_format(path, fmt) != fmt or fmt in ("csv", "tsv"):
            _check_header_now(path, fmt, keys, optional_keys)
    return _iter_records(paths, fmt, keys, strict, tsv, optional_keys, keep_raw, alternatives, list_keys, shard)


#: The values of ``read_records(input_format=...)`` (and of ``--input-format``).
INPUT_FORMATS = ("auto", "text", "jsonl", "csv", "tsv")

#: File names that ``auto`` reads as CSV with a header (a compression suffix allowed).
_CSV_NAME = re.compile(r"\.csv(\.(gz|bz2|xz))?$", re.IGNORECASE)


def _path_format(path: str, fmt: str) -> str:
    """The format of one input: ``auto`` is ``auto-csv`` for a file named ``*.csv`` (CSV unless its
    first line starts with ``{``, see :func:`_open_path`), else ``fmt``."""
    if fmt == "auto" and path != "-" and _CSV_NAME.search(os.path.basename(path)):
        return "auto-csv"
    return fmt


def _check_header_now(path: str, fmt: str, keys, optional_keys) -> None:
    """Read the header of a regular file that is read as CSV/TSV, so that a missing column is a
    :class:`UsageError` before any work; stdin, pipes and unreadable data are left to the lazy reader."""
    import stat

    try:
        if path == "-" or not stat.S_ISREG(os.stat(path).st_mode):
            return
    except OSError:
        return
    kind, items = _open_path(path, _path_format(path, fmt), keys, optional_keys, False)
    try:
        if kind == "table":
            next(items, None)
    except (InputDataError, OSError):
        pass  # raised again, in order, while iterating
    finally:
        items.close()


def parse_shard(spec: str | tuple[int, int]) -> tuple[int, int]:
    """``"i/n"`` (or ``(i, n)``) as ``(i, n)`` with ``n >= 1`` and ``0 <= i < n``.

    Raises:
        UsageError: malformed (not two integers ``i/n``) or out of range.
    """
    if isinstance(spec, tuple) and len(spec) == 2 and all(isinstance(x, int) for x in spec):
        i, n = spec
    else:
        m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(spec))
        if not m:
            raise UsageError(f"shard {spec!r}: expected i/n with integers 0 <= i < n (e.g. 0/4)")
        i, n = int(m.group(1)), int(m.group(2))
    if n < 1 or not 0 <= i < n:
        raise UsageError(f"shard {spec!r}: expected i/n with integers 0 <= i < n (e.g. 0/4)")
    return i, n


def _iter_records(paths, input_format, keys, strict, tsv, optional_keys, keep_raw, alternatives,
                  list_keys=(), shard=None) -> Iterator[Record]:
    index = -1
    for path in paths:
        source = STDIN_NAME if path == "-" else path
        kind, items = _open_path(path, _path_format(path, input_format), keys, optional_keys, keep_raw)
        if kind == "table":
            for rec in items:
                index += 1
                if shard is not None and index % shard[1] != shard[0]:
                    continue
                rec.index = index
                yield _checked(rec, strict)
            continue
        fmt = "auto" if kind == "auto" else input_format
        for lineno, raw in enumerate(items, start=1):
            index += 1
            if shard is not None and index % shard[1] != shard[0]:
                continue
            if isinstance(raw, _TooLong):
                rec = Record(source=source, line=lineno, error=(
                    f"line of {raw.size:,} bytes is longer than the limit of {MAX_LINE_BYTES:,} bytes "
                    "(split it into several records)"))
            else:
                rec = _parse_line(raw, source, lineno, fmt, keys, tsv, optional_keys, alternatives, list_keys)
            rec.index = index
            if keep_raw:
                rec.raw = raw
            yield _checked(rec, strict)


def _checked(rec: Record, strict: bool) -> Record:
    """``rec`` with ``file:line`` put before its error; with ``strict`` an error is raised instead."""
    if rec.error and strict:
        raise InputDataError(rec.error, rec.source, rec.line)
    if rec.error:
        rec.error = f"line {rec.line} of {rec.source}: {rec.error}"
    return rec


def _open_path(path: str, fmt: str, keys, optional_keys, keep_raw: bool):
    """``("table", records)`` for an input read as CSV/TSV, else ``(fmt, lines)`` (``"auto"`` for a
    ``*.csv`` file whose first line is a JSON object); ``fmt`` as :func:`_path_format` gives it.
    Nothing is read until the iterator is."""
    lines = _binary_lines(path, None if keep_raw else MAX_LINE_BYTES)
    source = STDIN_NAME if path == "-" else path
    if fmt == "auto-csv":
        lines, first = _peek(lines)
        if first is not None and not isinstance(first, _TooLong) and \
                first.decode("utf-8", "replace").lstrip("\ufeff \t").startswith("{"):
            return "auto", lines
        return "table", _table_records(lines, source, "csv", keys, optional_keys, keep_raw, detected=True)
    if fmt in ("csv", "tsv"):
        return "table", _table_records(lines, source, fmt, keys, optional_keys, keep_raw)
    return fmt, lines


def _peek(it: Iterator[Any]) -> tuple[Iterator[Any], Any]:
    """``(a generator giving the same items, the first item or None)``: reads one item now."""
    first = next(it, None)

    def again():
        if first is not None:
            yield first
        yield from it

    return again(), first


def tsv_extra_names(keys: Sequence[str], n_cols: int) -> list[str]:
    """Field names of the columns after ``keys`` in a headerless TSV line of ``n_cols`` columns
    (``similarity``'s ``s1<TAB>s2<TAB>score``): the first is ``label`` (the name of the gold score in
    JSONL pairs, see docs/similarity.md), the others ``col4``, ``col5``, ... after their 1-based
    column number (``col3`` too when ``label`` is itself one of ``keys``)."""
    names = []
    for i in range(len(keys), n_cols):
        name = "label" if i == len(keys) and "label" not in keys else f"col{i + 1}"
        names.append(name)
    return names


def _table_records(lines: Iterator[bytes], source: str, fmt: str, keys, optional_keys, keep_raw: bool,
                   detected: bool = False) -> Iterator[Record]:
    """One :class:`Record` per CSV (``fmt="csv"``) or TSV (``"tsv"``) record after the header row,
    read with the standard :mod:`csv` module (its default dialect: ``"`` quotes a field, ``""``
    inside it is a quote; TSV takes tabs as separators, with the same quoting, as ``train
    classifier`` reads it), ``strict=True``.

    ``Record.line`` is the record's first line: a record whose quoted field holds a line break spans
    several lines and is one record. ``data`` maps every header name to the row's string value;
    ``texts`` holds ``keys`` and those of ``optional_keys`` the header has. A record whose field
    count differs from the header's, a malformed record (a stray or unclosed quote: the record ends
    with the line where the :mod:`csv` module stopped), invalid UTF-8 or a line over
    :data:`MAX_LINE_BYTES` in any of its lines is an error record; a blank line is a record with
    empty text, like a blank line in JSONL. A field may hold up to :data:`MAX_LINE_BYTES`
    characters (the :mod:`csv` module's own limit is set to that while a record is parsed).

    Raises:
        UsageError: the header lacks a column of ``keys`` or names a column twice.
        InputDataError: the header cannot be read (malformed, invalid UTF-8, too long).
    """
    import csv

    what = "CSV" if fmt == "csv" else "TSV"
    consumed: list[tuple[int, bytes | None, str | None]] = []  # (line, raw if kept, problem) of a record
    count = 0

    def feed() -> Iterator[str]:
        nonlocal count
        for raw in lines:
            count += 1
            problem = None
            if isinstance(raw, _TooLong):
                problem = (f"line of {raw.size:,} bytes is longer than the limit of {MAX_LINE_BYTES:,} bytes "
                           "(split it into several records)")
                text = "\n"
            else:
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    problem = f"invalid UTF-8 at byte {exc.start} (re-encode the file as UTF-8, e.g. with iconv)"
                    text = raw.decode("utf-8", "surrogateescape")
                if count == 1 and text.startswith("\ufeff"):
                    text = text[1:]
            consumed.append((count, raw if keep_raw else None, problem))
            yield text

    reader = csv.reader(feed(), delimiter="," if fmt == "csv" else "\t", strict=True)
    header: list[str] | None = None
    while True:
        consumed.clear()
        old_limit = csv.field_size_limit(MAX_LINE_BYTES)
        try:
            row, err = next(reader), None
        except StopIteration:
            return
        except csv.Error as exc:
            row, err = None, str(exc)
        finally:
            csv.field_size_limit(old_limit)
        first, last = consumed[0][0], consumed[-1][0]
        problem = next(((n, p) for n, _, p in consumed if p), None)
        why = None
        if problem is not None:
            n, p = problem
            why = (f"line {n}: " if n != first else "") + p
        elif err is not None:
            span = f" (lines {first}-{last})" if last > first else ""
            why = f"malformed {what} record{span}: {err} (a stray or unclosed quote?)"
        if header is None:
            if why:
                raise InputDataError(f"{what} header: {why}", source, first)
            header = _check_header(row or [], keys, source, what, detected)
            continue
        rec = Record(source=source, line=first)
        if keep_raw:
            rec.raw = b"".join(r for _, r, _ in consumed if r is not None)
        if why:
            rec.error = why
        elif not row:  # a blank line
            rec.texts = {k: "" for k in keys}
        elif len(row) != len(header):
            sep = "comma" if fmt == "csv" else "tab"
            rec.error = f"expected {len(header)} {sep}-separated fields as in the header, found {len(row)}"
        else:
            rec.data = dict(zip(header, row))
            rec.texts = {k: rec.data[k] for k in keys}
            rec.texts.update((k, rec.data[k]) for k in optional_keys if k in rec.data)
        yield rec


def _check_header(header: list[str], keys, source: str, what: str, detected: bool) -> list[str]:
    """``header`` when it names every one of ``keys`` and no column twice.

    Raises:
        UsageError: a missing key column (with the header and the option that fixes it), a
            duplicate column name.
    """
    seen: set[str] = set()
    for name in header:
        if name in seen:
            raise UsageError(f"{source}: column {name!r} appears twice in the {what} header; rename one")
        seen.add(name)
    missing = [k for k in keys if k not in seen]
    if missing:
        shown = ", ".join(repr(h) for h in header[:12]) + (", ..." if len(header) > 12 else "") or "empty"
        fix = "choose the text column with --text-key" if len(keys) == 1 else \
            "choose the columns with --a-key and --b-key"
        also = ("; the file is read as CSV because its name ends in .csv: --input-format text reads each "
                "line as text") if detected else ""
        raise UsageError(f"{source}: no column {missing[0]!r} in the {what} header ({shown}); {fix}{also}")
    return header


def _parse_line(raw: bytes, source: str, lineno: int, fmt: str, keys, tsv: bool, optional_keys, alternatives=(),
                list_keys=()) -> Record:
    rec = Record(source=source, line=lineno)
    if fmt in ("csv", "tsv"):  # a line without its header (the ray engine's --output-dir reads lines)
        rec.error = (f"{fmt} input is read with its header row, not one line at a time (the ray engine's "
                     "--output-dir reads lines): convert it to JSONL")
        return rec
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
            extra = cols[len(keys):]
            cols = (cols + [""] * len(keys))[: len(keys)]
            rec.data = dict(zip(keys, cols))
            rec.texts = dict(rec.data)
            rec.data.update(zip(tsv_extra_names(keys, len(keys) + len(extra)), extra))
        else:
            rec.data = {keys[0]: line}
            rec.texts = {keys[0]: line}
        return rec
    obj, err = _load_json_line(line)
    if err:
        rec.error = err
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
            missing = [key for key in keys if key not in obj]
            option = ("--text-key" if len(keys) == 1 else "--a-key and --b-key" if len(missing) > 1
                      else "--a-key" if k == keys[0] else "--b-key")
            rec.error = f"missing key {k!r} (fields found: {found}; choose the field with {option})"
            return rec
        v = obj[k]
        if v is None:
            v = ""
        if k in list_keys and isinstance(v, list) and all(isinstance(x, str) for x in v):
            rec.texts[k] = list(v)
            continue
        if not isinstance(v, str):
            rec.error = f"field {k!r} is {type(v).__name__}, expected a string"
            return rec
        rec.texts[k] = v
    for k in optional_keys:
        if k in obj:
            rec.texts[k] = obj[k]
    return rec


def _json_depth_exceeds(obj: Any, cap: int) -> bool:
    """True when ``obj`` nests lists/dicts deeper than ``cap`` (iterative: no recursion)."""
    stack = [(obj, 1)]
    while stack:
        o, d = stack.pop()
        if isinstance(o, dict):
            o = o.values()
        elif not isinstance(o, list):
            continue
        if d > cap:
            return True
        stack.extend((v, d + 1) for v in o if isinstance(v, (dict, list)))
    return False


def _has_lone_surrogate(obj: Any) -> bool:
    try:
        json.dumps(obj, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


class _NonStandardNumber(ValueError):
    """``NaN``, ``Infinity`` or ``-Infinity`` in a JSON line: Python's json accepts them, JSON does not."""


def _refuse_constant(name: str):
    raise _NonStandardNumber(name)


def _load_json_line(line: str) -> tuple[Any, str | None]:
    """``(object, None)`` or ``(None, why the line is not usable JSON)``; never raises. The
    non-standard numbers ``NaN``/``Infinity``/``-Infinity`` (RFC 8259 has none) make a line invalid."""
    try:
        obj = json.loads(line, parse_constant=_refuse_constant)
    except _NonStandardNumber as exc:
        return None, f"invalid JSON ({exc} is not a JSON number)"
    except json.JSONDecodeError as exc:
        return None, f"invalid JSON ({exc.msg} at column {exc.colno})"
    except RecursionError:
        return None, f"JSON nested too deeply (more than {MAX_JSON_DEPTH} levels)"
    if (line.count("[") + line.count("{") > MAX_JSON_DEPTH) and _json_depth_exceeds(obj, MAX_JSON_DEPTH):
        return None, f"JSON nested too deeply (more than {MAX_JSON_DEPTH} levels)"
    if _SURROGATE_ESCAPE.search(line) and _has_lone_surrogate(obj):
        return None, "invalid text: a lone UTF-16 surrogate escape (\\ud800-\\udfff) is not a Unicode character"
    return obj, None


def jsonl_objects(fh: Iterable[str], path: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line number, object)`` for every non-blank line of a JSONL training/data file, where a
    bad line is fatal (unlike :func:`read_records`, which turns it into an error record).

    Same per-line rules as :func:`read_records`: invalid UTF-8, invalid JSON, nesting deeper than
    :data:`MAX_JSON_DEPTH` and lone surrogates are bad lines. ``fh`` may yield ``str`` or ``bytes``
    lines (bytes give exact line numbers for invalid UTF-8).

    Raises:
        InputDataError: a bad line (names file and line; exit code 3 at the CLI).
    """
    it = iter(fh)
    lineno = 0
    while True:
        try:
            line = next(it)
        except StopIteration:
            return
        except UnicodeDecodeError as exc:
            raise InputDataError(f"invalid UTF-8 near line {lineno + 1} (byte {exc.start} of the block being "
                                 f"decoded); re-encode the file as UTF-8", path) from None
        lineno += 1
        if isinstance(line, bytes):
            try:
                line = line.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InputDataError(f"invalid UTF-8 at byte {exc.start} (re-encode the file as UTF-8)", path, lineno) from None
        if lineno == 1 and line.startswith("\ufeff"):
            line = line[1:]
        if not line.strip():
            continue
        yield lineno, parse_json_object(line, path, lineno)


def parse_json_object(line: str, path: str, lineno: int) -> dict[str, Any]:
    """One JSON object line of a training/data file, under the same rules as every reader (invalid
    JSON, nesting deeper than :data:`MAX_JSON_DEPTH`, lone surrogates, not an object are bad lines).

    Raises:
        InputDataError: a bad line (names file and line).
    """
    obj, err = _load_json_line(line)
    if err:
        raise InputDataError(err, path, lineno)
    if not isinstance(obj, dict):
        raise InputDataError("expected a JSON object", path, lineno)
    return obj


def data_lines(path: str | os.PathLike) -> Iterator[tuple[int, str]]:
    """``(line number, line)`` for every line of a training/data file, decoded as UTF-8 with the line
    terminator (``\\n``, ``\\r\\n``) and a leading byte-order mark removed; blank lines included
    (the caller skips them). Never replaces a byte it cannot decode.

    Raises:
        InputDataError: invalid UTF-8 (names file, line and byte).
    """
    path = str(path)
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InputDataError(f"invalid UTF-8 at byte {exc.start} (re-encode the file as UTF-8, e.g. with "
                                     "iconv)", path, lineno) from None
            if lineno == 1 and line.startswith("\ufeff"):
                line = line[1:]
            yield lineno, line.rstrip("\r\n")


_JSON_KINDS = {"string": (str,), "integer": (int,), "number": (int, float), "null": (type(None),)}
_JSON_NAMES = {str: "string", bool: "boolean", int: "number", float: "number", type(None): "null"}


def check_json_field(value: Any, what: str, kinds: Sequence[str], path: str, lineno: int) -> None:
    """Check the JSON type of one field of a training/data line, so that a value of the wrong type is
    bad input data instead of being turned into text with ``str()`` or into a number with ``float()``.

    Args:
        value: the field's value as ``json.loads`` gave it.
        what: the field's role in the message (``"text"``, ``"label"``, ``"score"``).
        kinds: accepted JSON kinds: ``"string"``, ``"integer"``, ``"number"`` (integer or
            fraction), ``"null"`` (accepted silently: the caller decides what null means).
            ``true``/``false`` are never numbers.
        path, lineno: where the line is (for the message).

    Raises:
        InputDataError: ``file:line: the text is a JSON list, expected a string`` (exit code 3 at
            the CLI).
    """
    ok = tuple(t for k in kinds for t in _JSON_KINDS[k])
    if isinstance(value, ok) and not isinstance(value, bool):
        return
    named = [k for k in kinds if k != "null"]
    expected = " or ".join(("an " if k[0] in "aeiou" else "a ") + k for k in named)
    found = _JSON_NAMES.get(type(value), type(value).__name__)
    raise InputDataError(f"the {what} is a JSON {found}, expected {expected}", path, lineno)
