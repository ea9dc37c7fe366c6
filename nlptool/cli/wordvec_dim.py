"""``nlptool wordvec-dim``: the word-vector dimension estimate n > 8.33 ln N (Su, 2020), beside
the other rules of thumb users meet."""

from __future__ import annotations

from typing import Optional

import typer

from . import app
from .console import info
from .options import InputFileOpt, InputFilesOpt, OutputOpt, QuietOpt, choices, finite_float
from .run import quiet_jieba


Tokenizer = choices("Tokenizer", ("jieba", "whitespace", "char"))


@app.command("wordvec-dim")
def wordvec_dim(
    vocab_size: Optional[str] = typer.Option(None, "--vocab-size", "-N", help="Vocabulary size N (e.g. 100000 or 5e6).", show_default=False),
    corpus: Optional[list[str]] = InputFilesOpt(None, "--corpus", help="Text file(s), one text per line, '-' = stdin: N = distinct words (repeat the option for several files). Without --vocab-size/--corpus/--vectors/--table, a corpus piped into stdin is read.", show_default=False),
    tokenizer: Tokenizer = typer.Option(Tokenizer.jieba, "--tokenizer", help="How --corpus is split into words."),
    min_count: int = typer.Option(1, "--min-count", min=1, help="With --corpus: count only words seen at least this often."),
    vectors: Optional[str] = InputFileOpt(None, "--vectors", help="A word2vec file (text or binary, or GloVe text): read N and its dimension d and say whether d is above the estimate.", show_default=False),
    show_table: bool = typer.Option(False, "--table", help="Add the estimates for N = 1e3 ... 1e7."),
    show_rules: bool = typer.Option(False, "--rules", help="Add the other rules of thumb with their sources (Johnson-Lindenstrauss, fastai, fourth root)."),
    jl_eps: float = typer.Option(0.1, "--jl-eps", parser=finite_float(0, 1, lo_open=True, hi_open=True), help="Distortion eps of the Johnson-Lindenstrauss row of --rules (sklearn's default 0.1)."),
    output: str = OutputOpt,
    quiet: bool = QuietOpt,
):
    """Estimate the word-vector dimension a vocabulary needs: n > 8.33 ln N (one JSON object)."""
    import sys

    from ..jsonl import JsonlWriter
    from ..records import stdin_is_terminal
    from ..wordvec_dim import wordvec_dim as estimate_dim

    if (vocab_size, corpus or None, vectors) == (None, None, None) and not show_table \
            and sys.stdin is not None and not stdin_is_terminal():
        corpus = ["-"]  # `cat corpus.txt | nlptool wordvec-dim`, as every other command reads stdin
    if corpus and tokenizer == Tokenizer.jieba:
        quiet_jieba()
    obj = estimate_dim(vocab_size=vocab_size, corpus=corpus, vectors=vectors, tokenizer=tokenizer.value,
                       min_count=min_count, with_table=show_table, with_rules=show_rules, jl_eps=jl_eps,
                       log=lambda line: info(line, quiet))
    with JsonlWriter(output) as w:
        w.write(obj)
