"""JSONL writing: one output object per input record, ``ensure_ascii=False``, never a broken line.

:func:`output_record` joins a record's pass-through fields with its results (or its error);
:class:`JsonlWriter` writes them to stdout or, through :func:`nlptool.paths.atomic_output`, to a
file that appears whole or not at all.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
from typing import Any, TextIO


from .paths import atomic_output, named_os_error
from .records import Record, escape_line


def output_record(rec: Record, results: dict[str, Any] | None = None, error: str | None = None) -> dict[str, Any]:
    """The output object for ``rec``: its passed-through fields plus ``results``.

    An input or processing error gives ``{...fields, "error": msg, "line": n}``; result keys
    overwrite input fields of the same name. The input's own ``"error"``/``"line"`` (an earlier
    nlptool stage's) pass through a successful record unchanged; on an error they are kept as
    ``"input_error"``/``"input_line"``, so chained stages lose no message.
    """
    out = dict(rec.data)
    err = rec.error or error
    if err:
        if rec.error is None:
            err = f"line {rec.line} of {rec.source}: {err}"
        for own in ("error", "line"):
            if own in out:
                out[f"input_{own}"] = out.pop(own)
        out["error"] = err
        out["line"] = rec.line
        return out
    if results:
        out.update(results)
    return out


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
        self._fh: TextIO = sys.stdout
        self._cm: Any = None

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
            raise named_os_error(exc, "<stdout>" if self.path == "-" else self.path) from None

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
            raise named_os_error(exc, "<stdout>" if self.path == "-" else self.path) from None

    def __exit__(self, *exc):
        cm, self._cm = self._cm, None
        if exc[0] is not None and self.path == "-":
            # the run failed (or stdout is closed): flush what was written, never mask the error
            with contextlib.suppress(Exception):
                self._fh.flush()
            return None
        cm.__exit__(*exc)
        return None
