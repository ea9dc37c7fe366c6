"""Static word vectors: reading the word2vec formats and splitting text into words for them.

The word2vec formats (Mikolov et al. 2013, the C tool's ``-binary 0|1``) are the common format
of published Chinese and English embeddings (e.g. Tencent AI Lab, Chinese-Word-Vectors, GoogleNews):

* a header line ``<vocab_size> <dim>``;
* text: one line per word, ``word v1 v2 ... vdim`` separated by spaces;
* binary: ``word`` + one space + ``dim`` little-endian float32 values, optionally followed by
  ``\\n``.

Words are found with jieba (Chinese text) or a Unicode word regex (other text); punctuation and
whitespace are not words. A word missing from the vocabulary (also after lower-casing) is
out-of-vocabulary (OOV): the caller gets the list of OOV words, so nothing is dropped without trace.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

import numpy as np

from ..errors import InputDataError, UsageError
from ..text import is_cjk_char, is_punct_or_space

_WORD_RE = re.compile(r"\w+(?:[-'.]\w+)*", re.UNICODE)


@dataclass
class WordVectors:
    """A vocabulary and its vectors.

    Attributes:
        words: the words in file order.
        index: ``word -> row`` of ``vectors``.
        vectors: ``(vocab_size, dim)`` float32.
        path: the file read.
    """

    words: list[str]
    index: dict[str, int]
    vectors: np.ndarray
    path: str = ""

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def __len__(self) -> int:
        return len(self.words)

    def lookup(self, word: str) -> int | None:
        """Row of ``word``, trying the word as is and then lower-cased; ``None`` when OOV."""
        i = self.index.get(word)
        if i is None:
            i = self.index.get(word.lower())
        return i


def _looks_binary(fh, dim: int) -> bool:
    """Probe the first record after the header: a text record is one UTF-8 line of dim+1 fields."""
    pos = fh.tell()
    chunk = fh.read(64 + dim * 40)
    fh.seek(pos)
    if not chunk:
        return False
    line, nl, _ = chunk.partition(b"\n")
    if not nl and len(chunk) >= 64 + dim * 40:
        return True
    try:
        fields = line.decode("utf-8").rstrip().split(" ")
        if len(fields) != dim + 1:
            return True
        [float(x) for x in fields[1:]]
    except (UnicodeDecodeError, ValueError):
        return True
    return False


#: The largest float32: a text component beyond it (``1e308``) would be read as infinity.
_F32_MAX = float(np.finfo(np.float32).max)


def _not_finite(vec: np.ndarray) -> int | None:
    """Index of the first component of ``vec`` that is NaN or infinite (as float32), else None."""
    ok = np.isfinite(vec)
    return None if ok.all() else int(np.argmin(ok))


def load_word2vec(path: str | os.PathLike, *, binary: bool | None = None, limit: int | None = None) -> WordVectors:
    """Read word2vec text or binary vectors.

    Args:
        path: the file.
        binary: ``True``/``False`` to force the format; ``None`` detects it from the first record.
        limit: read only the first ``limit`` words (published files are sorted by frequency).

    Returns:
        :class:`WordVectors` with ``(vocab, dim)`` float32 vectors. A word repeated in the file
        keeps its first vector.

    Raises:
        UsageError: the file does not exist.
        InputDataError: bad header, a record of the wrong length, a component that is not a
            finite float32 (``nan``, ``inf``, ``1e308``: the distances would be NaN, or 0 for
            different texts), or a truncated binary file (names the file and the record's
            line/position).
    """
    path = str(path)
    if not os.path.isfile(path):
        raise UsageError(f"--vectors {path}: no such file (expected word2vec text or binary vectors)")
    with open(path, "rb") as fh:
        header = fh.readline()
        try:
            n, dim = (int(x) for x in header.decode("utf-8").split())
        except (UnicodeDecodeError, ValueError):
            raise InputDataError(
                "expected a word2vec header '<vocab_size> <dim>' on the first line", path, 1
            ) from None
        if n < 0 or dim <= 0:
            raise InputDataError(f"bad word2vec header {header.strip()!r}", path, 1)
        if limit is not None:
            n = min(n, int(limit))
        if binary is None:
            binary = _looks_binary(fh, dim)
        vectors = np.empty((n, dim), dtype=np.float32)
        words: list[str] = []
        index: dict[str, int] = {}
        row = 0
        if binary:
            nbytes = 4 * dim
            for k in range(n):
                wb = bytearray()
                while True:
                    c = fh.read(1)
                    if not c:
                        raise InputDataError(f"binary file ends inside record {k + 1} of {n}", path)
                    if c == b" ":
                        break
                    if c != b"\n" or wb:  # skip the newline that ends the previous record
                        wb += c
                data = fh.read(nbytes)
                if len(data) != nbytes:
                    raise InputDataError(f"binary file ends inside the vector of record {k + 1} of {n}", path)
                word = wb.decode("utf-8", errors="replace")
                if word in index:
                    continue
                vec = np.frombuffer(data, dtype="<f4")
                bad = _not_finite(vec)
                if bad is not None:
                    raise InputDataError(f"record {k + 1} of {n} (word {word!r}): component {bad + 1} is "
                                         f"{float(vec[bad])!r}; word vectors must be finite numbers", path)
                index[word] = row
                words.append(word)
                vectors[row] = vec
                row += 1
        else:
            for k in range(n):
                raw = fh.readline()
                if not raw:
                    break
                lineno = k + 2
                try:
                    fields = raw.decode("utf-8").rstrip("\r\n ").split(" ")
                except UnicodeDecodeError:
                    raise InputDataError("invalid UTF-8 in a text word2vec file", path, lineno) from None
                if len(fields) != dim + 1:
                    raise InputDataError(
                        f"expected a word and {dim} numbers, found {len(fields)} fields", path, lineno
                    )
                word = fields[0]
                if word in index:
                    continue
                try:
                    with np.errstate(over="ignore"):
                        vec = np.asarray(fields[1:], dtype=np.float32)
                except ValueError:
                    raise InputDataError("non-numeric vector component", path, lineno) from None
                bad = _not_finite(vec)
                if bad is not None:
                    raise InputDataError(f"component {bad + 1} of {word!r} is {fields[bad + 1]!r}; word vectors "
                                         f"must be finite numbers within the float32 range (|x| < {_F32_MAX:.2e})",
                                         path, lineno)
                vectors[row] = vec
                index[word] = row
                words.append(word)
                row += 1
    return WordVectors(words=words, index=index, vectors=vectors[:row].copy(), path=path)


def save_word2vec(path: str | os.PathLike, words: list[str], vectors: np.ndarray, *, binary: bool = False) -> None:
    """Write ``words`` and ``(len(words), dim)`` ``vectors`` in word2vec text or binary format."""
    vectors = np.asarray(vectors, dtype=np.float32)
    with open(path, "wb") as fh:
        fh.write(f"{len(words)} {vectors.shape[1]}\n".encode())
        for w, v in zip(words, vectors):
            if binary:
                fh.write(w.encode("utf-8") + b" " + v.astype("<f4").tobytes() + b"\n")
            else:
                fh.write((w + " " + " ".join(repr(float(x)) for x in v) + "\n").encode("utf-8"))


_JIEBA = None


def _jieba():
    global _JIEBA
    if _JIEBA is None:
        import jieba

        _JIEBA = jieba.Tokenizer()
    return _JIEBA


def split_words(text: str) -> list[str]:
    """Words of ``text``: jieba's (precise mode) when it contains a CJK character, else the
    regex ``\\w+`` with internal ``-'.``; punctuation and whitespace are dropped.
    """
    if any(is_cjk_char(ch) for ch in text):
        out = []
        for w in _jieba().lcut(text):
            w = w.strip()
            if w and not all(is_punct_or_space(ch) for ch in w):
                out.append(w)
        return out
    return _WORD_RE.findall(text)
