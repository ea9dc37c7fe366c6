"""Question-answer pair generation from passages with one UniLM seq2seq BERT.

The library behind ``nlptool train qa-gen`` and ``nlptool qa-gen``. Source: Su Jianlin,
"学会提问的BERT：端到端地从篇章中构建问答对" (kexue.fm, 2020-07-25) and the bert4keras example
``task_question_answer_generation_by_seq2seq.py``: a BERT with the UniLM mask models
p(answer, question | passage) as ``[CLS] passage [SEP] answer [SEP] question [SEP]`` (segment 0
for the passage, 1 after it), trained with the loss on the answer and question tokens only.
Passages are cut to about 128 characters at sentence punctuation and a training example keeps the
chunk that contains its answer. Generation samples an answer with nucleus (top-p) sampling up to
the first ``[SEP]``, then decodes a question for it with beam search up to the second; the
passage is encoded once and its keys/values are reused by every sample and beam
(:mod:`nlptool.unilm`).

Filters (counted per passage in :class:`QAGenResult`): a sampled answer must end within
``max_answer_len`` tokens and occur in the passage (its character offset is ``answer_start``);
an answer of punctuation only is dropped; the same answer twice is decoded once; a question must end within ``max_question_len``, be
non-empty and differ from its answer; the same question twice keeps the better-scored pair.
"""

from __future__ import annotations

import json
import os
import re
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import InputDataError, UsageError
from .io import jsonl_objects
from .text import is_punct_or_space

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
}

# sentence ends (kept with the sentence), with closing quotes/brackets that follow them
_SENTENCE_END = re.compile(r"[。！？!?；;…\n]+[”’」』）)\"']*")

FILTERS = (
    "answer_unfinished",  # no [SEP] within max_answer_len
    "answer_not_in_passage",
    "answer_punctuation",  # only punctuation/whitespace (e.g. "。")
    "duplicate_answer",
    "question_unfinished",  # no [SEP] within max_question_len
    "question_empty",
    "question_is_answer",
    "duplicate_question",
)


# ---------------------------------------------------------------------------------------------
# passages and data


def split_sentences(text: str) -> list[tuple[int, str]]:
    """Sentences of ``text`` as ``(start, sentence)``; each keeps its end punctuation (。！？!?；;…
    and newlines, plus closing quotes), and the sentences concatenate back to ``text``."""
    out = []
    pos = 0
    for m in _SENTENCE_END.finditer(text):
        out.append((pos, text[pos: m.end()]))
        pos = m.end()
    if pos < len(text):
        out.append((pos, text[pos:]))
    return out


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
    has none (such examples would teach the model to stop early or never).
    """
    p = tokenizer(passage, add_special_tokens=False)["input_ids"][:max_passage_len]
    a = tokenizer(answer, add_special_tokens=False)["input_ids"]
    q = tokenizer(question, add_special_tokens=False)["input_ids"][:max_question_len]
    if not a or not q or len(a) > max_answer_len:
        return None
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    ids = [cls, *p, sep, *a, sep, *q, sep]
    types = [0] * (len(p) + 2) + [1] * (len(a) + len(q) + 2)
    return {"input_ids": ids, "token_type_ids": types}


def build_examples(tokenizer, items: Sequence[QAItem], *, max_passage_chars: int = 128, max_answer_len: int = 32,
                   max_question_len: int = 32) -> tuple[list[dict], dict[str, int]]:
    """Training examples: each item on the chunk of its passage that contains its answer
    (:func:`chunk_with_answer`), encoded by :func:`encode_example`. Returns ``(examples, counts)``
    with how many items were dropped and why."""
    out = []
    counts = {"examples": 0, "dropped_answer_too_long": 0}
    for it in items:
        ch = chunk_with_answer(it.passage, it.answer_start, it.answer, max_passage_chars)
        enc = None
        if ch is not None:
            enc = encode_example(tokenizer, ch[1], it.answer, it.question, max_passage_len=max_passage_chars + 8,
                                 max_answer_len=max_answer_len, max_question_len=max_question_len)
        if enc is None:
            counts["dropped_answer_too_long"] += 1
            continue
        out.append(enc)
    counts["examples"] = len(out)
    return out, counts


# ---------------------------------------------------------------------------------------------
# training


class _Examples:
    def __init__(self, rows: list[dict]):
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict:
        return self.rows[i]


def _collate(pad_id: int):
    import torch

    def collate(batch: list[dict]) -> dict:
        n = max(len(b["input_ids"]) for b in batch)
        ids = torch.full((len(batch), n), pad_id, dtype=torch.long)
        types = torch.ones(len(batch), n, dtype=torch.long)
        att = torch.zeros(len(batch), n, dtype=torch.long)
        for r, b in enumerate(batch):
            k = len(b["input_ids"])
            ids[r, :k] = torch.as_tensor(b["input_ids"])
            types[r, :k] = torch.as_tensor(b["token_type_ids"])
            att[r, :k] = 1
        return {"input_ids": ids, "token_type_ids": types, "attention_mask": att}

    return collate


def _Seq2SeqTrainer():
    import torch
    from transformers import Trainer

    from .unilm import seq2seq_loss

    class Seq2SeqTrainer(Trainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            loss = seq2seq_loss(model, inputs["input_ids"], inputs["token_type_ids"], inputs["attention_mask"])
            return (loss, None) if return_outputs else loss

        def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
            inputs = self._prepare_inputs(inputs)
            with torch.no_grad():
                loss = seq2seq_loss(model, inputs["input_ids"], inputs["token_type_ids"], inputs["attention_mask"])
            return loss.detach(), None, None

    return Seq2SeqTrainer


def train_qa_gen(
    items: Sequence[QAItem],
    out_dir: str | os.PathLike,
    *,
    model: str = "zh-bert-mini",
    holdout: float = 0.1,
    eval_items: Sequence[QAItem] | None = None,
    max_passage_chars: int = 128,
    max_answer_len: int = 32,
    max_question_len: int = 32,
    epochs: float = 10.0,
    batch_size: int = 32,
    learning_rate: float = 2e-4,
    warmup_ratio: float = 0.05,
    weight_decay: float = 0.01,
    max_minutes: float | None = None,
    resume: bool = False,
    seed: int = 0,
    device: str = "auto",
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Fine-tune a BERT masked LM as a UniLM question-answer generator (Su 2020-07-25).

    Args:
        items: gold pairs (:func:`read_qa_data`).
        out_dir: output directory: a Hugging Face model directory (config, safetensors, tokenizer)
            plus :data:`SETTINGS_FILE` (the length limits and decoding defaults) and
            ``metrics.json``; checkpoints in ``out_dir/checkpoints`` (one per epoch, the two last kept).
        model: starting masked LM (built-in name, directory or hub id); its MLM head becomes the
            generator.
        holdout: fraction of the articles held out for the validation loss (:func:`split_articles`),
            unless ``eval_items`` is given.
        max_passage_chars, max_answer_len, max_question_len: passage chunk in characters; answer and
            question in tokens (longer answers are dropped, longer questions truncated).
        epochs, batch_size, learning_rate, warmup_ratio, weight_decay: AdamW with linear decay.
        max_minutes: stop after this wall time; the best checkpoint by validation loss is kept.
        resume: continue from the last checkpoint in ``out_dir/checkpoints``.
        device: ``auto|cpu|cuda|cuda:N``; fp16 mixed precision on CUDA.

    Returns:
        metrics dict: example counts, steps, seconds, validation loss (nats per target token)
        per epoch and of the saved model.

    Raises:
        UsageError: nothing left to train on.
        ModelError: the starting model cannot be loaded.
    """
    import torch
    from transformers import TrainerCallback

    from .models import load_model
    from .training import quiet_trainer, time_budget, training_arguments

    log = log or (lambda s: None)
    out = Path(out_dir)
    loaded = load_model(model, kind="masked-lm", device=device, fp16=False)
    tok, net, dev = loaded.tokenizer, loaded.model, loaded.device
    if not hasattr(net, "cls") and not hasattr(net, "lm_head"):
        raise UsageError(f"{model}: no masked-LM head (the generator); start from a BERT-family masked LM")
    if eval_items is None:
        train_items, held_items = split_articles(items, holdout, seed)
    else:
        train_items, held_items = list(items), list(eval_items)
    limits = {"max_passage_chars": max_passage_chars, "max_answer_len": max_answer_len, "max_question_len": max_question_len}
    train_ex, train_counts = build_examples(tok, train_items, **limits)
    held_ex, held_counts = build_examples(tok, held_items, **limits)
    if not train_ex:
        raise UsageError("no training examples left (answers longer than --max-answer-len?)")
    log(
        f"{len(train_ex):,} training examples from {len({i.article for i in train_items}):,} articles, "
        f"{len(held_ex):,} held-out from {len({i.article for i in held_items}):,} "
        f"({train_counts['dropped_answer_too_long'] + held_counts['dropped_answer_too_long']} dropped: answer too long)"
    )
    net.train()
    args = training_arguments(
        out / "checkpoints",
        dev,
        per_device_train_batch_size=batch_size,
        per_device_eval_batch_size=batch_size * 2,
        num_train_epochs=epochs,
        learning_rate=learning_rate,
        warmup_steps=int(warmup_ratio * epochs * ((len(train_ex) + batch_size - 1) // batch_size)),
        weight_decay=weight_decay,
        logging_steps=20,
        eval_strategy="epoch" if held_ex else "no",
        save_strategy="epoch",
        save_total_limit=2,
        load_best_model_at_end=bool(held_ex),
        metric_for_best_model="eval_loss" if held_ex else None,
        greater_is_better=False,
        seed=seed,
        remove_unused_columns=False,
    )
    history: list[dict] = []
    training = [True]

    class Log(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if not logs or not training[0]:
                return
            if "eval_loss" in logs:
                history.append({"epoch": round(state.epoch or 0, 2), "step": state.global_step, "eval_loss": logs["eval_loss"]})
                log(f"epoch {state.epoch:.2f} step {state.global_step}: validation loss {logs['eval_loss']:.3f}")
            elif "loss" in logs:
                log(f"step {state.global_step}/{state.max_steps} loss {logs['loss']:.3f}")

    callbacks = [Log()]
    if max_minutes:
        callbacks.append(time_budget(max_minutes))
    trainer = _Seq2SeqTrainer()(
        model=net, args=args, train_dataset=_Examples(train_ex), eval_dataset=_Examples(held_ex) if held_ex else None,
        data_collator=_collate(tok.pad_token_id), callbacks=callbacks,
    )
    quiet_trainer(trainer)
    ckpt = None
    if resume and any((out / "checkpoints").glob("checkpoint-*")):
        ckpt = True
    t0 = time.time()
    trainer.train(resume_from_checkpoint=ckpt)
    seconds = time.time() - t0
    training[0] = False
    final_eval = trainer.evaluate()["eval_loss"] if held_ex else None
    net.eval()
    net.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    settings = dict(DEFAULTS, **limits)
    settings.update(base_model=str(model), format="[CLS] passage [SEP] answer [SEP] question [SEP]")
    (out / SETTINGS_FILE).write_text(json.dumps(settings, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    metrics = {
        "base_model": str(model),
        "train_examples": len(train_ex),
        "heldout_examples": len(held_ex),
        "train_articles": len({i.article for i in train_items}),
        "heldout_articles": sorted({i.article for i in held_items}),
        "dropped": train_counts["dropped_answer_too_long"] + held_counts["dropped_answer_too_long"],
        "steps": trainer.state.global_step,
        "epochs": trainer.state.epoch,
        "seconds": round(seconds, 1),
        "device": str(dev),
        "validation_loss": final_eval,
        "history": history,
        "settings": settings,
        "torch_threads": torch.get_num_threads(),
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return metrics


# ---------------------------------------------------------------------------------------------
# generation


def load_settings(model_path: str | os.PathLike) -> dict[str, Any] | None:
    """The :data:`SETTINGS_FILE` of a model trained by :func:`train_qa_gen`, or ``None``."""
    p = Path(model_path) / SETTINGS_FILE
    if p.is_file():
        return json.loads(p.read_text(encoding="utf-8"))
    return None


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
    num_pairs: int = 5,
    top_p: float = 0.95,
    beam_size: int = 4,
    max_answer_len: int = 32,
    max_question_len: int = 32,
    max_passage_chars: int = 128,
    seed: int = 0,
    batch_size: int = 16,
    copy_answers: bool = True,
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
    order = sorted(range(len(chunks)), key=lambda i: len(chunks[i].ids))
    with torch.inference_mode():
        for b in range(0, len(order), batch_size):
            batch = [chunks[i] for i in order[b: b + batch_size]]
            _generate_batch(model, dev, tok, batch, results, num_pairs=num_pairs, top_p=top_p, beam_size=beam_size,
                            max_answer_len=max_answer_len, max_question_len=max_question_len, seed=seed,
                            cls=cls, sep=sep, a_banned=special, q_banned=q_banned, copy_answers=copy_answers)
    for r in results:
        r.pairs.sort(key=lambda p: -p["score"])
    return results


def _generate_batch(model, dev, tok, batch, results, *, num_pairs, top_p, beam_size, max_answer_len, max_question_len,
                    seed, cls, sep, a_banned, q_banned, copy_answers):
    import numpy as np
    import torch

    from .unilm import beam_search, nucleus_sample, prefill, step

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
        key = (owner[r], tuple(answers[r]))
        if key in seen:
            res.filtered["duplicate_answer"] += 1
            continue
        seen.add(key)
        keep.append(r)
        spans[r] = (s_, e_)
    if not keep:
        return
    keep_t = torch.as_tensor(keep, dtype=torch.long, device=dev)
    state = state.select(keep_t)
    found = beam_search(model, state, torch.stack([q_logits[r] for r in keep]), beam_size=beam_size,
                        max_len=max_question_len + 1, end_id=sep, banned=q_banned)
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
                       "answer_start": c.start + s, "score": round(score, 4)})


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


def generate_questions(loaded, items: Sequence[tuple[str, str]], *, beam_size: int = 4, max_question_len: int = 32,
                       max_answer_len: int = 32, batch_size: int = 32) -> list[str]:
    """A question for each ``(passage_chunk, answer)`` by beam search on
    ``[CLS] chunk [SEP] answer [SEP]`` (question generation given the answer, as evaluated by lmqg).
    Returns one string per item, ``""`` when no hypothesis ended within ``max_question_len``."""
    import torch

    from .unilm import beam_search, prefill

    tok, model, dev = loaded.tokenizer, loaded.model, loaded.device
    cls, sep = tok.cls_token_id, tok.sep_token_id
    banned = [i for i in (tok.cls_token_id, tok.pad_token_id, tok.mask_token_id, tok.unk_token_id) if i is not None]
    window = loaded.max_length - max_question_len - 3
    seqs = []
    for passage, answer in items:
        a = tok(answer, add_special_tokens=False)["input_ids"][:max_answer_len]
        p = tok(passage, add_special_tokens=False)["input_ids"][: max(0, window - len(a) - 1)]
        seqs.append(([cls, *p, sep, *a, sep], [0] * (len(p) + 2) + [1] * (len(a) + 1)))
    out = [""] * len(seqs)
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i][0]))
    with torch.inference_mode():
        for b in range(0, len(order), batch_size):
            idx = order[b: b + batch_size]
            logits, state = prefill(model, [seqs[i] for i in idx], dev)
            found = beam_search(model, state, logits, beam_size=beam_size, max_len=max_question_len + 1,
                                end_id=sep, banned=banned)
            for i, hyp in zip(idx, found):
                if hyp is not None:
                    out[i] = tokens_to_text(tok, hyp[0]).strip()
    return out
