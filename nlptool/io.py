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
* input is read lazily, so memory does not grow with the file (use :func:`chunked`); the paths
  are checked eagerly, when :func:`read_records` is called, so a missing file is reported before
  a model loads;
* a JSON line nested deeper than :data:`MAX_JSON_DEPTH`, or holding a lone surrogate
  (``"\\ud800"``, not valid Unicode text), is an error record like any other bad line.

Every file a command writes goes through :func:`atomic_output` (or :func:`atomic_dir` for a
model directory): a temp file beside the target, fsync, rename on success; special files and
symlinks are written through, never replaced; an output that is also an input is refused before
anything is written (:func:`validate_paths`). See docs/io.md for the contract as users see it.
"""

from __future__ import annotations

import contextlib
import io as _io
import json
import os
import re
import shutil
import stat
import sys
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, BinaryIO, TextIO

from .errors import InputDataError, UsageError

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
    texts: dict[str, str] = field(default_factory=dict)
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


# --------------------------------------------------------------------------------------------
# Paths: checked before any work; inputs remembered so no output can overwrite one
# --------------------------------------------------------------------------------------------

#: ``(st_dev, st_ino)`` of every input checked since :func:`guard_inputs` (``None``: not guarding).
#: The CLI turns the guard on for each command, so an output path that is the same file as any
#: input (by inode, symlinks and hard links included) is refused before anything is written.
_GUARDED_INPUTS: set[tuple[int, int]] | None = None


def guard_inputs(on: bool = True) -> None:
    """Start (or stop) remembering the inputs checked by :func:`check_input_path`, so that
    :func:`check_output_path` refuses to write over any of them. The CLI calls this once per
    command; library callers who rewrite a file in place simply leave it off."""
    global _GUARDED_INPUTS
    _GUARDED_INPUTS = set() if on else None


def _file_id(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)  # follows symlinks: the file that would be read or written
    except (OSError, ValueError):
        return None
    return (st.st_dev, st.st_ino)


def check_input_path(path: str) -> None:
    """Check that ``path`` (``-`` = stdin, always fine) can be read as an input file.

    Raises:
        UsageError: it does not exist, is a directory, or cannot be read (message names the path).
    """
    if path == "-":
        return
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except PermissionError:
        raise UsageError(f"{path}: permission denied (cannot read it)") from None
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path}: cannot read it ({getattr(exc, 'strerror', None) or exc})") from None
    if stat.S_ISDIR(st.st_mode):
        raise UsageError(f"{path}: is a directory, expected a file")
    if not os.access(path, os.R_OK):
        raise UsageError(f"{path}: permission denied (cannot read it)")
    if _GUARDED_INPUTS is not None and stat.S_ISREG(st.st_mode):
        _GUARDED_INPUTS.add((st.st_dev, st.st_ino))


def check_output_path(path: str | os.PathLike | None, *, inputs: Sequence[str] = ()) -> None:
    """Check that ``path`` can be written as an output file, before any work is done.

    ``-`` (stdout) and ``None`` are always fine. A symlink is checked through to its target.

    Raises:
        UsageError: the path is a directory, its directory does not exist, or it is the same file
            as one of ``inputs`` or of the inputs remembered by :func:`guard_inputs`.
    """
    if path is None or str(path) in ("", "-"):
        return
    path = str(path)
    target = os.path.realpath(path)
    if os.path.isdir(target):
        raise UsageError(f"{path}: is a directory; give a file path for the output")
    parent = os.path.dirname(target)
    if not os.path.isdir(parent):
        raise UsageError(f"{path}: directory {os.path.dirname(path) or parent} does not exist (create it first)")
    fid = _file_id(target)
    if fid is not None:
        same = fid in (_GUARDED_INPUTS or ()) or any(i != "-" and _file_id(i) == fid for i in inputs)
        if same:
            raise UsageError(f"{path}: is also an input file; refusing to overwrite it (choose another output path)")


def validate_paths(inputs: Sequence[str] | None, outputs: Sequence[str | None] = ()) -> None:
    """Check every input and output path before any output is opened or any model loads.

    Inputs must exist, be readable and not be directories (``-`` = stdin); outputs must be
    writable paths in an existing directory, none the same file as an input (by inode, symlinks
    included) and no two the same file; at most one output may be ``-``.

    Raises:
        UsageError: naming the path and the fix.
    """
    ins = [str(p) for p in (inputs or []) if p is not None]
    for p in ins:
        check_input_path(p)
    outs = [str(o) for o in outputs if o not in (None, "")]
    for o in outs:
        check_output_path(o, inputs=ins)
    if sum(o == "-" for o in outs) > 1:
        raise UsageError("only one output can be '-' (stdout)")
    real = [(o, os.path.realpath(o)) for o in outs if o != "-"]
    for j, (a, ra) in enumerate(real):
        for b, rb in real[j + 1:]:
            if ra == rb:
                raise UsageError(f"{a} and {b}: the same file given for two outputs")


# --------------------------------------------------------------------------------------------
# Writing: whole or not at all
# --------------------------------------------------------------------------------------------


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, mode: str = "w", *, encoding: str = "utf-8", newline: str | None = "\n",
                  inputs: Sequence[str] = ()):
    """Open an output for writing so that it is written whole or not at all.

    * ``-``: stdout (text or ``sys.stdout.buffer`` for ``"wb"``), flushed at the end, not closed;
    * a regular file or a new path: a temp file in the same directory, flushed, fsync'd and renamed
      onto the target only when the ``with`` block succeeds; on any exception (a full disk, EIO,
      Ctrl-C, a bad record under ``strict``) the temp file is removed and the old file is intact.
      A new file gets mode ``0o666 & ~umask``; an existing file keeps its mode;
    * a symlink is followed: its target is written (atomically if it is a regular file) and the
      link stays a link;
    * a special file (device node, FIFO, socket) is written through directly, never replaced.

    Args:
        path: output path or ``-``.
        mode: ``"w"`` (text) or ``"wb"`` (bytes).
        inputs: input paths this output must not be (checked by inode before anything is written).

    Raises:
        UsageError: see :func:`check_output_path` (a directory, a missing directory, an input).
        OSError: from writing (ENOSPC, EIO, ...); the target is left as it was.
    """
    binary = "b" in mode
    kw = {} if binary else {"encoding": encoding, "newline": newline}
    path = str(path)
    if path == "-":
        fh = sys.stdout.buffer if binary else sys.stdout
        try:
            yield fh
            fh.flush()
        except OSError as exc:
            raise _named(exc, "<stdout>") from None
        return
    check_output_path(path, inputs=inputs)
    target = os.path.realpath(path)
    try:
        st = os.stat(target)
    except FileNotFoundError:
        st = None
    if st is not None and not stat.S_ISREG(st.st_mode):
        try:
            with open(target, mode, **kw) as fh:  # device node / FIFO: write through, never replace
                yield fh
        except OSError as exc:
            raise _named(exc, path) from None
        return
    d, base = os.path.split(target)
    fd, tmp = tempfile.mkstemp(prefix=f".{base}.", suffix=".tmp", dir=d)
    try:
        os.fchmod(fd, stat.S_IMODE(st.st_mode) if st is not None else 0o666 & ~_umask())
        fh = os.fdopen(fd, mode, **kw)
    except BaseException:
        os.close(fd)
        os.unlink(tmp)
        raise
    try:
        yield fh
        fh.flush()
        os.fsync(fh.fileno())
        fh.close()
        os.replace(tmp, target)
    except BaseException as exc:
        with contextlib.suppress(Exception):
            fh.close()
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise _named(exc, path) from None
        raise


def _named(exc: OSError, path: str) -> OSError:
    """``exc`` with the output path as its file name (a failed write() does not carry one)."""
    if exc.filename is not None or exc.errno is None:
        return exc
    return type(exc)(exc.errno, exc.strerror or os.strerror(exc.errno), path)


def check_out_dir(out: str | os.PathLike) -> str:
    """Check a model directory path (``train * --out``) before any work: its parent directory
    exists and it is not an existing file. Returns the resolved path (symlinks followed).

    Raises:
        UsageError: naming the path and the fix.
    """
    out = str(out)
    target = os.path.realpath(out)
    if os.path.exists(target) and not os.path.isdir(target):
        raise UsageError(f"{out}: exists and is not a directory (give a new or directory path for the model)")
    parent = os.path.dirname(target)
    if not os.path.isdir(parent):
        raise UsageError(f"{out}: directory {os.path.dirname(out) or parent} does not exist (create it first)")
    return target


@contextlib.contextmanager
def atomic_dir(out: str | os.PathLike):
    """Build an output directory (a model) whole or not at all: yields a temp directory beside
    ``out`` (same filesystem) to save into.

    * on success, a new ``out`` is the temp directory renamed (one ``rename``: it appears complete);
      into an existing ``out`` directory each entry is moved with ``os.replace`` (a same-named entry
      is replaced, ``config.json`` last), and the directory's other entries are left as they are:
      a directory the user named is never deleted or emptied;
    * on any exception (Ctrl-C included) the temp directory is removed and ``out`` is untouched
      (not created).

    Build the model first and enter this block only to save it, so that the temp directory
    exists for seconds, not for the whole run.

    Raises:
        UsageError: ``out`` exists and is not a directory, or its parent directory does not exist.
    """
    target = check_out_dir(out)
    parent, base = os.path.split(target)
    tmp = tempfile.mkdtemp(prefix=f".{base}.", suffix=".tmp", dir=parent)
    try:
        os.chmod(tmp, 0o777 & ~_umask())
        yield tmp
        if not os.path.isdir(target):
            os.rename(tmp, target)
            return
        names = sorted(os.listdir(tmp), key=lambda n: (n == "config.json", n))
        for name in names:
            src, dst = os.path.join(tmp, name), os.path.join(target, name)
            if os.path.isdir(dst) and not os.path.islink(dst):  # a same-named directory: swap it out
                old = tempfile.mkdtemp(prefix=f".{name}.", suffix=".old", dir=target)
                os.rename(dst, os.path.join(old, name))
                os.rename(src, dst)
                shutil.rmtree(old, ignore_errors=True)
                continue
            if os.path.isdir(src) and os.path.lexists(dst):
                os.unlink(dst)
            os.replace(src, dst)
        os.rmdir(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def work_dir(out: str | os.PathLike) -> str:
    """``OUT.work``: the directory beside a model directory ``OUT`` that holds a training run's
    resumable state (``train mlm`` / ``train qa-gen`` checkpoints, ``train segmenter``'s teacher
    cache), kept apart so that ``OUT`` only ever holds a complete model. Only the path: the
    commands that keep state create it (see :func:`work_dir_scope`)."""
    return check_out_dir(out) + ".work"


@contextlib.contextmanager
def work_dir_scope(out: str | os.PathLike):
    """Yield :func:`work_dir` of ``out`` as a ``Path``, created when missing. On exit (success or
    failure) it is removed again if this call created it and it holds no non-empty file, so a run
    that saved no state leaves nothing; state that was saved stays for the next run.

    Raises:
        UsageError: ``OUT.work`` exists and is not a directory, or ``out`` is not a valid model path.
    """
    from pathlib import Path

    path = Path(work_dir(out))
    if path.exists() and not path.is_dir():
        raise UsageError(f"{path}: exists and is not a directory (the work directory of {out}; move it away)")
    created = not path.exists()
    path.mkdir(exist_ok=True)
    try:
        yield path
    finally:
        if created and not any(f.is_file() and f.stat().st_size for f in path.rglob("*")):
            shutil.rmtree(path, ignore_errors=True)


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


def _load_json_line(line: str) -> tuple[Any, str | None]:
    """``(object, None)`` or ``(None, why the line is not usable JSON)``; never raises."""
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        return None, f"invalid JSON ({exc.msg} at column {exc.colno})"
    except RecursionError:
        return None, f"JSON nested too deeply (more than {MAX_JSON_DEPTH} levels)"
    if (line.count("[") + line.count("{") > MAX_JSON_DEPTH) and _json_depth_exceeds(obj, MAX_JSON_DEPTH):
        return None, f"JSON nested too deeply (more than {MAX_JSON_DEPTH} levels)"
    if _SURROGATE_ESCAPE.search(line) and _has_lone_surrogate(obj):
        return None, "invalid text: a lone UTF-16 surrogate escape (\\ud800-\\udfff) is not a Unicode character"
    return obj, None


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


def _finite_json(value: Any) -> bool:
    try:
        json.dumps(value, allow_nan=False)
    except (ValueError, TypeError, RecursionError):
        return False
    return True


def safe_json_line(obj: dict[str, Any]) -> str:
    """``obj`` as one JSON line (``ensure_ascii=False``, no trailing newline) that is always valid
    JSON and valid UTF-8: a field holding NaN/Infinity (which JSON cannot represent), a value
    that cannot be serialised, or a lone surrogate is dropped and the record gets an ``"error"``
    naming the fields instead (one record stays one line)."""
    try:
        line = json.dumps(obj, ensure_ascii=False, allow_nan=False)
        line.encode("utf-8")
        return _escape_separators(line)
    except (ValueError, TypeError, RecursionError, UnicodeEncodeError):
        pass
    keep: dict[str, Any] = {}
    bad: list[str] = []
    for k, v in obj.items():
        try:
            json.dumps({k: v}, ensure_ascii=False, allow_nan=False).encode("utf-8")
            keep[k] = v
        except (ValueError, TypeError, RecursionError, UnicodeEncodeError):
            bad.append(str(k).encode("utf-8", "backslashreplace").decode("utf-8"))
    if "error" not in keep:
        keep["error"] = f"result field(s) {', '.join(bad)} not writable as JSON (NaN, Infinity or invalid text)"
    return _escape_separators(json.dumps(keep, ensure_ascii=False))


# U+0085, U+2028, U+2029 end a line for str.splitlines (and U+2028/9 for JavaScript); JSON allows
# them raw inside strings, so escaping them changes nothing for a JSON reader and keeps one record
# on one line for every line-oriented tool. (json.dumps already escapes the C0 controls.)
_JSON_SEPARATORS = re.compile("[\x85\u2028\u2029]")


def _escape_separators(line: str) -> str:
    return _JSON_SEPARATORS.sub(lambda m: f"\\u{ord(m.group()):04x}", line)


class JsonlWriter:
    """Write JSON objects one per line (``ensure_ascii=False``) to a path or ``-`` (stdout).

    Use as a context manager. The file is written through :func:`atomic_output`: whole or not at
    all (a failure or a ``strict`` stop leaves the old file), never over an input, through
    symlinks and special files. :meth:`write` never writes NaN/Infinity (see
    :func:`safe_json_line`). ``write_line`` writes a pre-formatted line as given (a CoNLL-U block
    may span lines); ``write_text`` writes one record's text as exactly one line (line breaks
    escaped, see :func:`escape_line`).
    """

    def __init__(self, path: str | os.PathLike = "-"):
        self.path = str(path)
        self._fh: TextIO | None = None
        self._cm = None

    def __enter__(self) -> "JsonlWriter":
        self._cm = atomic_output(self.path, "w")
        self._fh = self._cm.__enter__()
        return self

    def _put(self, text: str) -> None:
        try:
            self._fh.write(text)
        except UnicodeEncodeError:
            self._fh.write(text.encode("utf-8", "backslashreplace").decode("utf-8"))
        except OSError as exc:
            raise _named(exc, "<stdout>" if self.path == "-" else self.path) from None

    def write(self, obj: dict[str, Any]) -> None:
        self._put(safe_json_line(obj) + "\n")

    def write_line(self, line: str) -> None:
        self._put(line + "\n")

    def write_text(self, text: str) -> None:
        """One record's text output as exactly one line (line breaks inside escaped)."""
        self.write_line(escape_line(text))

    def flush(self) -> None:
        try:
            self._fh.flush()
        except OSError as exc:
            raise _named(exc, "<stdout>" if self.path == "-" else self.path) from None

    def __exit__(self, *exc):
        cm, self._cm = self._cm, None
        if exc[0] is not None and self.path == "-":
            # the run failed (or stdout is closed): flush what was written, never mask the error
            with contextlib.suppress(Exception):
                self._fh.flush()
            return None
        cm.__exit__(*exc)
        return None


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
    it = iter(records)
    while True:
        chunk, stop = read_chunk(it, chunk_size)
        if not chunk and stop is None:
            return
        good = [r for r in chunk if not r.error]
        results = _apply_batch(batch_fn, good) if good else []
        yield from chunk_outputs(chunk, good, results, strict=strict)
        if on_chunk:
            on_chunk(len(chunk))
        if stop is not None:
            raise stop


def read_chunk(it: Iterator[Record], chunk_size: int) -> tuple[list[Record], InputDataError | None]:
    """The next ``chunk_size`` records of ``it`` (fewer at the end), and the :class:`InputDataError`
    a strict reader raised while reading them (the records before it are returned first), or None."""
    chunk: list[Record] = []
    size = max(1, int(chunk_size))
    try:
        for r in it:
            chunk.append(r)
            if len(chunk) >= size:
                break
    except InputDataError as exc:
        return chunk, exc
    return chunk, None


def chunk_outputs(chunk: Sequence[Record], good: Sequence[Record], results: Sequence, *,
                  strict: bool = False) -> Iterator[dict[str, Any]]:
    """One output object per record of ``chunk``, in order: the record's own error, or its result
    from ``results`` (aligned with ``good``, the error-free records), where an exception result
    becomes the record's ``error`` (or, with ``strict``, an :class:`InputDataError`). The one
    place where results are joined back to records, for the local engine and the Ray engine alike."""
    if len(results) != len(good):  # pragma: no cover - programming error
        raise RuntimeError("batch_fn returned a wrong number of results")
    by_id = {id(r): res for r, res in zip(good, results)}
    for r in chunk:
        if r.error:
            yield output_record(r)
            continue
        res = by_id[id(r)]
        if isinstance(res, Exception):
            msg = _exception_message(res)
            if strict:
                raise InputDataError(msg, r.source, r.line)
            yield output_record(r, error=msg)
        else:
            yield output_record(r, res)


def _exception_message(exc: BaseException) -> str:
    """A one-line message for a per-record exception (its class name when it has no text)."""
    if isinstance(exc, InputDataError):
        msg = exc.reason
    else:
        msg = str(exc) or type(exc).__name__
        if not isinstance(exc, (ValueError, LookupError)) and type(exc).__name__ not in msg:
            msg = f"{type(exc).__name__}: {msg}"
    return " ".join(msg.split())


def _apply_batch(batch_fn, good: list[Record]) -> list:
    """``batch_fn(good)``; when it raises for the whole chunk (a library error on one bad text,
    e.g. a tokenizer TypeError), retry record by record so only the bad record gets an error.
    :class:`NlptoolError` other than :class:`InputDataError` (a model or usage problem that no
    record fixes) and ``MemoryError`` propagate."""
    from .errors import NlptoolError

    try:
        return batch_fn(good)
    except MemoryError:
        raise
    except NlptoolError as exc:
        if not isinstance(exc, InputDataError):
            raise
        first = exc
    except Exception as exc:  # noqa: BLE001 - isolated per record below
        first = exc
    if len(good) == 1:
        return [first]
    out: list = []
    for r in good:
        try:
            out.extend(batch_fn([r]))
        except MemoryError:
            raise
        except NlptoolError as exc:
            if not isinstance(exc, InputDataError):
                raise
            out.append(exc)
        except Exception as exc:  # noqa: BLE001
            out.append(exc)
    return out
