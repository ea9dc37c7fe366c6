"""CoNLL-U output of ``nlptool segment --parse dependency --format conllu`` (universaldependencies.org/format.html)."""

from __future__ import annotations

from typing import Any

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
