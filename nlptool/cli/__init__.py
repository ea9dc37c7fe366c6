"""The ``nlptool`` command: a thin Typer layer over the library modules.

One module per command (``segment.py``, ``train_mlm.py``, ...), each parsing its options into the
library's command object; shared by them: :mod:`.options` (the option vocabulary and its parse-time
checks), :mod:`.console` (stderr messages and progress), :mod:`.run` (running a command object
over records) and :mod:`.boundary` (the one error boundary, :class:`NlptoolGroup`). Command
modules are imported here, but they import torch/transformers only inside functions, so
``nlptool --help`` stays fast.
"""

from __future__ import annotations

import typer

from . import boundary
from .boundary import NlptoolGroup

#: -h works like --help everywhere; help text is printed as written (no rich markup: "[count [tag]]" survives)
CONTEXT = {"help_option_names": ["-h", "--help"]}

app = typer.Typer(
    cls=NlptoolGroup,  # the error boundary: one stderr line and the documented exit code (docs/io.md)
    no_args_is_help=True,
    rich_markup_mode=None,
    context_settings=CONTEXT,
    pretty_exceptions_show_locals=False,
    add_completion=False,
    help="Command-line NLP tools from Su Jianlin's blog (kexue.fm). Data on stdout (JSONL), messages on stderr.",
)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            v = version("nlptool")
        except PackageNotFoundError:  # pragma: no cover - a source tree without metadata
            v = "unknown"
        typer.echo(f"nlptool {v}")
        raise typer.Exit(0)


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show the full traceback of an error (also NLPTOOL_DEBUG=1)."),
    version: bool = typer.Option(False, "--version", is_eager=True, callback=_version, help="Print the version and exit."),
) -> None:
    """Command-line NLP tools from Su Jianlin's blog (kexue.fm). Data on stdout (JSONL), messages on stderr."""
    boundary.DEBUG = debug or boundary.DEBUG


train_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None, context_settings=CONTEXT,
                        help="Train models used by the other commands.")
app.add_typer(train_app, name="train")
eval_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None, context_settings=CONTEXT,
                       help="Measure trained models on gold data (JSON report).")
app.add_typer(eval_app, name="eval")

from . import segment as _segment  # noqa: E402,F401
from . import train_mlm as _train  # noqa: E402,F401
from . import split_valid as _split_valid  # noqa: E402,F401
from . import tokenize_sample as _tokenize_sample  # noqa: E402,F401
from . import wordvec_dim as _wordvec_dim  # noqa: E402,F401
from . import similarity as _similarity  # noqa: E402,F401
from . import attribute as _attribute, train_classifier as _train_classifier  # noqa: E402,F401
from . import train_qa_gen as _train_qa_gen, qa_gen as _qa_gen  # noqa: E402,F401
from . import train_reader as _reader, eval_qa_gen as _eval  # noqa: E402,F401
from . import train_similarity as _train_similarity  # noqa: E402,F401
from . import train_segmenter as _train_segmenter  # noqa: E402,F401
from . import train_parser as _train_parser  # noqa: E402,F401


def main() -> None:
    """Console-script entry point. Whichever way the command ends (its exit code, an error, Ctrl-C),
    once :func:`.boundary.run_app` has flushed its output the objects still alive are frozen
    (:func:`gc.freeze`) so that the interpreter's final collection at exit skips them: with torch
    loaded it would walk every one of them for nothing, about 0.3-0.5 CPU s (docs/benchmarks.md,
    "Start-up"). Exit codes and output are unchanged."""
    import gc

    try:
        boundary.run_app(app)
    finally:
        gc.freeze()
