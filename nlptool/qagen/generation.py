"""Generation: answers by (copy-constrained) nucleus sampling, questions by beam search, the
filters, questions for given answers, and round-trip filtering with an extractive reader."""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..batching import length_order
from ..errors import ModelError, UsageError
from ..text import is_punct_or_space
from .data import DEFAULTS, FILTERS, SETTINGS_FILE, chunk_passage, chunk_with_answer


def load_settings(model_path) -> dict[str, Any] | None:
    """The :data:`SETTINGS_FILE` of a model trained by :func:`train_qa_gen` over :data:`DEFAULTS`
    (keys missing in older files take the defaults), or ``None`` when there is none.

    Raises:
        ModelError: the file is not a JSON object with the expected value types.
    """
    p = Path(model_path) / SETTINGS_FILE
    if not p.is_file():
        return None
    try:
        raw = json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelError(f"{p}: invalid JSON ({exc.__class__.__name__}: {str(exc).splitlines()[0]}); "
                         "retrain with `nlptool train qa-gen` or fix the file") from None
    if not isinstance(raw, dict):
        raise ModelError(f"{p}: expected a JSON object of generation settings")
    out = dict(DEFAULTS)
    for k, v in raw.items():
        if k in DEFAULTS and not isinstance(v, type(DEFAULTS[k])) and not (isinstance(DEFAULTS[k], float) and isinstance(v, int)):
            raise ModelError(f"{p}: {k!r} should be a {type(DEFAULTS[k]).__name__}, got {v!r}")
        out[k] = v
    return out


def check_generator(loaded) -> dict[str, Any]:
    """The generation settings of a loaded qa-gen model, after checking that it is one.

    Raises:
        ModelError: no masked-LM head, or one newly initialised because the checkpoint has none
            (e.g. en-minilm, a plain encoder), or not trained by
            :func:`train_qa_gen` (no :data:`SETTINGS_FILE`: its MLM head was never trained to
            generate, so its output would be noise), or an invalid settings file.
    """
    from .unilm import _split_model

    new_head = [k for k in getattr(loaded, "missing_keys", ()) if k.startswith(("cls.", "lm_head."))]
    if _split_model(loaded.model)[1] is None or new_head:
        raise ModelError(f"{loaded.name}: has no masked-LM head, so it cannot generate; use zh-qa-gen-mini "
                         "or a model trained by `nlptool train qa-gen`")
    settings = load_settings(loaded.path)
    if settings is None:
        raise ModelError(f"{loaded.name}: not a question-answer generator (no {SETTINGS_FILE}; its MLM head was "
                         "never trained to generate); use zh-qa-gen-mini or train one with `nlptool train qa-gen`")
    return settings


def tokens_to_text(tokenizer, ids: Sequence[int]) -> str:
    """Text of generated token ids: characters joined without spaces, ``##`` pieces glued to the
    previous token, a space only between two Latin/digit tokens (``iphone 11``)."""
    out = ""
    for tok in tokenizer.convert_ids_to_tokens(list(ids)):
        if tok in tokenizer.all_special_tokens:
            continue
        if tok.startswith("##"):
            out += tok[2:]
        elif out and out[-1].isascii() and out[-1].isalnum() and tok[0].isascii() and tok[0].isalnum():
            out += " " + tok
        else:
            out += tok
    return out


def find_subsequence(seq: Sequence[int], sub: Sequence[int]) -> int:
    """Index of the first occurrence of ``sub`` in ``seq`` (both token id lists), -1 if none."""
    n, m = len(seq), len(sub)
    if m == 0 or m > n:
        return -1
    first = sub[0]
    for i in range(n - m + 1):
        if seq[i] == first and list(seq[i: i + m]) == list(sub):
            return i
    return -1


@dataclass
class QAGenResult:
    """Pairs for one passage (best score first) and how many candidates each filter removed."""

    pairs: list[dict[str, Any]] = field(default_factory=list)
    filtered: dict[str, int] = field(default_factory=lambda: dict.fromkeys(FILTERS, 0))
    candidates: int = 0


@dataclass
class _Chunk:
    passage: int
    start: int
    text: str
    ids: list[int]
    offsets: list[tuple[int, int]]
    samples: int
    bounds: list[int] | None = None  # word boundaries (character offsets in text, 0 and len included)


def widen_to_words(c: _Chunk, s: int, e: int, max_tokens: int, can_widen: bool):
    """The answer span ``[s, e)`` of chunk ``c`` (character offsets in ``c.text``) made of whole
    words: unchanged (``(s, e, None)``) when both ends are word boundaries of ``c.bounds``; else,
    when ``can_widen``, the smallest span of whole tokens covering the words it touches,
    ``(s', e', token ids)``; ``None`` when it cannot be widened (``can_widen`` false, or wider than
    ``max_tokens`` tokens). Without ``c.bounds`` every span is kept as it is."""
    b = c.bounds
    if b is None:
        return s, e, None
    lo = max((x for x in b if x <= s), default=0)
    hi = min((x for x in b if x >= e), default=len(c.text))
    if lo == s and hi == e:
        return s, e, None
    if not can_widen:
        return None
    toks = [k for k, (a, z) in enumerate(c.offsets) if z > lo and a < hi]
    if not toks or len(toks) > max_tokens:
        return None
    return c.offsets[toks[0]][0], c.offsets[toks[-1]][1], [c.ids[k] for k in toks]


def allocate(lengths: Sequence[int], k: int) -> list[int]:
    """Split ``k`` samples over chunks in proportion to their lengths (largest remainder; the sum
    is exactly ``k``)."""
    total = sum(lengths)
    if total == 0 or k <= 0:
        return [0] * len(lengths)
    quotas = [k * n / total for n in lengths]
    base = [int(q) for q in quotas]
    rest = k - sum(base)
    for i in sorted(range(len(lengths)), key=lambda i: (-(quotas[i] - base[i]), i))[:rest]:
        base[i] += 1
    return base


def generate_qa_pairs(
    loaded,
    passages: Sequence[str],
    *,
    num_pairs: int = DEFAULTS["num_pairs"],
    top_p: float = 0.95,
    beam_size: int = 4,
    max_answer_len: int = 32,
    max_question_len: int = 32,
    max_passage_chars: int = 128,
    seed: int = 0,
    batch_size: int = 16,
    copy_answers: bool = True,
    no_repeat_ngram: int = 0,
    length_penalty: float = 1.0,
    answer_marks: bool = False,
    reader=None,
    min_consistency: float = 0.5,
    words=None,
) -> list[QAGenResult]:
    """Generate question-answer pairs for each passage (Su 2020-07-25).

    Each passage is cut into chunks (:func:`chunk_passage`); the ``num_pairs`` answer samples are
    shared out over the chunks by length (:func:`allocate`). Per chunk: encode
    ``[CLS] chunk [SEP]`` once; draw answers by nucleus sampling (``top_p``) until ``[SEP]``;
    drop answers that are unfinished, not in the chunk (as a token subsequence, so the returned
    answer is the exact passage text) or repeated; decode one question per remaining answer by
    beam search (``beam_size``) until the next ``[SEP]``; drop empty questions, questions equal
    to their answer and repeated questions (the better score stays).

    Args:
        loaded: a :class:`nlptool.models.LoadedModel` masked LM trained by :func:`train_qa_gen`.
        passages: texts; an empty passage gives no pairs.
        num_pairs: answer samples per passage (>= 0), so at most that many pairs.
        top_p: nucleus mass in (0, 1].
        beam_size: beams per question (>= 1).
        max_answer_len, max_question_len: tokens, ``[SEP]`` excluded.
        max_passage_chars: chunk length in characters (use the value the model was trained with).
        seed: the random stream of each sample depends only on ``seed``, the chunk text and the
            sample's index, so a passage gets the same pairs wherever it appears in the input.
        batch_size: chunks encoded and decoded together (bounds memory).
        copy_answers: restrict answer sampling to tokens that continue a substring of the chunk
            (the nucleus is taken over the model's distribution renormalised on those tokens), so
            every answer is a passage span. ``False`` samples freely, as in Su's post, and relies
            on the ``answer_not_in_passage`` filter; with a small model most free answers drift
            out of the passage after their first tokens.
        no_repeat_ngram, length_penalty: question beam search (:func:`nlptool.qagen.unilm.beam_search`).
        answer_marks: the model was trained with the answer marked in the passage
            (``--mark-answer``): the question is decoded from ``[CLS] passage* [SEP] answer [SEP]``
            re-encoded with the marks.
        reader: an extractive reader (:func:`nlptool.qagen.reader.load_reader`) for round-trip
            filtering (Alberti et al. 2019, "Synthetic QA Corpora Generation with Roundtrip
            Consistency", ACL): it answers each question from the chunk the pair came from, and a
            pair whose reader answer has character F1 (:func:`nlptool.qagen.reader.char_f1`) below
            ``min_consistency`` with the generated answer is dropped (``round_trip_inconsistent``);
            kept pairs get ``"consistency"``. ``None`` keeps every pair.
        words: a function from a list of chunk texts to their word lists (e.g. the tagger's,
            :func:`nlptool.segment.api.segment_with_tagger`), so that answers are whole words: a
            sampled answer that starts or ends inside a word (``查尔斯·斯`` of ``查尔斯·斯图尔特``)
            is widened to the words it touches before its question is decoded
            (:func:`widen_to_words`; needs ``answer_marks``, without them it is dropped), and
            dropped as ``answer_cuts_word`` when the widened answer exceeds ``max_answer_len``
            tokens. ``None``: answers are token spans as sampled.

    Returns:
        one :class:`QAGenResult` per passage; each pair is ``{"question", "answer",
        "answer_start" (character offset in the passage), "score" (mean log-probability per
        generated token, nats, <= 0, both [SEP]s included)}``.

    Raises:
        UsageError: an argument is out of range.
    """
    import torch

    if not 0.0 < top_p <= 1.0:
        raise UsageError(f"--top-p {top_p}: expected a value in (0, 1]")
    if beam_size < 1 or num_pairs < 0 or max_answer_len < 1 or max_question_len < 1 or batch_size < 1:
        raise UsageError("beam size, answer/question lengths and batch size must be at least 1; --num-pairs at least 0")
    tok, model, dev = loaded.tokenizer, loaded.model, loaded.device
    cls, sep = tok.cls_token_id, tok.sep_token_id
    special = [i for i in (tok.cls_token_id, tok.pad_token_id, tok.mask_token_id) if i is not None]
    q_banned = special + ([tok.unk_token_id] if tok.unk_token_id is not None else [])
    window = loaded.max_length - max_answer_len - max_question_len - 4
    if window < 1:
        raise UsageError(
            f"the model's window ({loaded.max_length} tokens) leaves no room for a passage after "
            f"{max_answer_len} answer and {max_question_len} question tokens; lower --max-answer-len/--max-question-len"
        )
    results = [QAGenResult() for _ in passages]
    chunks: list[_Chunk] = []
    for pi, text in enumerate(passages):
        cs = chunk_passage(text, max_passage_chars) if text and text.strip() else []
        encs = [tok(c, add_special_tokens=False, return_offsets_mapping=True) for _, c in cs]
        alloc = allocate([len(e["input_ids"]) for e in encs], num_pairs)
        for (s, c), e, k in zip(cs, encs, alloc):
            if k and e["input_ids"]:
                chunks.append(_Chunk(pi, s, c, e["input_ids"][:window], e["offset_mapping"][:window], k))
    if words is not None and chunks:
        for c, ws in zip(chunks, words([c.text for c in chunks])):
            b = [0]
            for w in ws:
                b.append(b[-1] + len(w))
            c.bounds = b if b[-1] == len(c.text) else None  # a segmenter that lost characters: no check
    order = length_order([len(c.ids) for c in chunks])
    with torch.inference_mode():
        for b in range(0, len(order), batch_size):
            batch = [chunks[i] for i in order[b: b + batch_size]]
            _generate_batch(model, dev, tok, batch, results, num_pairs=num_pairs, top_p=top_p, beam_size=beam_size,
                            max_answer_len=max_answer_len, max_question_len=max_question_len, seed=seed,
                            cls=cls, sep=sep, a_banned=special, q_banned=q_banned, copy_answers=copy_answers,
                            decode={"no_repeat_ngram": no_repeat_ngram, "length_penalty": length_penalty},
                            answer_marks=answer_marks)
    if reader is not None:
        _round_trip(reader, results, min_consistency, max_answer_len)
    for r in results:
        for pair in r.pairs:
            pair.pop("_chunk", None)
        r.pairs.sort(key=lambda p: -p["score"])
    return results


def _round_trip(reader, results, min_consistency: float, max_answer_len: int) -> None:
    from .reader import answer_questions, char_f1

    todo = [(res, pair) for res in results for pair in res.pairs]
    if not todo:
        return
    got = answer_questions(reader, [(pair["_chunk"], pair["question"]) for _, pair in todo], max_answer_len=max_answer_len)
    for (res, pair), (ans, _, _) in zip(todo, got):
        f1 = char_f1(ans, pair["answer"])
        if f1 < min_consistency:
            res.pairs.remove(pair)
            res.filtered["round_trip_inconsistent"] += 1
        else:
            pair["consistency"] = round(f1, 4)


def _generate_batch(model, dev, tok, batch, results, *, num_pairs, top_p, beam_size, max_answer_len, max_question_len,
                    seed, cls, sep, a_banned, q_banned, copy_answers, decode, answer_marks):
    import numpy as np
    import torch

    from .unilm import beam_search, nucleus_sample, prefill, step
    from .data import question_prefix

    logits, state = prefill(model, [([cls, *c.ids, sep], [0] * (len(c.ids) + 2)) for c in batch], dev)
    # one row per answer sample
    owner = [ci for ci, c in enumerate(batch) for _ in range(c.samples)]
    sample_no = [k for c in batch for k in range(c.samples)]
    rows = torch.as_tensor(owner, dtype=torch.long, device=dev)
    state = state.select(rows)
    logits = logits[rows]
    rngs = [np.random.default_rng([seed, zlib.crc32(batch[o].text.encode("utf-8")), k]) for o, k in zip(owner, sample_no)]
    n = len(owner)
    for r in owner:
        results[batch[r].passage].candidates += 1
    answers: list[list[int]] = [[] for _ in range(n)]
    a_logp = [0.0] * n
    q_logits: list[Any] = [None] * n
    active = torch.ones(n, dtype=torch.bool, device=dev)
    banned = torch.as_tensor(a_banned, dtype=torch.long, device=dev)
    # copy constraint: the passage positions where each row's answer so far occurs
    starts = [list(range(len(batch[o].ids))) for o in owner] if copy_answers else []
    for t in range(max_answer_len + 1):
        lp = torch.log_softmax(logits, dim=-1)
        masked = logits.clone()
        masked[:, banned] = float("-inf")
        if t == 0:
            masked[:, sep] = float("-inf")  # an answer has at least one token
        if copy_answers:
            masked = masked + _copy_mask(batch, owner, starts, t, sep, masked.shape[1], torch).to(dev)
        u = torch.as_tensor([g.random() for g in rngs], dtype=torch.float64)
        y = nucleus_sample(masked, top_p, u)
        y = torch.where(active, y, torch.full_like(y, tok.pad_token_id))
        y_l, act_l, lp_l = y.tolist(), active.tolist(), lp.gather(1, y[:, None]).squeeze(1).tolist()
        for r in range(n):
            if act_l[r]:
                a_logp[r] += lp_l[r]
                if y_l[r] != sep:
                    answers[r].append(y_l[r])
                    if copy_answers:
                        ids = batch[owner[r]].ids
                        starts[r] = [i for i in starts[r] if i + t < len(ids) and ids[i + t] == y_l[r]]
        logits = step(model, state, y, active)
        ended = active & (y == sep)  # at t = max_answer_len only [SEP] ends a row; others are unfinished
        for r in torch.nonzero(ended).flatten().tolist():
            q_logits[r] = logits[r]
        active = active & (y != sep)
        if not bool(active.any()):
            break
    # answers: finished, found in the chunk, not repeated
    keep: list[int] = []
    seen: set[tuple[int, tuple[int, ...]]] = set()
    spans: dict[int, tuple[int, int]] = {}
    for r in range(n):
        c = batch[owner[r]]
        res = results[c.passage]
        if q_logits[r] is None:
            res.filtered["answer_unfinished"] += 1
            continue
        i = find_subsequence(c.ids, answers[r])
        if i < 0:
            res.filtered["answer_not_in_passage"] += 1
            continue
        s_, e_ = c.offsets[i][0], c.offsets[i + len(answers[r]) - 1][1]
        if all(is_punct_or_space(ch) for ch in c.text[s_:e_]):
            res.filtered["answer_punctuation"] += 1
            continue
        whole = widen_to_words(c, s_, e_, max_answer_len, answer_marks)
        if whole is None:
            res.filtered["answer_cuts_word"] += 1
            continue
        if whole[2] is not None:
            s_, e_, answers[r] = whole
        key = (owner[r], tuple(answers[r]))
        if key in seen:
            res.filtered["duplicate_answer"] += 1
            continue
        seen.add(key)
        keep.append(r)
        spans[r] = (s_, e_)
    if not keep:
        return
    if answer_marks:  # re-encode each chunk with its answer marked
        del state
        prefixes = []
        for r in keep:
            c = batch[owner[r]]
            s_, e_ = spans[r]
            types = [1 if (a < e_ and b > s_) else 0 for a, b in c.offsets]
            prefixes.append(question_prefix(tok, c.ids, types, answers[r]))
        q0, state = prefill(model, prefixes, dev)
    else:
        keep_t = torch.as_tensor(keep, dtype=torch.long, device=dev)
        state = state.select(keep_t)
        q0 = torch.stack([q_logits[r] for r in keep])
    found = beam_search(model, state, q0, beam_size=beam_size, max_len=max_question_len + 1, end_id=sep,
                        banned=q_banned, **decode)
    for r, hyp in zip(keep, found):
        c = batch[owner[r]]
        res = results[c.passage]
        if hyp is None:
            res.filtered["question_unfinished"] += 1
            continue
        q_ids, q_sum = hyp
        s, e = spans[r]
        score = (a_logp[r] + q_sum) / (len(answers[r]) + 1 + len(q_ids) + 1)
        add_pair(res, {"question": tokens_to_text(tok, q_ids).strip(), "answer": c.text[s:e],
                       "answer_start": c.start + s, "score": round(score, 4), "_chunk": c.text})


def add_pair(result: QAGenResult, pair: dict[str, Any]) -> str | None:
    """Add a decoded pair to ``result`` unless a question filter removes it; returns the filter's
    name (counted in ``result.filtered``) or ``None`` when the pair was added.

    ``question_empty``: no question text; ``question_is_answer``: the question equals its answer
    (ignoring whitespace, case and end punctuation); ``duplicate_question``: the same question is
    already there (the pair with the higher score stays, the other one is counted here).
    """
    question, answer = pair["question"], pair["answer"]
    reason = None
    if not _norm(question):
        reason = "question_empty"
    elif _norm(question) == _norm(answer):
        reason = "question_is_answer"
    else:
        dup = next((p for p in result.pairs if _norm(p["question"]) == _norm(question)), None)
        if dup is not None:
            reason = "duplicate_question"
            if dup["score"] < pair["score"]:
                result.pairs.remove(dup)
                result.pairs.append(pair)
    if reason is None:
        result.pairs.append(pair)
    else:
        result.filtered[reason] += 1
    return reason


def _copy_mask(batch, owner, starts, t, sep, vocab, torch):
    """Additive ``(rows, vocab)`` mask: 0 for the tokens that extend a row's answer (``t`` tokens
    so far, occurring at ``starts[r]``) to a longer passage substring, and for ``[SEP]`` once the
    answer is non-empty; ``-inf`` elsewhere."""
    mask = torch.full((len(owner), vocab), float("-inf"))
    for r, o in enumerate(owner):
        ids = batch[o].ids
        nxt = {ids[i + t] for i in starts[r] if i + t < len(ids)}
        if t > 0:
            nxt.add(sep)
        if nxt:
            mask[r, list(nxt)] = 0.0
        else:  # cannot happen for t = 0 with a non-empty chunk; keep the row samplable
            mask[r, sep] = 0.0
    return mask


def _norm(s: str) -> str:
    return re.sub(r"\s+", "", s).lower().rstrip("？?。.!！")


def questions_for_answers(
    loaded,
    items: Sequence[tuple[str, Sequence[Any]]],
    *,
    beam_size: int = 4,
    max_answer_len: int = 32,
    max_question_len: int = 32,
    max_passage_chars: int = 128,
    no_repeat_ngram: int = 0,
    length_penalty: float = 1.0,
    answer_marks: bool = False,
    batch_size: int = 32,
    reader=None,
) -> list[list[dict[str, Any]]]:
    """One question per given answer (question generation given the answer, as lmqg's
    ``generate_q``): for ``(passage, answers)`` the answer's first occurrence in the passage
    locates it, the chunk of the passage that contains it (:func:`chunk_with_answer`,
    ``max_passage_chars``) is the source, and beam search decodes the question from
    ``[CLS] chunk [SEP] answer [SEP]`` (with the answer marked in the chunk for models trained
    with ``answer_marks``).

    Returns:
        per item, one entry per given answer in the given order: ``{"question", "answer",
        "answer_start" (character offset in the passage), "score" (mean log-probability per
        question token, nats, ``[SEP]`` included)}``, plus ``"consistency"`` (character F1 of the
        reader's answer, nothing is dropped) when ``reader`` is given; or ``{"answer", "error"}``
        when the answer is not a non-empty string, does not occur in the passage, or no question
        ended within ``max_question_len`` tokens.

    Raises:
        UsageError: an argument is out of range.
    """
    import torch

    from .unilm import beam_search, prefill
    from .data import marked_passage, question_prefix

    if beam_size < 1 or max_answer_len < 1 or max_question_len < 1 or batch_size < 1:
        raise UsageError("beam size, answer/question lengths and batch size must be at least 1")
    tok, model, dev = loaded.tokenizer, loaded.model, loaded.device
    cls, sep = tok.cls_token_id, tok.sep_token_id
    banned = [i for i in (tok.cls_token_id, tok.pad_token_id, tok.mask_token_id, tok.unk_token_id) if i is not None]
    out: list[list[dict[str, Any]]] = []
    jobs = []  # (item, slot, prefix, chunk text)
    for ii, (passage, answers) in enumerate(items):
        row: list[dict[str, Any]] = []
        for answer in answers:
            if not isinstance(answer, str) or not answer.strip():
                row.append({"answer": answer, "error": "an answer must be a non-empty string"})
                continue
            start = passage.find(answer)
            if start < 0:
                row.append({"answer": answer, "error": "the answer does not occur in the passage"})
                continue
            ch = chunk_with_answer(passage, start, answer, max_passage_chars) or (start, answer)
            a = tok(answer, add_special_tokens=False)["input_ids"][:max_answer_len]
            window = max(1, loaded.max_length - max_question_len - len(a) - 4)
            if answer_marks:
                p_ids, p_types = marked_passage(tok, ch[1], start - ch[0], start - ch[0] + len(answer), window)
                prefix = question_prefix(tok, p_ids, p_types, a)
            else:
                p = tok(ch[1], add_special_tokens=False)["input_ids"][:window]
                prefix = ([cls, *p, sep, *a, sep], [0] * (len(p) + 2) + [1] * (len(a) + 1))
            row.append({"question": "", "answer": answer, "answer_start": start, "score": 0.0})
            jobs.append((ii, len(row) - 1, prefix, ch[1]))
        out.append(row)
    order = length_order([len(j[2][0]) for j in jobs])
    with torch.inference_mode():
        for b in range(0, len(order), batch_size):
            idx = order[b: b + batch_size]
            logits, state = prefill(model, [jobs[j][2] for j in idx], dev)
            found = beam_search(model, state, logits, beam_size=beam_size, max_len=max_question_len + 1, end_id=sep,
                                banned=banned, no_repeat_ngram=no_repeat_ngram, length_penalty=length_penalty)
            for j, hyp in zip(idx, found):
                ii, slot, _, _ = jobs[j]
                entry = out[ii][slot]
                if hyp is None:
                    out[ii][slot] = {"answer": entry["answer"], "error": "no question ended within the question length limit"}
                    continue
                q_ids, q_sum = hyp
                entry["question"] = tokens_to_text(tok, q_ids).strip()
                entry["score"] = round(q_sum / (len(q_ids) + 1), 4)
    if reader is not None:
        from .reader import answer_questions, char_f1

        live = [(ii, slot, text) for ii, slot, _, text in jobs if "error" not in out[ii][slot]]
        got = answer_questions(reader, [(text, out[ii][slot]["question"]) for ii, slot, text in live],
                               max_answer_len=max_answer_len)
        for (ii, slot, _), (ans, _, _) in zip(live, got):
            out[ii][slot]["consistency"] = round(char_f1(ans, out[ii][slot]["answer"]), 4)
    return out


def generate_questions(loaded, items: Sequence[tuple[str, str]], *, beam_size: int = 4, max_question_len: int = 32,
                       max_answer_len: int = 32, batch_size: int = 32, **decode) -> list[str]:
    """A question for each ``(passage, answer)`` (:func:`questions_for_answers` with one answer
    per passage); ``""`` where no question was produced. ``decode``: ``no_repeat_ngram``,
    ``length_penalty``, ``answer_marks``, ``max_passage_chars``."""
    res = questions_for_answers(loaded, [(p, [a]) for p, a in items], beam_size=beam_size,
                                max_question_len=max_question_len, max_answer_len=max_answer_len,
                                batch_size=batch_size, **decode)
    return [r[0].get("question", "") for r in res]


#: Decoding settings a caller may override; ``None`` means the generator's own setting
#: (``nlptool_qa_gen.json``, :func:`check_generator`).
DECODING_KEYS = ("beam_size", "max_answer_len", "max_question_len", "max_passage_chars", "no_repeat_ngram",
                 "length_penalty", "top_p", "min_consistency")


def decoding_settings(settings: dict, **overrides) -> dict:
    """The generator's stored ``settings`` with the non-None ``overrides`` (keys of
    :data:`DECODING_KEYS`) applied; ``answer_marks`` always comes from the model (it is how it was
    trained)."""
    unknown = set(overrides) - set(DECODING_KEYS)
    if unknown:
        raise UsageError(f"unknown decoding setting(s): {', '.join(sorted(unknown))}")
    out = {k: settings[k] for k in DECODING_KEYS}
    out.update({k: v for k, v in overrides.items() if v is not None})
    out["answer_marks"] = settings["answer_marks"]
    return out


def qa_pairs_for_records(model, texts: Sequence[str], fields: Sequence[dict], *, decoding: dict,
                         num_pairs: int = DEFAULTS["num_pairs"],
                         seed: int = 0, batch_size: int = 16, reader=None, answers_key: str = "answers",
                         stats: dict | None = None, words=None) -> list[dict | Exception]:
    """What ``nlptool qa-gen`` writes per record: for a record whose ``fields`` hold ``answers_key``,
    one question per given answer (:func:`questions_for_answers`); for one without, sampled pairs
    (:func:`generate_qa_pairs`) with the filter counts.

    Args:
        texts: the passages, one per record.
        fields: per record, its other JSON fields (``Record.texts``); an ``answers_key`` value that
            is not a list becomes that record's error.
        decoding: from :func:`decoding_settings`.
        words: see :func:`generate_qa_pairs` (sampled pairs only).
        stats: if given, accumulates ``candidates`` (answer samples), ``pairs`` (kept) and
            ``filtered`` (``{filter: count}``) over the calls.
    Returns:
        One ``{"qa_pairs": ...}`` (plus ``"qa_filtered"`` for sampled pairs) or an exception per record.
    """
    opts = {k: decoding[k] for k in ("beam_size", "max_answer_len", "max_question_len", "max_passage_chars",
                                     "no_repeat_ngram", "length_penalty", "answer_marks")}
    if stats is not None:
        stats.setdefault("candidates", 0)
        stats.setdefault("pairs", 0)
        stats.setdefault("filtered", dict.fromkeys(FILTERS, 0))
    out: list = [None] * len(texts)
    given = [i for i, f in enumerate(fields) if answers_key in f]
    for i in given:
        if not isinstance(fields[i][answers_key], list):
            out[i] = ValueError(f"field {answers_key!r} must be a list of answer strings")
    asked = [i for i in given if out[i] is None]
    if asked:
        res = questions_for_answers(model, [(texts[i], fields[i][answers_key]) for i in asked], batch_size=batch_size,
                                    reader=reader, **opts)
        for i, pairs in zip(asked, res):
            if stats is not None:
                stats["pairs"] += sum("error" not in p for p in pairs)
            out[i] = {"qa_pairs": pairs}
    free = [i for i, f in enumerate(fields) if answers_key not in f]
    if free:
        res = generate_qa_pairs(model, [texts[i] for i in free], num_pairs=num_pairs, seed=seed,
                                batch_size=batch_size, top_p=decoding["top_p"], reader=reader,
                                min_consistency=decoding["min_consistency"], words=words, **opts)
        for i, x in zip(free, res):
            if stats is not None:
                stats["candidates"] += x.candidates
                stats["pairs"] += len(x.pairs)
                for k, v in x.filtered.items():
                    stats["filtered"][k] += v
            out[i] = {"qa_pairs": x.pairs, "qa_filtered": {k: v for k, v in x.filtered.items() if v}}
    return out
