"""Record reading: text lines, JSONL and TSV in, one :class:`Record` per input line.

Every command reads its input through :func:`read_records`, so the rules are the same everywhere:

* input is one or more paths, ``-`` for stdin; no path means stdin (a terminal stdin is a usage
  error, never a hang);
* ``input_format``: ``text`` (one text per line), ``jsonl`` (one JSON object per line) or ``auto``
  (a line whose first non-blank character is ``{`` is JSON, any other line is text);
* exactly one :class:`Record` per input line, in order. A line that cannot be used (invalid
  UTF-8, invalid JSON, not an object, missing key, non-string value) gives a record whose
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


def _binary_lines(path: str, limit: int | None = None) -> Iterator[bytes]:
    if path == "-":
        stream: BinaryIO = getattr(sys.stdin, "buffer", None) or _io.BytesIO(sys.stdin.read().encode())
        yield from _capped(stream, limit)
    else:
        with open(path, "rb") as fh:
            yield from _capped(fh, limit)


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
        list_keys: those of ``keys`` whose JSON value may also be a list of strings (kept as a
            list in ``texts``; ``similarity`` takes several references this way).
        shard: ``(i, n)``: yield only the records whose :attr:`Record.index` is ``i`` modulo
            ``n`` (``0 <= i < n``; see :func:`parse_shard`); the other lines are not parsed, and a
            bad line outside the shard does not stop a ``strict`` run. Interleaving the outputs
            of shards ``0..n-1`` (record ``j`` of shard ``i`` at position ``j * n + i``) restores
            the unsharded output.

    Raises:
        UsageError: unknown format, missing/unreadable file or a directory, terminal stdin; raised
            by the call itself, before the first record is read (the reading is lazy).
        InputDataError: only with ``strict=True``; names file and line (raised while iterating).
    """
    fmt = getattr(input_format, "value", input_format)
    if fmt not in ("auto", "text", "jsonl"):
        raise UsageError(f"input format {fmt!r}: expected auto, text or jsonl")
    paths = check_stdin(inputs)
    keys = list(keys)
    if tsv is None:
        tsv = len(keys) > 1
    if shard is not None:
        shard = parse_shard(shard)
    return _iter_records(paths, fmt, keys, strict, tsv, optional_keys, keep_raw, alternatives, list_keys, shard)


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
        for lineno, raw in enumerate(_binary_lines(path, None if keep_raw else MAX_LINE_BYTES), start=1):
            index += 1
            if shard is not None and index % shard[1] != shard[0]:
                continue
            if isinstance(raw, _TooLong):
                rec = Record(source=source, line=lineno, error=(
                    f"line of {raw.size:,} bytes is longer than the limit of {MAX_LINE_BYTES:,} bytes "
                    "(split it into several records)"))
            else:
                rec = _parse_line(raw, source, lineno, input_format, keys, tsv, optional_keys, alternatives, list_keys)
            rec.index = index
            if keep_raw:
                rec.raw = raw
            if rec.error and strict:
                raise InputDataError(rec.error, source, lineno)
            if rec.error:
                rec.error = f"line {lineno} of {source}: {rec.error}"
            yield rec


def _parse_line(raw: bytes, source: str, lineno: int, fmt: str, keys, tsv: bool, optional_keys, alternatives=(),
                list_keys=()) -> Record:
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
            rec.error = f"missing key {k!r} (fields found: {found}; choose the field with --text-key)"
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
