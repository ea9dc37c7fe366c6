"""The ``nlptool`` command: a thin Typer layer over the library modules.

Command modules are imported here, but they import torch/transformers only inside functions,
so ``nlptool --help`` stays fast.
"""

from __future__ import annotations

import typer

from ._common import NlptoolGroup

app = typer.Typer(
    cls=NlptoolGroup,  # the error boundary: one stderr line and the documented exit code (docs/io.md)
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
    help="Command-line NLP tools from Su Jianlin's blog (kexue.fm). Data on stdout (JSONL), messages on stderr.",
)


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show the full traceback of an error (also NLPTOOL_DEBUG=1)."),
) -> None:
    """Command-line NLP tools from Su Jianlin's blog (kexue.fm). Data on stdout (JSONL), messages on stderr."""
    from . import _common

    _common.DEBUG = debug or _common.DEBUG


train_app = typer.Typer(no_args_is_help=True, help="Train models used by the other commands.")
app.add_typer(train_app, name="train")
eval_app = typer.Typer(no_args_is_help=True, help="Measure trained models on gold data (JSON report).")
app.add_typer(eval_app, name="eval")

from . import segment as _segment  # noqa: E402,F401
from . import train_mlm as _train  # noqa: E402,F401
from . import split_valid as _split_valid  # noqa: E402,F401
from . import tokenize_sample as _tokenize_sample  # noqa: E402,F401
from . import wordvec_dim as _wordvec_dim  # noqa: E402,F401
from . import similarity as _similarity  # noqa: E402,F401
from . import attribute as _attribute, train_classifier as _train_classifier  # noqa: E402,F401
from . import qa_gen as _qa_gen  # noqa: E402,F401
from . import train_reader as _reader, eval_qa_gen as _eval  # noqa: E402,F401
from . import train_similarity as _train_similarity  # noqa: E402,F401
from . import train_segmenter as _train_segmenter  # noqa: E402,F401


def main() -> None:
    """Console-script entry point."""
    from ._common import run_app

    run_app(app)
