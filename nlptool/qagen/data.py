"""qa-gen data: passages cut at sentence ends, SQuAD/JSONL question-answer files, the
article-level split, and the UniLM training examples (Su Jianlin, "学会提问的BERT" kexue.fm 2020-07-25:
``[CLS] passage [SEP] answer [SEP] question [SEP]``)."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..errors import InputDataError, UsageError
from ..records import MAX_JSON_DEPTH, _SURROGATE_ESCAPE, _load_json_line, check_json_field, jsonl_objects

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
    # answer samples per passage: 20 (was 5, then 10): with the round trip at 0.6 the rule "at least
    # 2 kept pairs per passage, the highest precision" on half A of the test passages picks 20 / 0.6
    # (half B: 2.15 pairs per passage at precision 0.452; docs/qa-gen.md)
    "num_pairs": 20,
    # decoding of questions (chosen on the dev split, see docs/qa-gen.md)
    "no_repeat_ngram": 0,
    "length_penalty": 1.0,
    # the answer span marked with segment id 1 inside the passage when the question is decoded
    # (models trained with --mark-answer); absent = False for models trained before
    "answer_marks": False,
    # round trip: least character F1 between the reader's answer and the generated answer (chosen
    # with num_pairs above; the generator's nlptool_qa_gen.json holds the shipped value)
    "min_consistency": 0.6,
}


FILTERS = (
    "answer_unfinished",  # no [SEP] within max_answer_len
    "answer_not_in_passage",
    "answer_punctuation",  # only punctuation/whitespace (e.g. "。")
    "answer_cuts_word",  # starts or ends inside a word and cannot be widened to whole words
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

    A file holding one JSON object with a ``data`` key is SQuAD: ``data`` a list of articles
    (optional ``id``/``title``: a string or an integer), each with ``paragraphs``, a list of
    ``{context, qas}``; ``qas`` a list of ``{question, answers}`` (optional ``id``); ``answers`` a
    list of ``{text, answer_start}`` (``answer_start`` optional: an integer >= 0, or -1 for
    unknown as CMRC 2018 writes it). Any other file
    is JSONL, one record per line (read by :func:`nlptool.records.jsonl_objects`).

    The first answer of a question is used. When ``answer_start`` does not point at the answer
    text, the first occurrence of the text is used; a question whose answer does not occur in
    its passage is skipped and counted (``skipped_answer_not_in_passage``), as is one without an
    answer or with an empty one (``skipped_no_answer``).

    Returns:
        ``(items, counts)``.

    Raises:
        UsageError: a path is not a file.
        InputDataError: (exit code 3 at the CLI) invalid UTF-8, invalid JSON or JSON nested too
            deeply (names file and line); a JSONL record without one of the fields or with a field
            of the wrong type (names file and line); a SQuAD document with a missing key or a value
            of the wrong type at any level (names file and JSON path, e.g. ``data[0].paragraphs``);
            no usable question-answer pair in all the files.
    """
    items: list[QAItem] = []
    counts = {"questions": 0, "skipped_answer_not_in_passage": 0, "skipped_no_answer": 0}

    def add(passage: str, question: str, answer: str, start: int | None, article, where: str) -> None:
        counts["questions"] += 1
        if not answer.strip():
            counts["skipped_no_answer"] += 1
            return
        if start is None or passage[start: start + len(answer)] != answer:
            start = passage.find(answer)
        if start < 0:
            counts["skipped_answer_not_in_passage"] += 1
            return
        items.append(QAItem(passage, question, answer, start, str(article), where))

    for p in paths:
        path = str(p)
        if not os.path.isfile(path):
            raise UsageError(f"{path}: no such file (expected SQuAD v1.1 JSON or JSONL)")
        text = _read_utf8(path)
        doc, problem = _load_document(text)
        if isinstance(doc, dict) and "data" in doc and "passage" not in doc:
            for row in _squad_questions(doc, path, surrogates=_SURROGATE_ESCAPE.search(text) is not None):
                add(*row)
            continue
        lines = text.split("\n")
        if not _looks_like_jsonl(lines):
            _document_error(doc, problem, text, path)
        for lineno, obj in jsonl_objects(lines, path):
            for k in ("passage", "question", "answer"):
                if k not in obj:
                    raise InputDataError(f"missing field {k!r}: a JSONL record is {{\"passage\": ..., \"question\": ..., "
                                         "\"answer\": ...}} (or give SQuAD v1.1 JSON)", path, lineno)
                check_json_field(obj[k], k, ["string"], path, lineno)
            start = obj.get("answer_start")
            if start is not None:
                check_json_field(start, "answer_start", ["integer"], path, lineno)
                if start < -1:
                    raise InputDataError(f"the answer_start is {start}: expected a character offset >= 0 "
                                         "(-1: unknown)", path, lineno)
                if start == -1:
                    start = None  # unknown (CMRC 2018 marks some answers so): found in the passage
            article = obj.get("article")
            if article is not None:
                check_json_field(article, "article", ["string", "integer"], path, lineno)
            add(obj["passage"], obj["question"], obj["answer"], start,
                obj["passage"] if article is None else article, f"{path}:{lineno}")
    if not items:
        raise InputDataError(
            f"no usable question-answer pair (questions: {counts['questions']}, answer not found in its passage: "
            f"{counts['skipped_answer_not_in_passage']}, no answer: {counts['skipped_no_answer']}); expected SQuAD v1.1 "
            "JSON or JSONL {passage, question, answer} whose answer occurs in its passage",
            ", ".join(str(p) for p in paths))
    return items, counts


# the reading rules of read_qa_data

#: What each level of a SQuAD v1.1 document must be (for messages).
_SQUAD_SHAPES = {
    "data": 'a list of articles {"title": ..., "paragraphs": [...]}',
    "article": 'an article {"title": ..., "paragraphs": [...]}',
    "paragraphs": 'a list of paragraphs {"context": ..., "qas": [...]}',
    "paragraph": 'a paragraph {"context": ..., "qas": [...]}',
    "context": "the passage, a string",
    "qas": 'a list of questions {"question": ..., "answers": [...]}',
    "qa": 'a question {"question": ..., "answers": [...]}',
    "question": "a string",
    "answers": 'a list of answers {"text": ..., "answer_start": ...}',
    "answer": 'an answer {"text": ..., "answer_start": ...}',
    "text": "a string",
    "answer_start": "a character offset, an integer >= 0 (-1: unknown, looked up in the passage)",
    "id": "a string or an integer",
    "title": "a string or an integer",
}
_JSON_KIND = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "a number",
              float: "a number", type(None): "null"}


def _read_utf8(path: str) -> str:
    """The file's text (a leading byte-order mark removed). Raises InputDataError naming the line of
    the first byte that is not UTF-8."""
    with open(path, "rb") as fh:
        raw = fh.read()
    bom = 3 if raw.startswith(b"\xef\xbb\xbf") else 0
    try:
        return raw[bom:].decode("utf-8")
    except UnicodeDecodeError as exc:
        at = bom + exc.start
        line_start = raw.rfind(b"\n", 0, at) + 1
        raise InputDataError(f"invalid UTF-8 at byte {at - line_start} of the line (re-encode the file as UTF-8, "
                             "e.g. with iconv)", path, raw.count(b"\n", 0, at) + 1) from None


def _load_document(text: str) -> tuple[Any, Any]:
    """``(value, None)`` when ``text`` is one JSON value; else ``(None, problem)``: the
    ``json.JSONDecodeError``, or ``"deep"`` when it nests too deeply for the parser."""
    try:
        return json.loads(text), None
    except RecursionError:
        return None, "deep"
    except json.JSONDecodeError as exc:
        return None, exc


def _looks_like_jsonl(lines: list[str]) -> bool:
    """True when a file that is not SQuAD is to be read as JSONL: it has at most one non-blank
    line (whose errors then name line 1), or its first non-blank line is a JSON value by itself."""
    filled = (ln for ln in lines if ln.strip())
    first = next(filled, None)
    if first is None or next(filled, None) is None:
        return True
    return _load_json_line(first.lstrip("\ufeff"))[1] is None


def _deep_line(text: str, cap: int) -> int:
    """1-based line where ``text``'s JSON nesting first exceeds ``cap`` levels (strings skipped)."""
    depth = 0
    for m in re.finditer(r'"(?:[^"\\\n]|\\.)*"|[\[\]{}]', text):
        c = m.group()
        if c in "[{":
            depth += 1
            if depth > cap:
                return text.count("\n", 0, m.start()) + 1
        elif c in "]}":
            depth -= 1
    return 1


def _document_error(doc: Any, problem: Any, text: str, path: str) -> None:
    """Raise the InputDataError of a multi-line file that is neither SQuAD nor JSONL."""
    if problem == "deep":
        raise InputDataError(f"JSON nested too deeply (more than {MAX_JSON_DEPTH} levels; SQuAD v1.1 needs 8)",
                             path, _deep_line(text, MAX_JSON_DEPTH))
    if isinstance(problem, json.JSONDecodeError):
        raise InputDataError(f"invalid JSON ({problem.msg} at column {problem.colno})", path, problem.lineno)
    what = "an object without a \"data\" key" if isinstance(doc, dict) else _JSON_KIND.get(type(doc), "a value")
    raise InputDataError(f"the file is one JSON value, {what}: expected SQuAD v1.1 JSON {{\"data\": [...]}} or "
                         "JSONL, one {\"passage\", \"question\", \"answer\"} object per line", path)


def _squad_questions(doc: dict, path: str, surrogates: bool = False):
    """``(passage, question, answer, answer_start, article, where)`` of every question of a SQuAD
    v1.1 document, checking every level on the way (``surrogates``: the file has a ``\\ud800``-style
    escape, so the texts are checked for lone surrogates)."""

    def bad(jpath: str, value: Any, shape: str):
        found = "missing" if value is _MISSING else f"is {_JSON_KIND.get(type(value), type(value).__name__)}"
        raise InputDataError(f"{jpath} {found}: expected {_SQUAD_SHAPES[shape]} (SQuAD v1.1)", path)

    def need(obj: dict, key: str, jpath: str, kind: type, optional: bool = False):
        jp = f"{jpath}.{key}" if jpath else key
        value = obj.get(key, _MISSING)
        if optional and (value is _MISSING or value is None):
            return None, jp
        if not isinstance(value, kind) or isinstance(value, bool):
            bad(jp, value, key)
        if surrogates and isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise InputDataError(f"{jp} holds a lone UTF-16 surrogate escape (\\ud800-\\udfff), which is not a "
                                     "Unicode character", path) from None
        return value, jp

    def items(obj: dict, key: str, jpath: str, shape: str):
        values, jp = need(obj, key, jpath, list)
        for i, value in enumerate(values):
            if not isinstance(value, dict):
                bad(f"{jp}[{i}]", value, shape)
            yield i, value, f"{jp}[{i}]"

    base = os.path.basename(path)
    for ai, article, ap in items(doc, "data", "", "article"):
        aid = need(article, "id", ap, (str, int), optional=True)[0]
        title = need(article, "title", ap, (str, int), optional=True)[0]
        art = f"{base}:{aid or title or ai}"
        for pi, para, pp in items(article, "paragraphs", ap, "paragraph"):
            ctx = need(para, "context", pp, str)[0]
            for qi, q, qp in items(para, "qas", pp, "qa"):
                qid = need(q, "id", qp, (str, int), optional=True)[0]
                question = need(q, "question", qp, str)[0]
                answers = list(items(q, "answers", qp, "answer"))
                first = [None, None]
                for k, (_, ans, anp) in enumerate(answers):
                    text = need(ans, "text", anp, str)[0]
                    start = need(ans, "answer_start", anp, int, optional=True)[0]
                    if start == -1:  # unknown (CMRC 2018 marks some answers so): found in the passage
                        start = None
                    if start is not None and start < 0:
                        raise InputDataError(f"{anp}.answer_start is {start}: expected "
                                             f"{_SQUAD_SHAPES['answer_start']} (SQuAD v1.1)", path)
                    if k == 0:
                        first = [text, start]
                yield (ctx, question, first[0] or "", first[1], art,
                       f"{path}:{qid if qid is not None else f'{ai}/{pi}'}")


_MISSING = object()


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
