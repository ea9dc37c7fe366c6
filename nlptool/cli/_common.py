"""Shared CLI pieces: the stderr console, common options, the error boundary, progress."""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Optional

import typer
from rich.console import Console

from ..errors import NlptoolError

#: Everything that is not data goes to stderr.
console = Console(stderr=True, highlight=False)

InputsArg = typer.Argument(None, help="Input file(s); '-' or nothing reads stdin.", show_default=False)
OutputOpt = typer.Option("-", "--output", "-o", help="Output file ('-' = stdout).")
InputFormatOpt = typer.Option("auto", "--input-format", help="auto|text|jsonl: auto treats lines starting with '{' as JSON.")
TextKeyOpt = typer.Option("text", "--text-key", help="Field of a JSON record that holds the text.")
ModelOpt = typer.Option("zh-bert-mini", "--model", "-m", help="Built-in name (zh-bert-mini, en-minilm), local model directory or Hugging Face hub id.")
DeviceOpt = typer.Option("auto", "--device", help="auto|cpu|cuda|cuda:N (auto: CUDA when available).")
BatchSizeOpt = typer.Option(256, "--batch-size", help="Sequences per forward pass (bounds memory).")
QuietOpt = typer.Option(False, "--quiet", "-q", help="No progress or device messages on stderr.")
StrictOpt = typer.Option(False, "--strict", help="Stop at the first bad input record (exit code 3) instead of writing an error record.")


def info(msg: str, quiet: bool = False) -> None:
    """One line on stderr unless ``--quiet``."""
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


@contextlib.contextmanager
def boundary():
    """Turn library exceptions into one stderr line and the error's exit code."""
    try:
        yield
    except NlptoolError as exc:
        console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(exc.exit_code) from None


def run_app(app) -> None:
    """Run the Typer app; a closed stdout (``| head``) and Ctrl-C end quietly."""
    try:
        app()
    except BrokenPipeError:
        _silence_stdout()
        sys.exit(0)
    except KeyboardInterrupt:
        _silence_stdout()
        console.print("interrupted")
        sys.exit(130)


def _silence_stdout() -> None:
    # Python flushes stdout at exit; on a closed pipe that raises again. Point it at devnull.
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def report_device(loaded, quiet: bool) -> None:
    """Say which model and device are in use (stderr)."""
    dtype = next(loaded.model.parameters()).dtype
    info(f"model {loaded.name} on {loaded.device} ({str(dtype).replace('torch.', '')})", quiet)


def optional_str(value: Optional[str]) -> Optional[str]:
    return value if value not in (None, "") else None


def quiet_libraries() -> None:
    """Silence transformers' own progress bars and load reports (they would go to stderr and
    drown our one-line messages). Called by the CLI only: the library never configures logging."""
    import os

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def load_for_cli(model: str, kind: str, device: str, quiet: bool):
    """The one model-loading path of every command: quiet libraries, load, report the device."""
    quiet_libraries()
    from ..models import load_model

    loaded = load_model(model, kind=kind, device=device)
    report_device(loaded, quiet)
    return loaded
