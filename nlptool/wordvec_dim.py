"""How many dimensions a word embedding needs: ``n > 8.33 ln N``.

Source: Su, "最小熵原理（六）：词向量的维度应该怎么选择？" (kexue.fm, 2020). With ``N`` words, a
skip-gram style model ``p(w_i, w_j) = exp(<u_i, v_j>) / Z`` and the vectors uniform on the sphere of
radius ``sqrt(n)``, the entropy of the word-pair distribution is approximately
``H ≈ 2 ln N − 0.24 n``; asking that it stays above ``ln N`` (the vectors can still tell the words
apart) gives ``n > ln N / 0.12 ≈ 8.33 ln N``. The constant 0.24 is Su's rounding of
``−½ ln((√5 − 1)/2) = 0.2406...``, so the exact constant is ``2 / (−½ ln((√5−1)/2)) = 8.3123...``.

``N`` is the vocabulary size and ``ln`` the natural logarithm; both estimates are in dimensions.
"""

from __future__ import annotations

import math
import os
import sys
from collections import Counter
from typing import Iterable, Sequence

from .errors import InputDataError, UsageError

#: Su's rounded constant (the post's formula ``n > 8.33 ln N``).
SU_CONSTANT = 8.33
#: ``2 / (−½ ln((√5 − 1)/2))`` = 8.3123...
EXACT_CONSTANT = 2.0 / (-0.5 * math.log((math.sqrt(5.0) - 1.0) / 2.0))
FORMULA = "n > 8.33 ln N  (exact constant 2 / (-1/2 ln((sqrt(5)-1)/2)) = 8.3123)"
#: Vocabulary sizes shown by ``--table``.
TABLE_SIZES = (1_000, 5_000, 10_000, 20_000, 50_000, 100_000, 200_000, 500_000, 1_000_000, 5_000_000,
               10_000_000)


def parse_vocab_size(value) -> int:
    """``N`` as an int > 1 (accepts ``"5e6"`` and ``"100,000"`` when integral).

    Raises:
        UsageError: not a number, not an integer, or ``<= 1``.
    """
    if isinstance(value, bool):
        raise UsageError(f"vocabulary size {value!r}: expected an integer greater than 1")
    if isinstance(value, int):
        n = value
    else:
        s = str(value).strip().replace(",", "").replace("_", "")
        try:
            n = int(s)
        except ValueError:
            try:
                f = float(s)
            except ValueError:
                raise UsageError(f"vocabulary size {value!r}: expected an integer greater than 1 (e.g. 100000 or 5e6)") \
                    from None
            if not math.isfinite(f) or f != int(f):
                raise UsageError(f"vocabulary size {value!r}: expected an integer greater than 1 (e.g. 100000 or 5e6)")
            n = int(f)
    if n <= 1:
        raise UsageError(f"vocabulary size {value!r}: the vocabulary must have more than 1 word (ln 1 = 0)")
    return n


def estimate(vocab_size: int) -> dict:
    """The estimates for one vocabulary size.

    Returns:
        ``{"vocab_size": N, "ln_N": ln N, "estimate": 8.33 ln N, "estimate_exact": 8.3123 ln N,
        "min_dim": smallest integer > 8.33 ln N, "min_dim_exact": smallest integer > 8.3123 ln N}``
        (estimates rounded to 0.1; ``min_dim`` from the unrounded value).

    Raises:
        UsageError: ``vocab_size <= 1``.
    """
    n = parse_vocab_size(vocab_size)
    ln = math.log(n)
    su, ex = SU_CONSTANT * ln, EXACT_CONSTANT * ln
    return {
        "vocab_size": n,
        "ln_N": round(ln, 4),
        "estimate": round(su, 1),
        "estimate_exact": round(ex, 1),
        "min_dim": math.floor(su) + 1,
        "min_dim_exact": math.floor(ex) + 1,
    }


def table(sizes: Iterable[int] = TABLE_SIZES) -> list:
    """:func:`estimate` for each size (ascending, duplicates removed)."""
    return [estimate(n) for n in sorted(set(parse_vocab_size(s) for s in sizes))]


def tokenize(line: str, tokenizer: str) -> list:
    """Words of one line: ``whitespace`` (``str.split``), ``char`` (non-space characters) or
    ``jieba`` (``jieba.lcut``, HMM on; imported on first use).

    Raises:
        UsageError: unknown tokenizer.
    """
    if tokenizer == "whitespace":
        return line.split()
    if tokenizer == "char":
        return [c for c in line if not c.isspace()]
    if tokenizer == "jieba":
        from .text import jieba_words

        return jieba_words(line)
    raise UsageError(f"tokenizer {tokenizer!r}: expected whitespace, jieba or char")


def count_vocabulary(paths: Sequence[str], tokenizer: str = "jieba", min_count: int = 1) -> dict:
    """Count the distinct words of text files (one text per line, UTF-8).

    Returns:
        ``{"vocab_size": words with count >= min_count, "types": all distinct words,
        "tokens": total words, "lines": lines read}``.

    ``-`` reads standard input.

    Raises:
        UsageError: missing file, a directory, terminal stdin, ``min_count < 1``, unknown tokenizer.
        InputDataError: a line that is not UTF-8 (file and line named).
    """
    if min_count < 1:
        raise UsageError(f"min_count {min_count}: must be at least 1")
    counts: Counter = Counter()
    lines = 0
    for path in paths:
        check_text_path(path)
    for path in paths:
        source = "<stdin>" if path == "-" else path
        for lineno, raw in enumerate(_binary_lines(path), 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InputDataError(f"invalid UTF-8 at byte {exc.start} (re-encode the file as UTF-8)",
                                     source, lineno) from None
            if lineno == 1:
                line = line.lstrip("\ufeff")
            counts.update(tokenize(line.rstrip("\r\n"), tokenizer))
            lines += 1
    return {
        "vocab_size": sum(1 for c in counts.values() if c >= min_count),
        "types": len(counts),
        "tokens": sum(counts.values()),
        "lines": lines,
    }


def check_text_path(path: str) -> None:
    """A readable input path, or ``-`` (stdin, refused when it is a terminal).

    Raises:
        UsageError: missing file, a directory, terminal stdin.
    """
    if path == "-":
        from .records import stdin_is_terminal

        if stdin_is_terminal():
            raise UsageError("no input: give a file, or pipe text into stdin")
        return
    if os.path.isdir(path):
        raise UsageError(f"{path}: is a directory, expected a text file")
    if not os.path.isfile(path):
        raise UsageError(f"{path}: no such file")


def _binary_lines(path: str):
    if path == "-":
        stream = getattr(sys.stdin, "buffer", None)
        if stream is None:  # a text stream (tests)
            yield from (ln.encode("utf-8") for ln in sys.stdin)
        else:
            yield from stream
        return
    with open(path, "rb") as fh:
        yield from fh


def read_word2vec_shape(path: str) -> dict:
    """``N`` and the dimension ``d`` of a word2vec file.

    Text format with a ``N d`` header (checked against the first vector line), binary word2vec
    (the same header, then ``word<space>`` + ``d`` float32 per row; the header is read), or a
    header-less text file (GloVe: every line ``word v_1 ... v_d``; N is the line count).

    Returns:
        ``{"vocab_size": N, "dim": d, "format": "word2vec-text"|"word2vec-binary"|"glove-text"}``.

    Raises:
        UsageError: missing file.
        InputDataError: an empty file or an inconsistent header / first row.
    """
    if os.path.isdir(path):
        raise UsageError(f"{path}: is a directory, expected a word2vec file")
    if not os.path.isfile(path):
        raise UsageError(f"{path}: no such file")
    with open(path, "rb") as fh:
        header = fh.readline()
        parts = header.split()
        if len(parts) == 2 and parts[0].isdigit() and parts[1].isdigit():
            n, d = int(parts[0]), int(parts[1])
            first = fh.readline()
            try:
                fields = first.decode("utf-8").split()
                is_text = len(fields) == d + 1 and all(_is_float(x) for x in fields[1:])
            except UnicodeDecodeError:
                is_text = False
            if not is_text and first and len(first.split(b" ", 1)) < 2:
                raise InputDataError(f"the header says {n} words x {d} dimensions but the first row does "
                                     "not match (expected 'word v_1 ... v_d')", path, 2)
            return {"vocab_size": n, "dim": d, "format": "word2vec-text" if is_text else "word2vec-binary"}
        if not header.strip():
            raise InputDataError("empty file (expected a word2vec 'N d' header)", path, 1)
        d = len(parts) - 1
        if d < 1 or not all(_is_float(x.decode("utf-8", "replace")) for x in parts[1:]):
            raise InputDataError("not a word2vec file: expected a 'N d' header or 'word v_1 ... v_d' rows", path, 1)
        n = 1 + sum(1 for line in fh if line.strip())
        return {"vocab_size": n, "dim": d, "format": "glove-text"}


def _is_float(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


#: The Johnson–Lindenstrauss distortion used by ``rules()`` unless told (scikit-learn's default).
JL_EPS = 0.1


def jl_min_dim(vocab_size: int, eps: float = JL_EPS) -> int:
    """The Johnson–Lindenstrauss bound: dimensions that keep all pairwise distances of ``N``
    points within a factor ``1 ± eps`` under a random projection,
    ``n >= 4 ln N / (eps^2 / 2 - eps^3 / 3)`` (Dasgupta & Gupta 2003, "An elementary proof of a
    theorem of Johnson and Lindenstrauss"; the formula of
    ``sklearn.random_projection.johnson_lindenstrauss_min_dim``, computed here without sklearn).

    Raises:
        UsageError: ``eps`` not in (0, 1), ``N <= 1``.
    """
    n = parse_vocab_size(vocab_size)
    if not (isinstance(eps, (int, float)) and 0 < eps < 1):
        raise UsageError(f"Johnson-Lindenstrauss eps {eps!r}: must be in (0, 1)")
    return int(4 * math.log(n) / (eps ** 2 / 2 - eps ** 3 / 3))


def fastai_emb_size(vocab_size: int) -> int:
    """fastai's embedding-size rule for a categorical variable with ``N`` levels:
    ``min(600, round(1.6 * N ** 0.56))`` (fastai ``tabular.model.emb_sz_rule``; fitted by Jeremy
    Howard to sizes that worked in practice)."""
    n = parse_vocab_size(vocab_size)
    return int(min(600, round(1.6 * n ** 0.56)))


def fourth_root(vocab_size: int) -> int:
    """The fourth-root rule of thumb: ``N ** 0.25`` dimensions, rounded up (Google Developers
    Blog, "Introducing TensorFlow Feature Columns", 2017-11-20: ``embedding_dimensions =
    number_of_categories**0.25``)."""
    n = parse_vocab_size(vocab_size)
    return math.ceil(n ** 0.25 - 1e-12)


def rules(vocab_size: int, jl_eps: float = JL_EPS) -> list:
    """The estimates a user meets for ``N`` words, each with its formula and source.

    Returns:
        ``[{"rule", "dim", "formula", "source"}, ...]``: Su 2020 (``n > 8.33 ln N``, smallest
        integer above), Johnson–Lindenstrauss (``eps = jl_eps``), fastai, fourth root. They
        answer different questions: Su asks that a skip-gram model can still tell the words apart
        (entropy), JL that a random projection keeps every pairwise distance (much larger), fastai
        and the fourth root are fitted rules of thumb for categorical embeddings.

    Raises:
        UsageError: ``N <= 1``, ``jl_eps`` not in (0, 1).
    """
    n = parse_vocab_size(vocab_size)
    return [
        {"rule": "su2020", "dim": estimate(n)["min_dim"], "formula": "n > 8.33 ln N",
         "source": "Su Jianlin, 最小熵原理（六）：词向量的维度应该怎么选择？ (kexue.fm, 2020)"},
        {"rule": "johnson-lindenstrauss", "dim": jl_min_dim(n, jl_eps),
         "formula": f"n >= 4 ln N / (eps^2/2 - eps^3/3), eps = {jl_eps:g}",
         "source": "Dasgupta & Gupta 2003; sklearn.random_projection.johnson_lindenstrauss_min_dim"},
        {"rule": "fastai", "dim": fastai_emb_size(n), "formula": "min(600, round(1.6 N^0.56))",
         "source": "fastai tabular.model.emb_sz_rule"},
        {"rule": "fourth-root", "dim": fourth_root(n), "formula": "ceil(N^0.25)",
         "source": "Google Developers Blog, Introducing TensorFlow Feature Columns (2017)"},
    ]


def report(vocab_size: int, dim: int | None = None, with_table: bool = False, with_rules: bool = False,
           jl_eps: float = JL_EPS) -> dict:
    """The command's JSON object: :func:`estimate` plus the formula, and with ``dim`` (an actual
    embedding size) ``"dim"`` and ``"above_estimate"`` (``dim > 8.33 ln N``), with
    ``with_table`` a ``"table"`` of estimates for :data:`TABLE_SIZES` and ``N``, and with
    ``with_rules`` the other rules of thumb (:func:`rules`) under ``"rules"``."""
    out = estimate(vocab_size)
    out["formula"] = FORMULA
    out["constant"] = SU_CONSTANT
    out["constant_exact"] = round(EXACT_CONSTANT, 4)
    if dim is not None:
        out["dim"] = dim
        out["above_estimate"] = dim > SU_CONSTANT * math.log(out["vocab_size"])
    if with_table:
        out["table"] = table(list(TABLE_SIZES) + [out["vocab_size"]])
    if with_rules:
        out["rules"] = rules(out["vocab_size"], jl_eps)
    out["source"] = "Su Jianlin, 最小熵原理（六）：词向量的维度应该怎么选择？ (kexue.fm, 2020)"
    return out


def wordvec_dim(*, vocab_size=None, corpus: Sequence[str] | None = None, vectors: str | None = None,
                tokenizer: str = "jieba", min_count: int = 1, with_table: bool = False,
                with_rules: bool = False, jl_eps: float = JL_EPS, log=None) -> dict:
    """What ``nlptool wordvec-dim`` prints: the estimate for a vocabulary size given directly
    (``vocab_size``, an int or a string :func:`parse_vocab_size` accepts), counted in text files
    (``corpus``: paths, ``-`` = stdin; words by ``tokenizer``, those seen ``min_count`` times or
    more) or read from a word2vec file (``vectors``: its ``N`` and dimension ``d``, and whether
    ``d`` is above the estimate); with none of the three and ``with_table``, the table alone.
    The fields are :func:`report`'s plus, for a corpus, ``corpus``/``tokenizer``/``min_count``/
    ``types``/``tokens``/``lines`` and, for vectors, ``vectors``/``format``. ``log`` (a
    ``str -> None`` callable) gets one line on what a corpus held.

    Raises:
        UsageError: more than one source, none (and no ``with_table``), ``with_rules`` without a
            vocabulary size, a corpus with fewer than 2 distinct words, a bad ``vocab_size``, an
            unknown ``tokenizer``, ``min_count`` < 1, ``jl_eps`` outside (0, 1), a missing corpus
            file or terminal stdin.
        InputDataError: an unreadable corpus or vectors file (see :func:`count_vocabulary`,
            :func:`read_word2vec_shape`).
    """
    if sum(x is not None for x in (vocab_size, corpus or None, vectors or None)) > 1:
        raise UsageError("give only one of --vocab-size, --corpus, --vectors")
    extra: dict = {}
    dim = None
    if corpus:
        counted = count_vocabulary(corpus, tokenizer=tokenizer, min_count=min_count)
        n = counted["vocab_size"]
        extra = {"corpus": list(corpus), "tokenizer": tokenizer, "min_count": min_count,
                 "types": counted["types"], "tokens": counted["tokens"], "lines": counted["lines"]}
        if log is not None:
            log(f"{counted['lines']} lines, {counted['tokens']} {tokenizer} tokens, "
                f"{n} words with count >= {min_count}")
        if n <= 1:
            raise UsageError(f"the corpus has {n} distinct word(s) with count >= {min_count}; "
                             "the estimate needs N > 1")
    elif vectors:
        shape = read_word2vec_shape(vectors)
        n, dim = shape["vocab_size"], shape["dim"]
        extra = {"vectors": vectors, "format": shape["format"]}
    elif vocab_size is not None:
        n = vocab_size
    elif with_table:
        if with_rules:
            raise UsageError("--rules needs a vocabulary size (--vocab-size, --corpus or --vectors)")
        return {"formula": FORMULA, "table": table()}
    else:
        raise UsageError("give --vocab-size N, --corpus FILE or --vectors FILE (or --table), or pipe a corpus "
                         "into standard input")
    obj = report(n, dim=dim, with_table=with_table, with_rules=with_rules, jl_eps=jl_eps)
    obj.update(extra)
    return obj
