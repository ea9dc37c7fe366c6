"""Everything that is not data: the stderr console, one-line messages, progress bars.

stdout carries data only; rich's default console writes to stdout, so every message and bar of
the CLI goes through :data:`console` here (stderr). Progress is drawn only when stderr is a
terminal and not ``--quiet`` (:func:`progress_enabled`).
"""

from __future__ import annotations

import contextlib
import os
import re

from rich.console import Console
from rich.text import Text

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


def info(msg: str, quiet: bool = False) -> None:
    """One line on stderr unless ``--quiet`` (printed literally; see :func:`literal_text`)."""
    if not quiet:
        console.print(msg, highlight=False, soft_wrap=True)


def report_device(loaded, quiet: bool) -> None:
    """Say which model and device are in use (stderr)."""
    dtype = next(loaded.model.parameters()).dtype
    info(f"model {loaded.name} on {loaded.device} ({str(dtype).replace('torch.', '')})", quiet)


# ------------------------------------------------------------------------------ progress bars


def progress_enabled(quiet: bool) -> bool:
    """Progress bars only when stderr is a terminal and not ``--quiet``."""
    return not quiet and console.is_terminal


def _progress_bar():
    """The one bar layout: description, bar, done/total, percentage, rate, elapsed, ETA; on the
    stderr console, redrawn 4 times a second, gone when done."""
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn,
                               TimeElapsedColumn, TimeRemainingColumn)

    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TaskProgressColumn(),
               TextColumn("[progress.data.speed]{task.fields[rate]}"), TimeElapsedColumn(), TextColumn("eta"),
               TimeRemainingColumn()]
    return Progress(*columns, console=console, transient=True, refresh_per_second=4)


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
    total = count_lines(inputs, shard)
    with _progress_bar() as progress:
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
    with _progress_bar() as bar:
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
