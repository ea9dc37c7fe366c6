"""An extractive reader: BERT span extraction (start/end logits) fine-tuned for reading
comprehension, used by ``qa-gen`` for round-trip filtering.

Model: ``BertForQuestionAnswering`` (Devlin et al. 2019, "BERT", section 4.2, SQuAD v1.1): the
input is ``[CLS] question [SEP] passage [SEP]``, a linear layer gives a start and an end logit per
token, and the answer is the passage span ``i <= j`` (at most ``max_answer_len`` tokens) that
maximises ``start[i] + end[j]``. The loss is the mean of the start and end cross-entropies.
Training examples use the passage chunk that contains the answer (the same ~128-character chunks
as qa-gen, :func:`nlptool.qagen.chunk_with_answer`).

Round-trip consistency (Alberti et al. 2019, "Synthetic QA Corpora Generation with Roundtrip
Consistency", ACL): a generated pair is kept when the reader, asked the question, finds an answer
that overlaps the generated one (:func:`char_f1`).
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ModelError, UsageError
from ..models import default_model
from ..text import is_punct_or_space
from ..training import TrainSettings, check_holdout

#: Written next to a reader trained by :func:`train_reader` (its input limits); a model without it
#: has a newly initialised span head and is refused by :func:`load_reader`.
READER_FILE = "nlptool_reader.json"
DEFAULT_READER = default_model("qa-gen --reader")  # the registry row (nlptool.models.BUILTINS)


def char_f1(prediction: str, gold: str) -> float:
    """Character-level F1 of two answers (SQuAD's token F1 with characters as tokens, as in the
    CMRC 2018 evaluation of Chinese answers), ignoring whitespace and punctuation; in [0, 1]; 1.0
    when both are empty after that, 0.0 when only one is."""
    p = [c for c in prediction if not is_punct_or_space(c)]
    g = [c for c in gold if not is_punct_or_space(c)]
    if not p or not g:
        return float(p == g)
    common = sum((Counter(p) & Counter(g)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(p), common / len(g)
    return 2 * precision * recall / (precision + recall)


def encode_reader_example(tokenizer, context: str, question: str, answer_start: int | None = None,
                          answer: str | None = None, *, max_question_len: int = 32, max_length: int = 512):
    """``[CLS] question [SEP] context [SEP]`` as ``{input_ids, token_type_ids, offsets,
    context_from}`` (offsets: per token, character span in ``context`` or ``None`` outside it);
    with an answer, also ``start_positions``/``end_positions`` (token indices), or ``None`` when
    the answer's characters fall outside the kept context tokens."""
    q = tokenizer(question, add_special_tokens=False)["input_ids"][:max_question_len]
    enc = tokenizer(context, add_special_tokens=False, return_offsets_mapping=True)
    room = max(1, max_length - len(q) - 3)
    c_ids, c_off = enc["input_ids"][:room], enc["offset_mapping"][:room]
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    ids = [cls, *q, sep, *c_ids, sep]
    first = len(q) + 2
    row: dict[str, Any] = {
        "input_ids": ids,
        "token_type_ids": [0] * first + [1] * (len(c_ids) + 1),
        "offsets": [None] * first + [tuple(o) for o in c_off] + [None],
        "context_from": first,
    }
    if answer is not None and answer_start is not None:
        end = answer_start + len(answer)
        toks = [first + i for i, (s, e) in enumerate(c_off) if s < end and e > answer_start]
        if not toks:
            return None
        row["start_positions"], row["end_positions"] = toks[0], toks[-1]
    return row


def best_span(start_logits, end_logits, lo: int, hi: int, max_answer_len: int) -> tuple[int, int, float]:
    """``(i, j, score)`` maximising ``start[i] + end[j]`` over ``lo <= i <= j < hi`` and
    ``j - i < max_answer_len`` (1-D float tensors); exact, via a banded score matrix."""
    import torch

    s = start_logits[lo:hi].float()
    e = end_logits[lo:hi].float()
    n = s.shape[0]
    scores = s[:, None] + e[None, :]
    idx = torch.arange(n, device=scores.device)
    band = (idx[None, :] >= idx[:, None]) & (idx[None, :] - idx[:, None] < max_answer_len)
    scores = scores.masked_fill(~band, float("-inf"))
    flat = int(scores.argmax())
    i, j = divmod(flat, n)
    return lo + i, lo + j, float(scores[i, j])


def answer_questions(loaded, pairs: Sequence[tuple[str, str]], *, max_answer_len: int = 32,
                     max_question_len: int = 32, batch_size: int = 64) -> list[tuple[str, int, float]]:
    """Answer each ``(context, question)`` with the reader: the best span (:func:`best_span`).

    Returns:
        per pair ``(answer, start, score)``: the exact substring of ``context``, its character
        offset, and ``start_logit + end_logit``; ``("", -1, -inf)`` for an empty context.
    """
    import torch

    tok, model, dev = loaded.tokenizer, loaded.model, loaded.device
    rows = [encode_reader_example(tok, c, q, max_question_len=max_question_len, max_length=loaded.max_length)
            for c, q in pairs]
    out: list[tuple[str, int, float]] = [("", -1, float("-inf"))] * len(rows)
    from ..batching import length_order

    order = length_order([len(r["input_ids"]) for r in rows])
    with torch.inference_mode():
        for b in range(0, len(order), batch_size):
            idx = order[b: b + batch_size]
            n = max(len(rows[i]["input_ids"]) for i in idx)
            ids = torch.zeros(len(idx), n, dtype=torch.long)
            types = torch.zeros(len(idx), n, dtype=torch.long)
            att = torch.zeros(len(idx), n, dtype=torch.long)
            for r, i in enumerate(idx):
                k = len(rows[i]["input_ids"])
                ids[r, :k] = torch.as_tensor(rows[i]["input_ids"])
                types[r, :k] = torch.as_tensor(rows[i]["token_type_ids"])
                att[r, :k] = 1
            res = model(input_ids=ids.to(dev), token_type_ids=types.to(dev), attention_mask=att.to(dev))
            for r, i in enumerate(idx):
                row = rows[i]
                lo, hi = row["context_from"], len(row["input_ids"]) - 1
                if hi <= lo:
                    continue
                a, z, score = best_span(res.start_logits[r], res.end_logits[r], lo, hi, max_answer_len)
                s, e = row["offsets"][a][0], row["offsets"][z][1]
                out[i] = (pairs[i][0][s:e], s, score)
    return out


def load_reader(model: str = DEFAULT_READER, device: str = "auto"):
    """Load a reader trained by :func:`train_reader` (built-in name, directory or hub id).

    Raises:
        ModelError: not loadable, or without :data:`READER_FILE` (its span head would be newly
            initialised: answers would be noise).
    """
    from ..models import load_model

    loaded = load_model(model, kind="question-answering", device=device)
    if any(k.startswith("qa_outputs.") for k in loaded.missing_keys) or not (Path(loaded.path) / READER_FILE).is_file():
        raise ModelError(f"{model}: not an extractive reader (no {READER_FILE}; its span head was never trained); "
                         "use zh-reader-mini or train one with `nlptool train reader`")
    return loaded


def evaluate_reader(loaded, items, *, max_passage_chars: int = 128, max_answer_len: int = 32) -> dict[str, float]:
    """Exact match and mean character F1 (:func:`char_f1`, in [0, 1]) of the reader's answers to
    gold questions, each asked on the chunk of its passage that contains the gold answer."""
    from . import chunk_with_answer

    ctx = []
    for it in items:
        ch = chunk_with_answer(it.passage, it.answer_start, it.answer, max_passage_chars) or (it.answer_start, it.answer)
        ctx.append((ch[1], it.question))
    got = answer_questions(loaded, ctx, max_answer_len=max_answer_len)
    n = max(1, len(items))
    return {
        "questions": len(items),
        "exact_match": round(sum(g[0].strip() == it.answer.strip() for g, it in zip(got, items)) / n, 4),
        "char_f1": round(sum(char_f1(g[0], it.answer) for g, it in zip(got, items)) / n, 4),
    }


@dataclass(kw_only=True)
class ReaderSettings(TrainSettings):
    """The settings of ``nlptool train reader`` (:func:`train_reader`): the shared
    :class:`nlptool.training.TrainSettings` plus:

    Attributes:
        model: the encoder to start from (its MLM head, if any, is dropped).
        holdout: share of the articles held out (unless evaluation items are given) for exact
            match / char F1, in [0, 1).
        max_passage_chars, max_question_len, max_answer_len: chunk characters, question and
            answer tokens.
    """

    model: str = "zh-bert-mini"
    epochs: float = 10.0
    batch_size: int = 32
    learning_rate: float = 2e-4
    warmup_ratio: float = 0.1
    holdout: float = 0.1
    max_passage_chars: int = 128
    max_question_len: int = 32
    max_answer_len: int = 32

    def check(self) -> None:
        """The shared rules, plus ``holdout`` in [0, 1).

        Raises:
            UsageError: one line naming the setting.
        """
        super().check()
        check_holdout(self.holdout)


def train_reader(items, out_dir: str | os.PathLike, settings: ReaderSettings | None = None, *, eval_items=None,
                 **overrides) -> dict[str, Any]:
    """Fine-tune a BERT encoder (its MLM head dropped) as a span-extraction reader.

    Args:
        items: gold pairs (:func:`nlptool.qagen.read_qa_data`); each becomes one example on the
            chunk of its passage that contains the answer.
        out_dir: a Hugging Face model directory + :data:`READER_FILE` + ``metrics.json``, saved
            with :func:`nlptool.paths.atomic_dir` when training and evaluation succeeded (a failed or
            interrupted run leaves no ``out_dir``, or a pre-existing one as it was).
        settings: :class:`ReaderSettings` (default: its defaults): AdamW, linear schedule
            (bf16/fp16 mixed precision on CUDA, :func:`nlptool.training.training_arguments`);
            ``max_minutes`` is a wall-clock budget, the model at that step is saved.
        eval_items: evaluation pairs instead of a held-out share of the articles.
        overrides: fields of :class:`ReaderSettings` to change.

    Returns:
        metrics: example counts, steps, seconds, held-out exact match and char F1.

    Raises:
        UsageError: nothing to train on; bad settings; ``out_dir`` an existing file or in a
            missing directory (checked before the model loads). ModelError: the start model cannot
            be loaded.
    """
    import tempfile

    import torch

    from ..models import load_model
    from ..paths import atomic_dir, check_out_dir
    from ..training import pad_batch, quiet_trainer, trainer_callbacks, training_arguments
    from . import chunk_with_answer, split_articles

    st = ReaderSettings.build(settings, overrides)
    check_out_dir(out_dir)
    st.check()
    model, seed, epochs, max_steps, batch_size = st.model, st.seed, st.epochs, st.max_steps, st.batch_size
    max_passage_chars, max_question_len, max_answer_len = st.max_passage_chars, st.max_question_len, st.max_answer_len
    log = st.say
    out = Path(out_dir)
    loaded = load_model(model, kind="question-answering", device=st.device, fp16=False, for_training=True)
    tok, net, dev = loaded.tokenizer, loaded.model, loaded.device
    if eval_items is None:
        train_items, held_items = split_articles(items, st.holdout, seed)
    else:
        train_items, held_items = list(items), list(eval_items)
    rows, dropped = [], 0
    for it in train_items:
        ch = chunk_with_answer(it.passage, it.answer_start, it.answer, max_passage_chars)
        row = None
        if ch is not None:
            row = encode_reader_example(tok, ch[1], it.question, it.answer_start - ch[0], it.answer,
                                        max_question_len=max_question_len, max_length=loaded.max_length)
        if row is None:
            dropped += 1
            continue
        rows.append({k: row[k] for k in ("input_ids", "token_type_ids", "start_positions", "end_positions")})
    if not rows:
        raise UsageError("no reader training examples (answers longer than the passage chunk?)")
    log(f"{len(rows):,} reader examples from {len({i.article for i in train_items}):,} articles "
        f"({dropped} dropped); {len(held_items):,} held-out questions")

    def collate(batch):
        return pad_batch(batch, {"input_ids": 0, "token_type_ids": 0}, scalars=("start_positions", "end_positions"))

    from transformers import Trainer

    steps_per_epoch = (len(rows) + batch_size - 1) // batch_size
    scratch = tempfile.TemporaryDirectory(prefix="nlptool-trainer-")  # the Trainer's output_dir: nothing is saved there
    args = training_arguments(
        scratch.name, dev, per_device_train_batch_size=batch_size, num_train_epochs=epochs,
        max_steps=max_steps or -1, learning_rate=st.learning_rate,
        warmup_steps=int(st.warmup_ratio * (max_steps or epochs * steps_per_epoch)), weight_decay=st.weight_decay,
        logging_steps=50, save_strategy="no", eval_strategy="no", seed=seed, remove_unused_columns=False,
    )
    callbacks = trainer_callbacks(st, save=False)
    net.train()
    trainer = quiet_trainer(Trainer(model=net, args=args, train_dataset=rows, data_collator=collate, callbacks=callbacks))
    t0 = time.time()
    with scratch:
        trainer.train()
    seconds = time.time() - t0
    net.eval()
    held = evaluate_reader(loaded, held_items, max_passage_chars=max_passage_chars, max_answer_len=max_answer_len) \
        if held_items else None
    settings_file = {"max_passage_chars": max_passage_chars, "max_question_len": max_question_len,
                     "max_answer_len": max_answer_len, "base_model": str(model),
                     "format": "[CLS] question [SEP] passage [SEP] -> start/end"}
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    metrics = {
        "kind": "reader", "base_model": str(model), "train_examples": len(rows), "dropped": dropped,
        "train_articles": len({i.article for i in train_items}),
        "heldout_articles": sorted({i.article for i in held_items}), "heldout_examples": len(held_items),
        "steps": trainer.state.global_step, "epochs": trainer.state.epoch, "seconds": round(seconds, 1),
        "device": str(dev), "batch_size": batch_size, "learning_rate": st.learning_rate,
        "final_train_loss": losses[-1] if losses else None, "heldout": held, "settings": settings_file,
        "torch_threads": torch.get_num_threads(),
    }
    with atomic_dir(out) as stage:
        stage = Path(stage)
        net.save_pretrained(stage, safe_serialization=True)
        tok.save_pretrained(stage)
        (stage / READER_FILE).write_text(json.dumps(settings_file, indent=1) + "\n", encoding="utf-8")
        (stage / "metrics.json").write_text(json.dumps(metrics, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return metrics
