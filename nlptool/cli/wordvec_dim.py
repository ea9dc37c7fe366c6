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

    from ..errors import UsageError
    from ..jsonl import JsonlWriter
    from ..records import stdin_is_terminal
    from ..wordvec_dim import check_text_path, count_vocabulary, read_word2vec_shape, report

    given = sum(x is not None and x != [] for x in (vocab_size, corpus, vectors))
    if not given and not show_table and sys.stdin is not None and not stdin_is_terminal():
        corpus = ["-"]  # `cat corpus.txt | nlptool wordvec-dim`, as every other command reads stdin
    if given > 1:
        raise UsageError("give only one of --vocab-size, --corpus, --vectors")
    extra: dict = {}
    dim = None
    if corpus:
        for path in corpus:
            check_text_path(path)
        if tokenizer == Tokenizer.jieba:
            quiet_jieba()
        counted = count_vocabulary(corpus, tokenizer=tokenizer.value, min_count=min_count)
        n = counted["vocab_size"]
        extra = {"corpus": list(corpus), "tokenizer": tokenizer.value, "min_count": min_count,
                 "types": counted["types"], "tokens": counted["tokens"], "lines": counted["lines"]}
        info(f"{counted['lines']} lines, {counted['tokens']} {tokenizer.value} tokens, "
             f"{n} words with count >= {min_count}", quiet)
        if n <= 1:
            raise UsageError(f"the corpus has {n} distinct word(s) with count >= {min_count}; "
                             "the estimate needs N > 1")
    elif vectors:
        shape = read_word2vec_shape(vectors)
        n, dim = shape["vocab_size"], shape["dim"]
        extra = {"vectors": vectors, "format": shape["format"]}
    elif vocab_size is not None:
        n = vocab_size
    elif show_table:
        n = None
    else:
        raise UsageError("give --vocab-size N, --corpus FILE or --vectors FILE (or --table), or pipe a corpus "
                         "into standard input")
    if n is None:
        if show_rules:
            raise UsageError("--rules needs a vocabulary size (--vocab-size, --corpus or --vectors)")
        from ..wordvec_dim import FORMULA, table

        obj = {"formula": FORMULA, "table": table()}
    else:
        obj = report(n, dim=dim, with_table=show_table, with_rules=show_rules, jl_eps=jl_eps)
        obj.update(extra)
    with JsonlWriter(output) as w:
        w.write(obj)
