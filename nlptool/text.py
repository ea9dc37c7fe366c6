"""Character classes and text splitting shared by the commands (no model needed)."""

from __future__ import annotations

import re
import unicodedata


def is_cjk_char(ch: str) -> bool:
    """True for a CJK ideograph, using the same code-point blocks as BERT's basic tokenizer."""
    cp = ord(ch)
    return (
        0x4E00 <= cp <= 0x9FFF
        or 0x3400 <= cp <= 0x4DBF
        or 0x20000 <= cp <= 0x2A6DF
        or 0x2A700 <= cp <= 0x2B73F
        or 0x2B740 <= cp <= 0x2B81F
        or 0x2B820 <= cp <= 0x2CEAF
        or 0xF900 <= cp <= 0xFAFF
        or 0x2F800 <= cp <= 0x2FA1F
    )


#: Symbols that are used as letters in Chinese text (○ as the digit zero in 二○○一年).
LETTER_LIKE = frozenset("○〇")


def is_punct_or_space(ch: str) -> bool:
    """True for whitespace, control characters and Unicode punctuation/symbols (P*, S*, Z*, C*),
    except the letter-like symbols of :data:`LETTER_LIKE`."""
    if ch.isspace():
        return True
    if ch in LETTER_LIKE:
        return False
    cat = unicodedata.category(ch)
    return cat[0] in "PSZC"


# A run of Latin letters and/or digits (ASCII or full-width), with internal . , % : - kept
# when followed by another digit/letter (3.14, 1,000, 12:30, COVID-19).
ALNUM_RUN = re.compile(
    r"[A-Za-z0-9\uFF10-\uFF19\uFF21-\uFF3A\uFF41-\uFF5A\u00C0-\u024F]+"
    r"(?:[.,:\-\uFF0E\uFF0E][A-Za-z0-9\uFF10-\uFF19\uFF21-\uFF3A\uFF41-\uFF5A\u00C0-\u024F]+)*"
)


def jieba_words(text: str) -> list[str]:
    """jieba's words of ``text`` (precise mode, its HMM for unknown words), whitespace-only words
    dropped: the one word splitter behind ``attribute --granularity word``, ``wordvec-dim
    --tokenizer jieba`` and ``split-valid``'s TF-IDF features. jieba is imported here, on first use.

    Raises:
        ModelError: jieba is not installed.
    """
    return [w for w, _, _ in jieba_spans(text) if w.strip()]


def jieba_spans(text: str) -> list[tuple[str, int, int]]:
    """``(word, start, end)`` character spans of jieba's words, covering ``text`` exactly (in
    order, whitespace words included), as ``jieba.tokenize`` gives them.

    Raises:
        ModelError: jieba is not installed.
    """
    try:
        import jieba
    except ImportError:  # pragma: no cover - jieba is a dependency
        from .errors import ModelError

        raise ModelError("jieba word splitting needs the jieba package (pip install jieba)") from None
    return list(jieba.tokenize(text))


# ---------------------------------------------------------------------------------- sentences
#: The boundary after sentence-final punctuation (。！？；!?;), as a zero-width split point: how raw
#: corpora are cut into training chunks (``train mlm``) and evaluation texts into sentences (the
#: corpus overlap check). Kept as it is so that corpus builds stay byte-identical.
SENTENCE_END = re.compile(r"(?<=[。！？；!?;])")

#: A sentence end inside a passage: the final punctuation (also … and a newline) plus the closing
#: quotes or brackets that follow it, kept with the sentence (qa-gen chunks passages at these).
SENTENCE_END_SPAN = re.compile(r"[。！？!?；;…\n]+[”’」』）)\"']*")


def split_sentences(text: str) -> list[str]:
    """Split after sentence-final punctuation (:data:`SENTENCE_END`); pieces are stripped and empty
    pieces dropped."""
    return [s.strip() for s in SENTENCE_END.split(text) if s.strip()]


def sentence_spans(text: str) -> list[tuple[int, str]]:
    """Sentences of ``text`` as ``(start, sentence)``, each with its end punctuation and closing
    quotes (:data:`SENTENCE_END_SPAN`); they concatenate back to ``text`` exactly."""
    out = []
    pos = 0
    for m in SENTENCE_END_SPAN.finditer(text):
        out.append((pos, text[pos: m.end()]))
        pos = m.end()
    if pos < len(text):
        out.append((pos, text[pos:]))
    return out


def latin_digit_run(unit: str) -> str | None:
    """``"num"`` for a Latin/digit run with a digit, ``"eng"`` for one without, None for any other
    unit (a single non-ASCII character). A unit longer than one character is such a run (see
    :func:`nlptool.segment.api.split_pieces`)."""
    if len(unit) > 1 or unit.isalnum() and unit.isascii():
        return "num" if any(c.isdigit() for c in unit) else "eng"
    return None


def char_jaccard(a: str, b: str) -> float:
    """Jaccard similarity of the two texts' character sets (whitespace ignored), in ``[0, 1]``
    (1.0 when both are empty): the trivial baseline a similarity encoder must beat, and the
    character term of the pair score's ``char_weight`` (:func:`nlptool.similarity.api.blend`)."""
    sa, sb = set(a) - set(" \t\n\r"), set(b) - set(" \t\n\r")
    return len(sa & sb) / len(sa | sb) if sa | sb else 1.0
