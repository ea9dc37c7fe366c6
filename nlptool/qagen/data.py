"""qa-gen data: passages cut at sentence ends, SQuAD/JSONL question-answer files, the
article-level split, and the UniLM training examples (Su Jianlin, "学会提问的BERT" kexue.fm 2020-07-25:
``[CLS] passage [SEP] answer [SEP] question [SEP]``)."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..errors import InputDataError, UsageError
from ..records import jsonl_objects

#: File written next to the model by ``train qa-gen``: the generation settings it was trained for.
SETTINGS_FILE = "nlptool_qa_gen.json"

#: Defaults (characters for the passage chunk, tokens for answers and questions, Su's post uses
#: 128 / 16 / 32 on WebQA; CMRC 2018 answers are longer: median 7-19 characters, 95th percentile 32+).
DEFAULTS = {
    "max_passage_chars": 128,
    "max_answer_len": 32,
    "max_question_len": 32,
    "top_p": 0.95,
    "beam_size": 4,
    "num_pairs": 5,
    # decoding of questions (chosen on the dev split, see docs/qa-gen.md)
    "no_repeat_ngram": 0,
    "length_penalty": 1.0,
    # the answer span marked with segment id 1 inside the passage when the question is decoded
    # (models trained with --mark-answer); absent = False for models trained before
    "answer_marks": False,
    # round trip: least character F1 between the reader's answer and the generated answer
    "min_consistency": 0.5,
}


FILTERS = (
    "answer_unfinished",  # no [SEP] within max_answer_len
    "answer_not_in_passage",
    "answer_punctuation",  # only punctuation/whitespace (e.g. "。")
    "duplicate_answer",
    "question_unfinished",  # no [SEP] within max_question_len
    "question_empty",
    "question_is_answer",
    "duplicate_question",
    "round_trip_inconsistent",  # the reader's answer to the question does not overlap the answer
)


# ---------------------------------------------------------------------------------------------
# passages and data


def split_sentences(text: str) -> list[tuple[int, str]]:
    """Sentences of ``text`` as ``(start, sentence)`` (:func:`nlptool.text.sentence_spans`): each
    keeps its end punctuation and closing quotes; they concatenate back to ``text``."""
    from ..text import sentence_spans

    return sentence_spans(text)


def chunk_passage(text: str, max_chars: int = 128) -> list[tuple[int, str]]:
    """Cut a passage into chunks of at most ``max_chars`` characters at sentence ends.

    Whole sentences are packed greedily; a sentence longer than ``max_chars`` is cut every
    ``max_chars`` characters. Returns ``(start, chunk)`` pairs whose chunks concatenate back to
    ``text``, except that whitespace-only chunks are dropped. ``max_chars`` >= 1.
    """
    if max_chars < 1:
        raise UsageError(f"max passage length {max_chars}: expected at least 1 character")
    pieces: list[tuple[int, str]] = []
    for start, sent in split_sentences(text):
        for k in range(0, len(sent), max_chars):
            pieces.append((start + k, sent[k: k + max_chars]))
    chunks: list[tuple[int, str]] = []
    cur_start, cur = 0, ""
    for start, piece in pieces:
        if cur and len(cur) + len(piece) > max_chars:
            chunks.append((cur_start, cur))
            cur = ""
        if not cur:
            cur_start = start
        cur += piece
    if cur:
        chunks.append((cur_start, cur))
    return [(s, c) for s, c in chunks if c.strip()]


def chunk_with_answer(passage: str, answer_start: int, answer: str, max_chars: int = 128) -> tuple[int, str] | None:
    """The chunk of :func:`chunk_passage` that contains ``passage[answer_start:][:len(answer)]``, or,
    when the answer straddles two chunks, a ``max_chars`` window centred on it. ``None`` when the
    answer is longer than ``max_chars``."""
    end = answer_start + len(answer)
    if len(answer) > max_chars:
        return None
    for s, c in chunk_passage(passage, max_chars):
        if s <= answer_start and end <= s + len(c):
            return s, c
    s = max(0, min(answer_start - (max_chars - len(answer)) // 2, len(passage) - max_chars))
    return s, passage[s: s + max_chars]


@dataclass
class QAItem:
    """One gold question-answer pair on its full passage. ``article`` groups passages for the
    held-out split; ``where`` is ``file:item`` for messages."""

    passage: str
    question: str
    answer: str
    answer_start: int
    article: str
    where: str


def read_qa_data(paths: Sequence[str | os.PathLike]) -> tuple[list[QAItem], dict[str, int]]:
    """Read question-answer data: SQuAD v1.1 JSON (``data[].paragraphs[].qas[]``, as CMRC 2018)
    or JSONL records ``{passage, question, answer}`` (optional ``answer_start``, ``article``).

    The first answer of a question is used. When ``answer_start`` does not point at the answer
    text, the first occurrence of the text is used; a question whose answer does not occur in
    its passage is skipped and counted (``skipped_answer_not_in_passage``).

    Returns:
        ``(items, counts)``.

    Raises:
        UsageError: a path is missing or holds no question.
        InputDataError: malformed JSON or a JSONL record without the fields (names file and line).
    """
    items: list[QAItem] = []
    counts = {"questions": 0, "skipped_answer_not_in_passage": 0, "skipped_no_answer": 0}

    def add(passage, question, answer, start, article, where):
        counts["questions"] += 1
        if not isinstance(answer, str) or not answer.strip():
            counts["skipped_no_answer"] += 1
            return
        if not (isinstance(start, int) and passage[start: start + len(answer)] == answer):
            start = passage.find(answer)
        if start < 0:
            counts["skipped_answer_not_in_passage"] += 1
            return
        items.append(QAItem(passage, question, answer, start, str(article), where))

    for p in paths:
        path = str(p)
        if not os.path.isfile(path):
            raise UsageError(f"{path}: no such file (expected SQuAD v1.1 JSON or JSONL)")
        with open(path, encoding="utf-8-sig") as fh:
            text = fh.read()
        try:  # one JSON document with a "data" list: SQuAD v1.1; anything else is read as JSONL
            doc = json.loads(text)
        except json.JSONDecodeError:
            doc = None
        data = doc.get("data") if isinstance(doc, dict) else None
        if not isinstance(data, list):
            for lineno, obj in jsonl_objects(text.splitlines(), path):
                for k in ("passage", "question", "answer"):
                    if not isinstance(obj.get(k), str):
                        raise InputDataError(f"missing or non-string field {k!r}", path, lineno)
                add(obj["passage"], obj["question"], obj["answer"], obj.get("answer_start"),
                    obj.get("article", obj["passage"]), f"{path}:{lineno}")
            continue
        for ai, article in enumerate(data):
            art = f"{os.path.basename(path)}:{article.get('id') or article.get('title') or ai}"
            for pi, para in enumerate(article.get("paragraphs", [])):
                ctx = para.get("context", "")
                for q in para.get("qas", []):
                    ans = (q.get("answers") or [{}])[0]
                    add(ctx, q.get("question", ""), ans.get("text"), ans.get("answer_start"), art,
                        f"{path}:{q.get('id', f'{ai}/{pi}')}")
    if not items:
        raise UsageError("no usable question-answer pairs in " + ", ".join(str(p) for p in paths))
    return items, counts


def split_articles(items: Sequence[QAItem], holdout: float = 0.1, seed: int = 0) -> tuple[list[QAItem], list[QAItem]]:
    """(train, held-out) with ``holdout`` of the distinct articles (rounded, at least one when
    there are two or more) held out, chosen by ``seed``; no article is on both sides.

    Raises:
        UsageError: ``holdout`` outside [0, 1).
    """
    import numpy as np

    if not 0.0 <= holdout < 1.0:
        raise UsageError(f"--holdout {holdout}: expected a fraction in [0, 1)")
    articles = sorted({it.article for it in items})
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(articles))
    k = int(round(holdout * len(articles)))
    if holdout > 0 and len(articles) >= 2:
        k = min(max(k, 1), len(articles) - 1)
    held = {articles[i] for i in order[:k]}
    return [it for it in items if it.article not in held], [it for it in items if it.article in held]


def encode_example(tokenizer, passage: str, answer: str, question: str, *, max_passage_len: int = 128,
                   max_answer_len: int = 32, max_question_len: int = 32) -> dict[str, list[int]] | None:
    """Token ids and segment ids of ``[CLS] passage [SEP] answer [SEP] question [SEP]``.

    The passage is truncated to ``max_passage_len`` tokens, the question to ``max_question_len``;
    ``None`` when the answer has more than ``max_answer_len`` tokens or the question or answer
    has none (such examples would teach the model to stop early or never). ``source_len`` is the
    length of the source prefix ``[CLS] passage [SEP]``.
    """
    p = tokenizer(passage, add_special_tokens=False)["input_ids"][:max_passage_len]
    a = tokenizer(answer, add_special_tokens=False)["input_ids"]
    q = tokenizer(question, add_special_tokens=False)["input_ids"][:max_question_len]
    if not a or not q or len(a) > max_answer_len:
        return None
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    ids = [cls, *p, sep, *a, sep, *q, sep]
    types = [0] * (len(p) + 2) + [1] * (len(a) + len(q) + 2)
    return {"input_ids": ids, "token_type_ids": types, "source_len": len(p) + 2}


def marked_passage(tokenizer, passage: str, answer_start: int, answer_end: int, max_passage_len: int = 128):
    """``(ids, types)`` of a passage with the answer's characters ``[answer_start, answer_end)``
    marked by segment id 1 on the tokens that overlap them (0 elsewhere): the answer-position
    feature of neural question generation (Zhou et al. 2017, "Neural Question Generation from
    Text: A Preliminary Study", answer position indicator; BERT-SQG/UniLM QG mark it likewise)."""
    enc = tokenizer(passage, add_special_tokens=False, return_offsets_mapping=True)
    ids = enc["input_ids"][:max_passage_len]
    types = [1 if (s < answer_end and e > answer_start) else 0 for s, e in enc["offset_mapping"][:max_passage_len]]
    return ids, types


def question_prefix(tokenizer, passage_ids, passage_types, answer_ids) -> tuple[list[int], list[int], int]:
    """``(ids, types, source_len)`` of the question-decoding source ``[CLS] passage* [SEP] answer
    [SEP]`` of a model trained with answer marks: the whole prefix is bidirectional source, the
    passage carries the answer marks, the answer segment 1."""
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    ids = [cls, *passage_ids, sep, *answer_ids, sep]
    types = [0, *passage_types, 0] + [1] * (len(answer_ids) + 1)
    return ids, types, len(ids)


def encode_marked_examples(tokenizer, passage: str, answer_start: int, answer: str, question: str, *,
                           max_passage_len: int = 128, max_answer_len: int = 32,
                           max_question_len: int = 32) -> list[dict[str, Any]]:
    """The two training examples of one pair for a model with answer marks: the answer example
    ``[CLS] passage [SEP] answer [SEP]`` (loss on the answer: how answers are sampled, before any
    answer is known) and the question example ``[CLS] passage* [SEP] answer [SEP] question [SEP]``
    with the answer marked in the passage (:func:`marked_passage`) and the loss on the question
    only. ``[]`` when :func:`encode_example` would give ``None``."""
    plain = encode_example(tokenizer, passage, answer, question, max_passage_len=max_passage_len,
                           max_answer_len=max_answer_len, max_question_len=max_question_len)
    if plain is None:
        return []
    sep = tokenizer.sep_token_id
    n_src = plain["source_len"]
    a = plain["input_ids"][n_src: plain["input_ids"].index(sep, n_src)]
    q = plain["input_ids"][n_src + len(a) + 1: -1]
    answer_ex = {"input_ids": plain["input_ids"][: n_src + len(a) + 1],
                 "token_type_ids": plain["token_type_ids"][: n_src + len(a) + 1], "source_len": n_src}
    p_ids, p_types = marked_passage(tokenizer, passage, answer_start, answer_start + len(answer), max_passage_len)
    ids, types, n = question_prefix(tokenizer, p_ids, p_types, a)
    question_ex = {"input_ids": ids + q + [sep], "token_type_ids": types + [1] * (len(q) + 1), "source_len": n}
    return [answer_ex, question_ex]


def build_examples(tokenizer, items: Sequence[QAItem], *, max_passage_chars: int = 128, max_answer_len: int = 32,
                   max_question_len: int = 32, answer_marks: bool = False) -> tuple[list[dict], dict[str, int]]:
    """Training examples: each item on the chunk of its passage that contains its answer
    (:func:`chunk_with_answer`), encoded by :func:`encode_example` (one example per item) or,
    with ``answer_marks``, :func:`encode_marked_examples` (two). Returns ``(examples, counts)``
    with how many items were dropped and why."""
    out = []
    counts = {"examples": 0, "dropped_answer_too_long": 0}
    for it in items:
        ch = chunk_with_answer(it.passage, it.answer_start, it.answer, max_passage_chars)
        enc = []
        if ch is not None:
            kw = dict(max_passage_len=max_passage_chars + 8, max_answer_len=max_answer_len, max_question_len=max_question_len)
            if answer_marks:
                enc = encode_marked_examples(tokenizer, ch[1], it.answer_start - ch[0], it.answer, it.question, **kw)
            else:
                one = encode_example(tokenizer, ch[1], it.answer, it.question, **kw)
                enc = [one] if one is not None else []
        if not enc:
            counts["dropped_answer_too_long"] += 1
            continue
        out.extend(enc)
    counts["examples"] = len(out)
    return out, counts


def write_splits(paths: Sequence[str | os.PathLike], out_dir: str | os.PathLike, *, test: float = 0.1,
                 dev: float = 0.1, seed: int = 0) -> dict[str, Any]:
    """Write the deterministic article-level splits of question-answer files as JSONL
    (``{passage, question, answer, answer_start, article}`` per line): ``test.jsonl`` holds
    ``test`` of the articles (:func:`split_articles` with ``seed``; with seed 0 and 0.1 these are
    the 94 CMRC 2018 articles every qa-gen number in the docs is measured on), ``dev.jsonl``
    ``dev`` of the remaining articles (seed + 1; for choosing settings), ``train.jsonl`` the rest
    and ``train_dev.jsonl`` train + dev (what the shipped model is trained on). Also
    ``splits.json`` with the counts and the held-out article ids. Returns that summary.

    Raises:
        UsageError, InputDataError: see :func:`read_qa_data`.
    """
    items, counts = read_qa_data(paths)
    rest, held = split_articles(items, test, seed)
    train, dv = split_articles(rest, dev, seed + 1)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary: dict[str, Any] = {"sources": [str(p) for p in paths], "read": counts, "seed": seed}
    for name, part in (("train", train), ("dev", dv), ("train_dev", rest), ("test", held)):
        with open(out / f"{name}.jsonl", "w", encoding="utf-8") as fh:
            for it in part:
                row = asdict(it)
                row.pop("where")
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        summary[name] = {"questions": len(part), "articles": len({i.article for i in part})}
    summary["test_articles"] = sorted({i.article for i in held})
    (out / "splits.json").write_text(json.dumps(summary, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return summary
