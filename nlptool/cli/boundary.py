"""The one error boundary of the CLI: every exception becomes one stderr line and an exit code.

:class:`NlptoolGroup` (the root command group) catches what any command raises, while its options
are parsed and while its body runs, and :func:`run_app` (the console script) what escapes Click;
no command catches errors itself. The documented exit codes (docs/io.md): 0 ok, 1 runtime error,
2 usage error (bad option, bad path), 3 bad input data under ``--strict``, 130 interrupted, 143
terminated (SIGTERM); a closed stdout (``| head``) exits 0 quietly. ``NLPTOOL_DEBUG=1`` or
``nlptool --debug CMD`` also prints the traceback.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sys

import typer
from rich.text import Text
from typer.core import TyperGroup

from ..errors import NlptoolError
from .console import console
from .options import finite_floats

#: Set by ``nlptool --debug``; ``NLPTOOL_DEBUG=1`` does the same.
DEBUG = False

#: OSError numbers that mean "the path given cannot work" (exit 2); any other OSError is a runtime
#: failure (exit 1: a full disk, an I/O error).
_USAGE_ERRNOS = {errno.ENOENT, errno.EISDIR, errno.ENOTDIR, errno.EACCES, errno.EPERM, errno.EEXIST, errno.ELOOP,
                 errno.ENAMETOOLONG, errno.EROFS, errno.ENXIO}


def _debug() -> bool:
    return DEBUG or os.environ.get("NLPTOOL_DEBUG", "") not in ("", "0")


def one_line(msg: str, limit: int = 2000) -> str:
    """A message on one line (line breaks folded to spaces), at most ``limit`` characters."""
    msg = " ".join(part.strip() for part in str(msg).splitlines() if part.strip())
    return msg if len(msg) <= limit else msg[: limit - 1] + "…"


class Terminated(KeyboardInterrupt):
    """SIGTERM (``timeout``, ``kill``, a job scheduler), raised in the main thread like Ctrl-C so
    the same cleanup runs (temp outputs removed, nothing half-written); exit code 143."""


def _on_sigterm(signum, frame):  # noqa: ARG001 - the signal handler signature
    raise Terminated()


def describe_exception(exc: BaseException) -> tuple[int, str]:
    """``(exit code, one-line message)`` for any exception (the documented mapping, docs/io.md)."""
    if isinstance(exc, NlptoolError):
        return exc.exit_code, one_line(str(exc) or type(exc).__name__)
    if isinstance(exc, Terminated):
        return 143, "terminated"
    if isinstance(exc, KeyboardInterrupt):
        return 130, "interrupted"
    if isinstance(exc, OSError) and exc.errno is not None:
        where = exc.filename if exc.filename is not None else None
        if exc.filename2 is not None:
            where = f"{exc.filename} -> {exc.filename2}"
        what = exc.strerror or os.strerror(exc.errno)
        hint = {errno.ENOSPC: " (no space left: free some space; the old output file is unchanged)",
                errno.EIO: " (an I/O error from the device; the old output file is unchanged)"}.get(exc.errno, "")
        msg = f"{where}: {what}{hint}" if where is not None else f"{what}{hint}"
        return (2 if exc.errno in _USAGE_ERRNOS else 1), one_line(msg)
    if isinstance(exc, MemoryError):
        return 1, "out of memory (try a smaller --batch-size or --chunk-size, or shorter inputs)"
    if isinstance(exc, RecursionError):
        return 1, "input nested too deeply (maximum recursion depth exceeded)"
    text = str(exc)
    return 1, one_line(f"{type(exc).__name__}: {text}" if text else type(exc).__name__)


def report_exception(exc: BaseException) -> int:
    """Print ``exc`` as one stderr line (and the traceback in debug mode); return the exit code.
    A closed stdout (``BrokenPipeError``) prints nothing and returns 0."""
    if is_broken_pipe(exc):
        silence_stdout()
        return 0
    code, msg = describe_exception(exc)
    if _debug():
        import traceback

        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
    with contextlib.suppress(Exception):
        console.print(Text.assemble(("error:", "bold red"), " ", msg) if code not in (130, 143) else Text(msg))
    return code


def is_broken_pipe(exc: BaseException) -> bool:
    """Whether ``exc`` says that stdout's reader went away (``| head``): exit 0, nothing printed."""
    return isinstance(exc, BrokenPipeError) or (isinstance(exc, OSError) and exc.errno == errno.EPIPE)


def _passthrough(exc: BaseException) -> bool:
    """Exceptions the boundary lets through: Typer/Click control flow and SystemExit."""
    from typer import _click

    return isinstance(exc, (typer.Exit, typer.Abort, SystemExit, _click.exceptions.ClickException))


def _configure_for_args(args: list[str]) -> None:
    """Process-wide settings the CLI (never the library) makes from the command line."""
    import warnings

    global DEBUG
    DEBUG = "--debug" in args[:1] or DEBUG
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    with contextlib.suppress(Exception):
        if not sys.stderr.isatty():
            os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    if "-q" in args or "--quiet" in args:
        import logging

        # libraries that log below WARNING on stderr (jieba's "Building prefix dict", Ray's INFO
        # lines): a filter on their loggers, set before they are imported, survives the level
        # jieba resets at import
        for name in ("jieba", "ray", "ray.data", "ray._private", "ray.util"):
            logging.getLogger(name).addFilter(lambda record: record.levelno >= logging.WARNING)
        os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")
        os.environ.setdefault("RAY_DEDUP_LOGS", "0")
        warnings.filterwarnings("ignore")
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")


class NlptoolGroup(TyperGroup):
    """The root command group: the one place where parse errors, exceptions, Ctrl-C and a
    closed stdout become one stderr line and the documented exit code (also under
    ``typer.testing.CliRunner``, which calls :meth:`main`). :meth:`invoke` runs every command
    (its option callbacks and its body), so a command body raises and never catches."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        finite_floats(self)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except BaseException as exc:  # noqa: BLE001 - the boundary
            if _passthrough(exc):
                raise
            raise typer.Exit(report_exception(exc)) from None

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        from typer import _click

        from ..paths import guard_inputs

        argv = list(sys.argv[1:] if args is None else args)
        _configure_for_args(argv)
        import signal
        import threading

        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, _on_sigterm)
        guard_inputs(True)
        code = 0
        try:
            rv = super().main(argv, prog_name, complete_var, standalone_mode=False, **extra)
            code = rv if isinstance(rv, int) and not isinstance(rv, bool) else 0
        except _click.exceptions.NoArgsIsHelpError as exc:
            exc.show()
            code = 2
        except _click.exceptions.ClickException as exc:
            code = exc.exit_code
            where = exc.ctx.command_path if getattr(exc, "ctx", None) is not None else "nlptool"
            msg = one_line(exc.format_message())
            with contextlib.suppress(Exception):
                console.print(Text.assemble(("error:", "bold red"), f" {msg} (see '{where} --help')"))
        except typer.Abort as exc:
            cause = exc.__cause__ or exc.__context__
            code = 143 if isinstance(cause, Terminated) else 130 if isinstance(cause, KeyboardInterrupt) else 1
            console.print({143: "terminated", 130: "interrupted"}.get(code, "error: aborted"))
        except SystemExit:
            raise
        except BaseException as exc:  # noqa: BLE001
            code = report_exception(exc)
        finally:
            guard_inputs(False)
        sys.exit(code)


def run_app(app) -> None:
    """Run the Typer app (through :class:`NlptoolGroup`); a closed stdout (``| head``) exits 0,
    Ctrl-C exits 130 with "interrupted"."""
    try:
        app()
    except BrokenPipeError:
        silence_stdout()
        sys.exit(0)
    except KeyboardInterrupt as exc:
        silence_stdout()
        console.print("terminated" if isinstance(exc, Terminated) else "interrupted")
        sys.exit(143 if isinstance(exc, Terminated) else 130)
    finally:
        # a pipe closed after our last write makes the interpreter's final flush fail: check now
        try:
            if sys.stdout is not None:  # None: started with stdout closed (>&-)
                sys.stdout.flush()
        except (BrokenPipeError, ValueError):
            silence_stdout()
        except OSError as exc:
            if exc.errno != errno.EPIPE:
                raise
            silence_stdout()


def silence_stdout() -> None:
    """Point file descriptor 1 at the null device: Python flushes stdout at exit, and on a closed
    pipe that would raise again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass

