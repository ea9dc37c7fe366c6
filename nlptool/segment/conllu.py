"""CoNLL-U output of ``nlptool segment --parse dependency --format conllu`` (universaldependencies.org/format.html)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, NamedTuple

from ..records import escape_line


def conllu_block(obj: dict[str, Any]) -> str:
    """One CoNLL-U sentence block of a ``segment`` output object, ending with ``"\\n"``: a
    ``# text =`` comment, then one line of 10 tab-separated columns per word (ID, FORM, 6 x ``_``
    but HEAD and DEPREL: ``root`` for head 0, else ``dep``). Whitespace-only words are left out
    and the heads renumbered; a head pointing at a dropped word becomes 0. The text, the words
    and an error (``# error = ...``, the whole block) stay on one line each (line breaks inside
    escaped, :func:`nlptool.records.escape_line`). ``obj["heads"]`` are 1-based, 0 = root."""
    if "error" in obj:
        return f"# error = {escape_line(str(obj['error']))}\n"
    lines = []
    words = obj.get("words", [])
    heads = obj.get("heads") or []
    keep = [i for i, w in enumerate(words) if w.strip()]
    new_id = {old: new + 1 for new, old in enumerate(keep)}
    text = obj.get("text")
    if isinstance(text, str):
        lines.append(f"# text = {escape_line(text)}")  # one comment line whatever the text holds
    for i in keep:
        h = heads[i] if i < len(heads) else None
        head = 0 if not h else new_id.get(h - 1, 0)
        rel = "root" if head == 0 else "dep"
        lines.append(f"{new_id[i]}\t{escape_line(words[i])}\t_\t_\t_\t_\t{head}\t{rel}\t_\t_")
    return "\n".join(lines) + "\n"


class GoldSentence(NamedTuple):
    """One sentence of a CoNLL-U treebank: its words, gold heads (1-based, 0 = root) and
    whether each word is punctuation (UPOS ``PUNCT``)."""

    words: list[str]
    heads: list[int]
    punct: list[bool]


def read_conllu(path: str | os.PathLike, *, max_words: int | None = None, limit: int | None = None) -> list[GoldSentence]:
    """The sentences of a CoNLL-U file (multi-word token and empty-node lines skipped), those of
    at most ``max_words`` words, the first ``limit`` of them (None = all).

    Raises:
        UsageError: the file does not exist; InputDataError: a line that is not UTF-8, a word line
        without 10 columns or with a non-integer head (file and line named).
    """
    from ..errors import InputDataError, UsageError

    if not os.path.isfile(path):
        raise UsageError(f"{path}: no such CoNLL-U file")
    sents: list[GoldSentence] = []
    cur = GoldSentence([], [], [])
    with open(path, "rb") as fh:
        for no, raw in enumerate(fh, 1):
            try:
                line = raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError as exc:
                raise InputDataError(f"{path}:{no}: not valid UTF-8 (byte {exc.start + 1} of the line)") from None
            if not line.strip():
                if cur.words and (max_words is None or len(cur.words) <= max_words):
                    sents.append(cur)
                    if limit and len(sents) >= limit:
                        return sents
                cur = GoldSentence([], [], [])
                continue
            if line.startswith("#"):
                continue
            cols = line.split("\t")
            if len(cols) != 10:
                raise InputDataError(f"{path}:{no}: a CoNLL-U word line has 10 tab-separated columns, not {len(cols)}")
            if "-" in cols[0] or "." in cols[0]:
                continue
            try:
                head = int(cols[6])
            except ValueError:
                raise InputDataError(f"{path}:{no}: HEAD {cols[6]!r} is not an integer") from None
            cur.words.append(cols[1])
            cur.heads.append(head)
            cur.punct.append(cols[3] == "PUNCT")
    if cur.words and (max_words is None or len(cur.words) <= max_words) and not (limit and len(sents) >= limit):
        sents.append(cur)
    return sents


def attachment_score(gold: Sequence[GoldSentence], predicted: Sequence[Sequence[int | None]]) -> float:
    """Unlabelled attachment score in [0, 1]: the share of non-punctuation words (UPOS ``PUNCT``
    is not scored, as is usual for UAS) whose predicted head equals the gold head; 0.0 when there
    is no scored word."""
    right = total = 0
    for g, pred in zip(gold, predicted):
        for gh, ph, p in zip(g.heads, pred, g.punct):
            if p:
                continue
            total += 1
            right += gh == ph
    return right / total if total else 0.0
