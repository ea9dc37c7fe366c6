"""Shared CLI pieces: the stderr console, common options, the error boundary, progress.

The error boundary lives here once: :class:`NlptoolGroup` (the root command group) and
:func:`boundary` (around every command body) turn every exception into one line on stderr and the
documented exit code (docs/io.md): 0 ok, 1 runtime error, 2 usage error (bad option, bad path),
3 bad input data under ``--strict``, 130 interrupted; a closed stdout (``| head``) exits 0
quietly. ``NLPTOOL_DEBUG=1`` or ``nlptool --debug CMD`` also prints the traceback.
"""

from __future__ import annotations

import contextlib
import enum
import errno
import math
import os
import re
import sys
from typing import Optional

import typer
from rich.console import Console
from rich.text import Text
from typer.core import TyperGroup

from ..errors import NlptoolError

# ------------------------------------------------------------------------------ the console

# Style tags our own messages may start with ("[yellow]warning:[/] ..."); everything else in a
# message is printed literally, so user text such as "[/]" or "[model not found]" survives.
_STYLE_TAG = re.compile(r"\[((?:bold |dim |italic )?(?:red|yellow|green|cyan|blue|magenta)|bold|dim|italic)\]")


def literal_text(msg: str) -> Text:
    """``msg`` as a rich Text printed literally, except one leading style tag of our own
    (``[yellow]warning:[/] rest`` styles "warning:"; ``[yellow]whole message[/]`` styles it all)."""
    m = _STYLE_TAG.match(msg)
    if not m:
        return Text(msg)
    rest = msg[m.end():]
    i = rest.find("[/]")
    if i < 0:
        return Text(rest, style=m.group(1))
    return Text.assemble((rest[:i], m.group(1)), rest[i + 3:])


class _StderrConsole(Console):
    """A rich console whose string messages are printed literally (no markup interpretation,
    see :func:`literal_text`), so a file name or a JSON key in a message is never eaten."""

    def print(self, *objects, markup=None, **kwargs):  # noqa: A003 - rich's name
        if markup is not False:
            objects = tuple(literal_text(o) if isinstance(o, str) else o for o in objects)
        kwargs.setdefault("soft_wrap", True)
        return super().print(*objects, markup=False, **kwargs)


#: Everything that is not data goes to stderr.
console = _StderrConsole(stderr=True, highlight=False)

# ------------------------------------------------------------------------------ path checks in the parser


def check_inputs(ctx: typer.Context, param: typer.CallbackParam, value: Optional[list[str]]):
    """The callback of every option or argument naming input files (InputsArg, InputFileOpt, InputFilesArg): inputs exist, are readable, not directories, before the command runs
    (so before any model loads); remembered so that no output can be the same file (nor a model
    directory hold one). No positional input means stdin: a regular file behind stdin counts."""
    from ..paths import check_input_path, check_output_path

    given = [str(p) for p in value or []]
    for p in given or (["-"] if getattr(param, "param_type_name", "") == "argument" else []):
        check_input_path(p)
    meta = ctx.meta.setdefault("nlptool.inputs", [])
    meta.extend(str(p) for p in value or [])
    for o in ctx.meta.get("nlptool.outputs", []):
        check_output_path(o, inputs=meta)
    return value


def _option_name(param) -> str:
    opts = [o for o in getattr(param, "opts", []) if o.startswith("--")]
    return opts[0] if opts else str(getattr(param, "name", "an option"))


def _check_output(ctx: typer.Context, param: typer.CallbackParam, value: Optional[str]):
    """Output option callback: the directory exists, the path is not a directory, not an input,
    not another option's output and not inside a model directory this command writes."""
    from ..paths import check_output_path, claim_output

    if value not in (None, "", "-"):
        check_output_path(str(value), inputs=ctx.meta.get("nlptool.inputs", []))
        claim_output(str(value), _option_name(param))
        ctx.meta.setdefault("nlptool.outputs", []).append(str(value))
    return value


def _check_input_file(ctx: typer.Context, param: typer.CallbackParam, value: Optional[str]):
    if value not in (None, ""):
        return check_inputs(ctx, param, [value])[0]
    return value


def _check_input_format(value: str):
    from ..records import INPUT_FORMATS

    v = getattr(value, "value", value)
    if v not in INPUT_FORMATS:
        raise typer.BadParameter(f"{v!r} is not one of {', '.join(repr(f) for f in INPUT_FORMATS)}.")
    return value


def InputFileOpt(default, *decls: str, help: str = "", **kw):  # noqa: N802,A002 - a typer.Option factory
    """An option naming an input file (``--idf FILE``, ``--corpus FILE``): checked like INPUTS
    (exists, readable, not a directory) at parse time, and never overwritten by an output."""
    return typer.Option(default, *decls, help=help, callback=_check_input_file, **kw)


def InputFilesArg(default, *, help: str = "", **kw):  # noqa: N802,A002 - a typer.Argument factory
    """The positional data files of a ``train``/``eval`` command: checked like INPUTS at parse time
    and remembered, so no output (``--report``, ``-o``, the model directory) can overwrite one."""
    return typer.Argument(default, help=help, show_default=False, callback=check_inputs, **kw)


def InputFilesOpt(default, *decls: str, help: str = "", **kw):  # noqa: N802,A002
    """An option naming several input files (``--eval A --eval B``, ``--corpus``), checked like INPUTS."""
    return typer.Option(default, *decls, help=help, callback=check_inputs, **kw)


def OutputFileOpt(default, *decls: str, help: str = "", **kw):  # noqa: N802,A002
    """An option naming an output file (``--report``, ``--html``, ``--weights``): its directory
    must exist, it must not be a directory or an input; checked at parse time, before any work.
    Write it with :func:`nlptool.paths.atomic_output`."""
    return typer.Option(default, *decls, help=help, callback=_check_output, **kw)


def _check_out_dir(ctx: typer.Context, param: typer.CallbackParam, value: Optional[str]):
    """``--out DIR`` callback: the parent directory exists, ``DIR`` is not an existing file
    (:func:`nlptool.paths.check_out_dir`), and no input or other output lies inside it (it is
    replaced as a whole: :func:`nlptool.paths.claim_out_dir`)."""
    if value in (None, ""):
        return value
    from ..paths import check_out_dir, claim_out_dir

    check_out_dir(value)
    claim_out_dir(str(value), _option_name(param))
    return value


def OutDirOpt(default, *decls: str, help: str = "", **kw):  # noqa: N802,A002
    """``--out DIR`` for a model directory: checked at parse time (parent exists, not a file);
    the library saves the model with :func:`nlptool.paths.atomic_dir` (whole or not at all) and keeps
    resumable state in ``DIR.work`` (:func:`nlptool.paths.work_dir`), never in ``DIR``."""
    return typer.Option(default, *(decls or ("--out",)), help=help, callback=_check_out_dir, **kw)


def finite_float(lo: float | None = None, hi: float | None = None, *, lo_open: bool = False, hi_open: bool = False,
                 allow_inf: bool = False):
    """A ``parser=`` for float options: rejects NaN (and infinities unless ``allow_inf``) and
    values outside ``[lo, hi]`` (``lo_open``/``hi_open``: the bound itself is excluded), so a bad
    value is a usage error (exit 2, one line) before any work."""
    def parse(value):
        if isinstance(value, float):
            x = value
        else:
            try:
                x = float(str(value).strip())
            except ValueError:
                raise typer.BadParameter(f"{value!r} is not a number.") from None
        if math.isnan(x) or (math.isinf(x) and not allow_inf):
            raise typer.BadParameter(f"{value} is not a finite number.")
        if lo is not None and (x < lo or (lo_open and x == lo)):
            raise typer.BadParameter(f"{value} must be {'>' if lo_open else '>='} {lo:g}.")
        if hi is not None and (x > hi or (hi_open and x == hi)):
            raise typer.BadParameter(f"{value} must be {'<' if hi_open else '<='} {hi:g}.")
        return x

    parse.__name__ = "FLOAT"
    return parse


# ------------------------------------------------------------------------------ shared options (docs/options.md)

InputsArg = typer.Argument(None, help="Input file(s); '-' or nothing reads stdin.", show_default=False, callback=check_inputs)
OutputOpt = typer.Option("-", "--output", "-o", help="Output file ('-' = stdout); written whole or not at all.", callback=_check_output)
InputFormatOpt = typer.Option("auto", "--input-format", help="auto|text|jsonl|csv|tsv: auto treats lines starting with '{' as JSON and reads *.csv files as CSV; csv/tsv have a header row.", callback=_check_input_format)
TextKeyOpt = typer.Option("text", "--text-key", help="Field of a JSON record that holds the text.")


def ModelOpt(default, help: str, **kw):
    """``--model/-m`` (the one declaration every command uses): ``default`` from the command's
    object or the model registry, ``help`` saying which kind of model the command takes."""
    return typer.Option(default, "--model", "-m", help=help, **kw)


def _check_device(value: Optional[str]):
    """``--device`` callback: the form (auto|cpu|cuda|cuda:N) and, for CUDA, that this machine has
    it, checked at parse time (exit 2 before any model loads; torch is imported only for cuda)."""
    if value in (None, ""):
        return value
    from ..errors import DeviceError
    from ..models import check_device_spec

    try:
        check_device_spec(value)
    except DeviceError as exc:
        raise typer.BadParameter(str(exc).replace(f"--device {value}: ", "")) from None
    return value


DeviceOpt = typer.Option("auto", "--device", callback=_check_device,
                         help="auto|cpu|cuda|cuda:N (auto: CUDA when available).")
BatchSizeOpt = typer.Option(256, "--batch-size", min=1, help="Sequences per forward pass (bounds memory).")
ChunkSizeOpt = typer.Option(1000, "--chunk-size", min=1, help="Input records read and written per chunk (bounds memory).")


def SeedOpt(default, help: str, **kw):
    """``--seed`` (the one declaration every command uses): an integer >= 0; ``help`` says what
    it seeds. ``default=None`` (tokenize-sample): unseeded unless given."""
    kw.setdefault("min", 0)
    return typer.Option(default, "--seed", help=help, **kw)


QuietOpt = typer.Option(False, "--quiet", "-q", help="No progress or device messages on stderr.")
StrictOpt = typer.Option(False, "--strict", help="Stop at the first bad input record (exit code 3) instead of writing an error record.")


def _remember_threads(ctx: typer.Context, value: Optional[int]):
    """``--threads`` callback: kept in the context, where :func:`run_record_command` finds it."""
    if value is not None:
        ctx.meta["nlptool.threads"] = value
    return value


def ThreadsOpt(default: Optional[int] = None, *decls: str, **kw):  # noqa: N802 - a typer.Option factory
    """``--threads N``: torch's intra-op CPU threads for this process, instead of the rule of
    :mod:`nlptool.threads` (OMP_NUM_THREADS/MKL_NUM_THREADS when set, else 1). A command declares
    it (``threads: Optional[int] = ThreadsOpt()``); :func:`run_record_command` applies it."""
    kw.setdefault("help", "CPU threads per process for torch (default: OMP_NUM_THREADS/MKL_NUM_THREADS when set, else 1; "
                          "more processes scale better: --shard, --engine ray).")
    return typer.Option(default, *(decls or ("--threads",)), min=1, show_default=False, callback=_remember_threads, **kw)


# ------------------------------------------------------------------------------ scale-out options (docs/scale-out.md)


def _check_shard(value: Optional[str]):
    """``--shard i/n`` callback: parsed to ``(i, n)``; malformed or out of range is exit 2."""
    if value is None:
        return None
    from ..errors import UsageError
    from ..records import parse_shard

    try:
        return parse_shard(value)
    except UsageError:
        raise typer.BadParameter(f"{value!r} is not i/n with integers 0 <= i < n (e.g. 0/4).") from None


class Engine(str, enum.Enum):
    local = "local"
    ray = "ray"


ShardOpt = typer.Option(None, "--shard", callback=_check_shard, show_default=False,
                        help="i/n: process and write only the records whose 0-based index is i modulo n (interleave the n outputs to restore the whole).")
EngineOpt = typer.Option(Engine.local, "--engine", help="local (this process) or ray (an actor pool on the Ray cluster named by RAY_ADDRESS, or a local one; pip install 'nlptool[ray]').")
WorkersOpt = typer.Option(2, "--workers", min=1, help="--engine ray: actors in the pool (one model load each).")
GpusPerWorkerOpt = typer.Option(0.0, "--gpus-per-worker", parser=finite_float(0.0, 64.0), help="--engine ray: GPUs requested per actor (fractions share a GPU; 0 = CPU).")
OutputDirOpt = typer.Option(None, "--output-dir", callback=_check_out_dir, show_default=False,
                            help="--engine ray: write JSONL shards (Ray's write order) into this directory instead of -o.")


def info(msg: str, quiet: bool = False) -> None:
    """One line on stderr unless ``--quiet`` (printed literally; see :func:`literal_text`)."""
    if not quiet:
        console.print(msg, highlight=False, soft_wrap=True)


def progress_enabled(quiet: bool) -> bool:
    """Progress bars only when stderr is a terminal and not ``--quiet``."""
    return not quiet and console.is_terminal


def make_progress(quiet: bool):
    """A rich progress bar on stderr, or a no-op when disabled."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=console, disable=not progress_enabled(quiet), transient=True,
    )


# ------------------------------------------------------------------------------ the error boundary

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
    if _is_broken_pipe(exc):
        _silence_stdout()
        return 0
    code, msg = describe_exception(exc)
    if _debug():
        import traceback

        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
    with contextlib.suppress(Exception):
        console.print(Text.assemble(("error:", "bold red"), " ", msg) if code not in (130, 143) else Text(msg))
    return code


def _is_broken_pipe(exc: BaseException) -> bool:
    return isinstance(exc, BrokenPipeError) or (isinstance(exc, OSError) and exc.errno == errno.EPIPE)


def _passthrough(exc: BaseException) -> bool:
    """Exceptions the boundary lets through: Typer/Click control flow and SystemExit."""
    from typer import _click

    return isinstance(exc, (typer.Exit, typer.Abort, SystemExit, _click.exceptions.ClickException))


@contextlib.contextmanager
def boundary():
    """Turn any exception of a command body into one stderr line and its exit code
    (:func:`describe_exception`); a closed stdout exits 0 quietly."""
    try:
        yield
    except BaseException as exc:  # noqa: BLE001 - this is the boundary
        if _passthrough(exc):
            raise
        raise typer.Exit(report_exception(exc)) from None


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


def _finite_floats(cmd) -> None:
    """Every float option of every command rejects NaN and infinities at parse time (a usage error,
    exit 2), whatever range it declares: one rule here instead of one per option. An option that
    means to accept ``inf`` takes a string and parses it itself (e.g. ``tokenize-sample --alpha``)."""
    import math
    import typing

    from typer import _click

    for sub in (getattr(cmd, "commands", None) or {}).values():
        _finite_floats(sub)
    for param in getattr(cmd, "params", ()):
        desc = getattr(param, "type_descriptor", None)
        if desc is None or getattr(param, "_nlptool_finite", False):
            continue
        ann = desc.annotation
        args = [a for a in typing.get_args(ann) if a is not type(None)]
        if args and len(args) == 1:
            ann = args[0]
        if ann is not float:
            continue

        def process_value(ctx, value, _orig=param.process_value, _param=param):
            out = _orig(ctx, value)
            if isinstance(out, float) and not math.isfinite(out):
                raise _click.exceptions.BadParameter(f"{out!r} is not a finite number.", ctx=ctx, param=_param)
            return out

        param.process_value = process_value
        param._nlptool_finite = True


def quiet_jieba() -> None:
    """jieba logs its dictionary build on stderr at first use (and its import resets the level):
    commands that will split words with jieba call this first. No-op without jieba."""
    import logging

    try:
        import jieba
    except ImportError:
        return
    jieba.setLogLevel(logging.WARNING)


class NlptoolGroup(TyperGroup):
    """The root command group: the one place where parse errors, exceptions, Ctrl-C and a
    closed stdout become one stderr line and the documented exit code (also under
    ``typer.testing.CliRunner``, which calls :meth:`main`)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        _finite_floats(self)

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
        _silence_stdout()
        sys.exit(0)
    except KeyboardInterrupt as exc:
        _silence_stdout()
        console.print("terminated" if isinstance(exc, Terminated) else "interrupted")
        sys.exit(143 if isinstance(exc, Terminated) else 130)
    finally:
        # a pipe closed after our last write makes the interpreter's final flush fail: check now
        try:
            if sys.stdout is not None:  # None: started with stdout closed (>&-)
                sys.stdout.flush()
        except (BrokenPipeError, ValueError):
            _silence_stdout()
        except OSError as exc:
            if exc.errno != errno.EPIPE:
                raise
            _silence_stdout()


def _silence_stdout() -> None:
    # Python flushes stdout at exit; on a closed pipe that raises again. Point it at devnull.
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


def report_device(loaded, quiet: bool) -> None:
    """Say which model and device are in use (stderr)."""
    dtype = next(loaded.model.parameters()).dtype
    info(f"model {loaded.name} on {loaded.device} ({str(dtype).replace('torch.', '')})", quiet)


def optional_str(value: Optional[str]) -> Optional[str]:
    return value if value not in (None, "") else None


def quiet_libraries() -> None:
    """Silence transformers' own progress bars, advisory warnings and load reports (they would go
    to stderr and drown our one-line messages), without importing it: the settings are environment
    variables read when transformers is first imported (and applied now if it already is). Called
    by the CLI only: the library never configures logging."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    if "transformers" in sys.modules:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()


def load_for_cli(model: str, kind: str, device: str, quiet: bool):
    """The one model-loading path of every command: quiet libraries, load, report the device."""
    if kind != "char-tagger":  # the segmenter's tagger never imports transformers
        quiet_libraries()
    if quiet:
        import warnings

        warnings.filterwarnings("ignore")
    from ..models import load_model

    loaded = load_model(model, kind=kind, device=device)
    report_device(loaded, quiet)
    return loaded


# ------------------------------------------------------------------------------ running a record command


def count_lines(paths, shard=None) -> int | None:
    """Lines in ``paths`` when every one is a regular file (a cheap byte count, 1 MiB at a time;
    a last line without a newline counts), divided among shards; None for stdin or a pipe."""
    import stat as _stat

    from ..records import compression_of

    total = 0
    for p in paths or ["-"]:
        if p == "-":
            return None
        try:
            st = os.stat(p)
            if not _stat.S_ISREG(st.st_mode):
                return None
            with open(p, "rb") as fh:
                if compression_of(fh.read(6)) is not None:  # by magic bytes: its lines are unknown
                    return None
                fh.seek(0)
                last = b""
                for block in iter(lambda: fh.read(1 << 20), b""):
                    total += block.count(b"\n")
                    last = block[-1:]
                if last not in (b"", b"\n"):
                    total += 1
        except OSError:
            return None
    if shard is not None:
        i, n = shard
        total = len(range(i, total, n))
    return total


@contextlib.contextmanager
def record_progress(description: str, inputs, *, quiet: bool, shard=None):
    """A rich progress bar on stderr (records done / total when the inputs are regular files,
    rate, elapsed, ETA; refreshed several times a second), shown only when stderr is a terminal
    and not ``--quiet``. Yields ``advance(n)``."""
    if not progress_enabled(quiet):
        yield None
        return
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn,
                               TimeElapsedColumn, TimeRemainingColumn)

    total = count_lines(inputs, shard)
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TaskProgressColumn(),
               TextColumn("[progress.data.speed]{task.fields[rate]}"), TimeElapsedColumn(), TextColumn("eta"),
               TimeRemainingColumn()]
    with Progress(*columns, console=console, transient=True, refresh_per_second=4) as progress:
        task = progress.add_task(description, total=total, rate="")

        def advance(n: int) -> None:
            progress.advance(task, n)
            t = progress.tasks[0]
            if t.speed:
                progress.update(task, rate=f"{t.speed:,.1f} rec/s")

        yield advance


@contextlib.contextmanager
def train_progress(quiet: bool):
    """The progress bar of a ``train`` command on stderr (steps done / total, percentage, rate,
    elapsed, ETA; redrawn 4 times a second), only when stderr is a terminal and not ``--quiet``.
    Yields the ``progress(done, total, stage)`` callback the library calls
    (:class:`nlptool.training.TrainSettings`), or None. A new ``stage`` replaces the bar."""
    if not progress_enabled(quiet):
        yield None
        return
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn,
                               TimeElapsedColumn, TimeRemainingColumn)

    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TaskProgressColumn(),
               TextColumn("[progress.data.speed]{task.fields[rate]}"), TimeElapsedColumn(), TextColumn("eta"),
               TimeRemainingColumn()]
    with Progress(*columns, console=console, transient=True, refresh_per_second=4) as bar:
        current: dict = {}

        def progress(done: int, total: int | None = None, stage: str = "training") -> None:
            if current.get("stage") != stage:
                if "task" in current:
                    bar.remove_task(current["task"])
                current.update(stage=stage, task=bar.add_task(stage, total=total, rate=""))
            task = current["task"]
            bar.update(task, completed=done, total=total)
            speed = next(t.speed for t in bar.tasks if t.id == task)
            if speed:
                bar.update(task, rate=f"{speed:,.1f}/s")

        yield progress


def train_log(quiet: bool):
    """The ``log`` callback of a ``train`` command: each line on stderr, or None with ``--quiet``."""
    return None if quiet else (lambda s: console.print(s, highlight=False, soft_wrap=True))


def _apply_threads(command, threads: int | None) -> None:
    """The thread rule (:func:`nlptool.threads.apply_thread_rule`) for ``command``, with
    ``threads`` or else the ``--threads`` of the running command (:func:`ThreadsOpt`)."""
    from typer._click.globals import get_current_context

    from ..threads import apply_thread_rule, command_kind

    if threads is None:
        ctx = get_current_context(silent=True)
        threads = ctx.meta.get("nlptool.threads") if ctx is not None else None
    apply_thread_rule(command_kind(command), threads)


def run_record_command(command, inputs, *, output: str, input_format: str = "auto", strict: bool = False,
                       shard=None, chunk_size: int = 1000, fmt: str = "jsonl", quiet: bool = False,
                       engine=None, workers: int = 2, gpus_per_worker: float = 0.0, output_dir=None,
                       name: str = "", threads: int | None = None) -> None:
    """The body of every record command: read the inputs with ``command``'s fields, run it on the
    local engine (:func:`nlptool.engine.run`) or on Ray (:mod:`nlptool.ray_engine`), write to
    ``output``, show progress, and end with one summary line on stderr
    (``1,998 records, 2 errors (lines 17, 902)``), then the lines of ``command.finish`` (which
    writes the command's side outputs, :meth:`nlptool.engine.Command.finish`)."""
    from ..engine import run
    from ..jsonl import JsonlWriter

    records = command.read(inputs, input_format=input_format, strict=strict, shard=shard)
    if getattr(engine, "value", engine) == "ray" or output_dir:  # scale-out (docs/scale-out.md)
        from ..ray_engine import run_cli

        with _stderr_silenced(quiet):  # Ray's own INFO/WARNING lines (and its processes'): -q is quiet
            return run_cli(command, records, inputs, output, output_dir, fmt=fmt, workers=workers,
                           gpus_per_worker=gpus_per_worker, chunk_size=chunk_size, strict=strict,
                           input_format=input_format, keys=command.text_keys(), shard=shard,
                           optional_keys=command.extra_keys(), alternatives=command.alternatives(),
                           list_keys=command.list_keys())
    quiet_libraries()
    if quiet:
        import warnings

        warnings.filterwarnings("ignore")
    _apply_threads(command, threads)  # before the model loads (nlptool/threads.py)
    command.state()  # load before the first record, so messages come first and errors early
    for line in command.describe():
        info(line, quiet)

    def on_error(obj):
        if fmt != "jsonl":
            info(f"[yellow]skipped:[/] {obj['error']}", quiet)

    with record_progress(name or type(command).__name__, inputs, quiet=quiet, shard=shard) as advance, \
            JsonlWriter(output) as writer:
        sink = _PipeTolerant(writer) if command.side_outputs() else writer
        summary = run(command, records, sink, fmt=fmt, chunk_size=chunk_size, strict=strict, progress=advance,
                      on_error=on_error)
        # side outputs (attribute --html/--png) before the main output is committed: all or none
        finished = list(command.finish(inputs=list(inputs or ())))
    info(summary.line(), quiet)
    for line in finished:
        info(line, quiet)
    if sink is not writer and sink.broken:
        raise BrokenPipeError(errno.EPIPE, "stdout closed")  # exit 0, as any `| head`, side outputs written


@contextlib.contextmanager
def _stderr_silenced(on: bool):
    """With ``on``: file descriptor 2 points at the null device inside the block (libraries that
    log on their own, and the processes they start, inherit it); restored before an error is
    reported, so errors still reach the user."""
    if not on:
        yield
        return
    with contextlib.suppress(Exception):
        sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


class _PipeTolerant:
    """A writer that, once stdout is closed (``| head``), drops further lines instead of ending
    the run: a command with side outputs (``--html``) still processes every record and writes
    them whole. ``broken`` says whether the pipe closed."""

    def __init__(self, writer):
        self.writer, self.broken = writer, False

    def _call(self, name: str, *args) -> None:
        if self.broken:
            return
        try:
            getattr(self.writer, name)(*args)
        except OSError as exc:
            if not _is_broken_pipe(exc):
                raise
            self.broken = True
            _silence_stdout()

    def write(self, obj) -> None:
        self._call("write", obj)

    def write_line(self, line: str) -> None:
        self._call("write_line", line)

    def flush(self) -> None:
        self._call("flush")
