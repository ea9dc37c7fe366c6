"""Typed errors raised by the library; the CLI boundary maps each to one stderr line and an exit code.

Exit codes (documented in the README and docs/io.md):

* 0  success
* 1  runtime error (:class:`NlptoolError`, :class:`ModelError`)
* 2  usage error (Typer's own, :class:`UsageError`, and :class:`DeviceError`: a device this machine lacks)
* 3  bad input data under ``--strict`` (:class:`InputDataError`)
"""

from __future__ import annotations


class NlptoolError(Exception):
    """Base class of every error nlptool raises on purpose. ``exit_code`` is what the CLI returns."""

    exit_code = 1


class UsageError(NlptoolError):
    """The command was called in a way that cannot work (bad option combination, tty stdin, ...)."""

    exit_code = 2


class InputDataError(NlptoolError):
    """A record of the input cannot be processed (invalid JSON/UTF-8, missing key, wrong type).

    ``source`` is the file name (``<stdin>`` for standard input) and ``line`` the 1-based line number.
    """

    exit_code = 3

    def __init__(self, message: str, source: str | None = None, line: int | None = None):
        self.source = source
        self.line = line
        self.reason = message
        where = ""
        if source is not None and line is not None:
            where = f"{source}:{line}: "
        elif source is not None:
            where = f"{source}: "
        super().__init__(where + message)


class ModelError(NlptoolError):
    """A model cannot be found or loaded (unknown name, offline hub id, incompatible weights)."""


class DeviceError(NlptoolError):
    """The requested device does not exist on this machine (e.g. ``--device cuda`` without CUDA), or
    ``--device`` is malformed: a usage error (exit 2), found when the options are parsed."""

    exit_code = 2
