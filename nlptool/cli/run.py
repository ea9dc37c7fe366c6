"""Running a command: libraries quieted, its model loaded, its records through the engine.

:func:`run_record_command` is the body of every record command (segment, similarity pairs,
attribute, qa-gen, tokenize-sample): the command module builds the command object
(:class:`nlptool.engine.Command`) from its options and hands it here, with the inputs and the
output; this module reads, runs (locally or on Ray), writes and reports. Errors are not caught
here: they reach the one boundary (:mod:`nlptool.cli.boundary`).
"""

from __future__ import annotations

import contextlib
import errno
import os
import sys

from .boundary import is_broken_pipe, silence_stdout
from .console import info, record_progress, report_device


def quiet_libraries(quiet: bool = False) -> None:
    """Silence transformers' own progress bars, advisory warnings and load reports (they would go
    to stderr and drown our one-line messages), without importing it: the settings are environment
    variables read when transformers is first imported (and applied now if it already is); with
    ``quiet`` (``-q``) Python's warnings too. Called by the CLI only: the library never configures
    logging."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    if "transformers" in sys.modules:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    if quiet:
        import warnings

        warnings.filterwarnings("ignore")


def quiet_jieba() -> None:
    """jieba logs its dictionary build on stderr at first use (and its import resets the level):
    commands that will split words with jieba call this first. No-op without jieba."""
    import logging

    try:
        import jieba
    except ImportError:
        return
    jieba.setLogLevel(logging.WARNING)


def load_for_cli(model: str, kind: str, device: str, quiet: bool):
    """The one model-loading path of every command: quiet libraries, the thread rule (with
    ``--threads`` when the command has it), load, report the device."""
    from ..models import OWN_FORMATS

    apply_threads(None, kind="tagger" if kind == "char-tagger" else "bert")
    if kind not in OWN_FORMATS:  # nlptool's own formats (tagger, parser) never import transformers
        quiet_libraries()
    if quiet:
        import warnings

        warnings.filterwarnings("ignore")
    from ..models import load_model

    loaded = load_model(model, kind=kind, device=device)
    report_device(loaded, quiet)
    return loaded


# ------------------------------------------------------------------------------ running a record command


def apply_threads(command, threads: int | None = None, kind: str | None = None) -> None:
    """The thread rule (:func:`nlptool.threads.apply_thread_rule`) for ``command`` (or for a
    command ``kind``: ``tagger``, ``bert``, ``none``), with ``threads`` or else the ``--threads``
    of the running command (:func:`nlptool.cli.options.ThreadsOpt`)."""
    from typer._click.globals import get_current_context

    from ..threads import apply_thread_rule, command_kind

    if threads is None:
        ctx = get_current_context(silent=True)
        threads = ctx.meta.get("nlptool.threads") if ctx is not None else None
    apply_thread_rule(kind or command_kind(command), threads)


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
    quiet_libraries(quiet)
    apply_threads(command, threads)  # before the model loads (nlptool/threads.py)
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


def write_results(command, objs, output: str, quiet: bool) -> None:
    """The modes that are not one output per input record (``similarity`` search and
    ``--matrix``): ``command``'s opening lines, the objects ``objs`` as JSONL to ``output``, then
    its closing lines (:meth:`nlptool.engine.Command.finish`), all on stderr unless ``quiet``.

    When the JSONL reader goes away (``| head``), the rest of ``objs`` is still consumed, so that a
    side output written as they are produced (the matrix file) is finished; the closed pipe then
    ends the command as everywhere (exit 0, nothing on stderr)."""
    from ..jsonl import JsonlWriter

    for line in command.describe():
        info(line, quiet)
    objs = iter(objs)
    try:
        with JsonlWriter(output) as w:
            for obj in objs:
                w.write(obj)
    except OSError as exc:
        if exc.errno != errno.EPIPE:
            raise
        for _ in objs:  # the side output is finished, the lines dropped
            pass
        for line in command.finish():
            info(line, quiet)
        raise
    for line in command.finish():
        info(line, quiet)


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
            if not is_broken_pipe(exc):
                raise
            self.broken = True
            silence_stdout()

    def write(self, obj) -> None:
        self._call("write", obj)

    def write_line(self, line: str) -> None:
        self._call("write_line", line)

    def flush(self) -> None:
        self._call("flush")
