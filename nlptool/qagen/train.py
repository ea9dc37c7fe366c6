"""Training the UniLM question-answer generator: its settings (:class:`QAGenSettings`), the batch
collator, the ``Trainer`` subclass whose loss is :func:`nlptool.qagen.unilm.seq2seq_loss`, and
:func:`train_qa_gen`."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ModelError, UsageError
from ..training import TrainSettings, check_holdout
from .data import DEFAULTS, SETTINGS_FILE, QAItem, build_examples, split_articles


@dataclass(kw_only=True)
class QAGenSettings(TrainSettings):
    """The settings of ``nlptool train qa-gen`` (:func:`train_qa_gen`): the shared
    :class:`nlptool.training.TrainSettings` plus:

    Attributes:
        model: the masked LM to start from (built-in name, directory or hub id); its MLM head
            becomes the generator.
        holdout: share of the articles held out for the validation loss (:func:`split_articles`)
            when no evaluation items are given, in [0, 1).
        max_passage_chars, max_answer_len, max_question_len: passage chunk in characters; answer
            and question in tokens (longer answers are dropped, longer questions truncated).
        answer_marks: mark the answer span inside the passage with segment id 1 for the question
            (:func:`nlptool.qagen.data.encode_marked_examples`; two examples per pair).
        label_smoothing: in [0, 1), on the training loss only (validation loss stays plain NLL).
        no_repeat_ngram, length_penalty: decoding defaults of question beam search stored with
            the model (:data:`SETTINGS_FILE`).
        decoding: other decoding defaults stored with the model (``beam_size``, ``top_p``,
            ``min_consistency``), over :data:`DEFAULTS`.
        resume: continue from the last checkpoint in ``OUT.work/checkpoints``.
    """

    model: str = "zh-bert-mini"
    epochs: float = 10.0
    batch_size: int = 32
    learning_rate: float = 2e-4
    warmup_ratio: float = 0.05
    holdout: float = 0.1
    max_passage_chars: int = DEFAULTS["max_passage_chars"]
    max_answer_len: int = DEFAULTS["max_answer_len"]
    max_question_len: int = DEFAULTS["max_question_len"]
    answer_marks: bool = True
    label_smoothing: float = 0.0
    no_repeat_ngram: int = DEFAULTS["no_repeat_ngram"]
    length_penalty: float = DEFAULTS["length_penalty"]
    decoding: dict[str, Any] = field(default_factory=dict)
    resume: bool = False

    def check(self) -> None:
        """The shared rules, plus ``holdout`` and ``label_smoothing`` in [0, 1).

        Raises:
            UsageError: one line naming the setting.
        """
        super().check()
        check_holdout(self.holdout)
        if not 0.0 <= self.label_smoothing < 1.0:
            raise UsageError(f"label smoothing {self.label_smoothing}: expected a value in [0, 1)")


class _Examples:
    def __init__(self, rows: list[dict]):
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict:
        return self.rows[i]


def _collate(pad_id: int):
    """Padded batches (:func:`nlptool.training.pad_batch`; segment id 1 after the passage, so
    also in the padding) with ``source_mask``: True on each row's first ``source_len`` positions."""
    import torch

    from ..training import pad_batch

    def collate(batch: list[dict]) -> dict:
        out = pad_batch(batch, {"input_ids": pad_id, "token_type_ids": 1})
        n = out["input_ids"].shape[1]
        out["source_mask"] = torch.arange(n)[None, :] < torch.as_tensor([b["source_len"] for b in batch])[:, None]
        return out

    return collate


def _Seq2SeqTrainer(label_smoothing: float = 0.0):
    """A ``transformers.Trainer`` whose training loss is the UniLM seq2seq cross-entropy
    (:func:`nlptool.qagen.unilm.seq2seq_loss`, with ``label_smoothing``) and whose evaluation loss is the
    plain one (nats per target token, comparable across settings)."""
    import torch
    from transformers import Trainer

    from .unilm import seq2seq_loss

    def loss_of(model, inputs, smoothing):
        return seq2seq_loss(model, inputs["input_ids"], inputs["token_type_ids"], inputs["attention_mask"],
                            source_mask=inputs["source_mask"], label_smoothing=smoothing)

    class Seq2SeqTrainer(Trainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            loss = loss_of(model, inputs, label_smoothing)
            return (loss, None) if return_outputs else loss

        def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
            inputs = self._prepare_inputs(inputs)
            with torch.no_grad():
                loss = loss_of(model, inputs, 0.0)
            return loss.detach(), None, None

    return Seq2SeqTrainer


def train_qa_gen(items: Sequence[QAItem], out_dir: str | os.PathLike, settings: QAGenSettings | None = None, *,
                 eval_items: Sequence[QAItem] | None = None, **overrides) -> dict[str, Any]:
    """Fine-tune a BERT masked LM as a UniLM question-answer generator (Su 2020-07-25).

    Args:
        items: gold pairs (:func:`read_qa_data`).
        out_dir: output directory: a Hugging Face model directory (config, safetensors, tokenizer)
            plus :data:`SETTINGS_FILE` (the length limits and decoding defaults) and
            ``metrics.json``, saved with :func:`nlptool.paths.atomic_dir` when training succeeded (a
            failed or interrupted run leaves no ``out_dir``, or a pre-existing one as it was).
            Checkpoints go to ``OUT.work/checkpoints`` (one per epoch, the two last kept; see
            :func:`nlptool.training.checkpoint_dir`), kept after the run for ``resume``.
        settings: :class:`QAGenSettings` (default: its defaults): AdamW with linear warm-up and
            decay; ``max_steps`` instead of ``epochs``; ``max_minutes`` stops and keeps the best
            checkpoint by validation loss; fp16/bf16 mixed precision on CUDA; ``resume`` continues
            from the last checkpoint (without it an earlier run's checkpoints are removed first).
        eval_items: validation pairs instead of a held-out share of the articles.
        overrides: fields of :class:`QAGenSettings` to change (``epochs=2``, ``log=print``).

    Returns:
        metrics dict: example counts, steps, seconds, validation loss (nats per target token)
        per epoch and of the saved model.

    Raises:
        UsageError: nothing left to train on; bad settings (:meth:`QAGenSettings.check`);
            ``out_dir`` an existing file or in a missing directory (checked before the model loads).
        ModelError: the starting model cannot be loaded.
    """
    import torch
    from transformers import TrainerCallback

    from ..models import load_model
    from ..paths import atomic_dir, check_out_dir
    from ..training import checkpoint_dir, quiet_trainer, trainer_callbacks, training_arguments

    st = QAGenSettings.build(settings, overrides)
    check_out_dir(out_dir)
    st.check()
    model, holdout, seed, epochs, max_steps, batch_size = st.model, st.holdout, st.seed, st.epochs, st.max_steps, st.batch_size
    answer_marks, label_smoothing, learning_rate = st.answer_marks, st.label_smoothing, st.learning_rate
    log = st.say
    out = Path(out_dir)
    loaded = load_model(model, kind="masked-lm", device=st.device, fp16=False, for_training=True)
    tok, net, dev = loaded.tokenizer, loaded.model, loaded.device
    if not hasattr(net, "cls") and not hasattr(net, "lm_head"):
        raise ModelError(f"{model}: no masked-LM head (the generator); start from a BERT-family masked LM such as zh-bert-mini")
    if eval_items is None:
        train_items, held_items = split_articles(items, holdout, seed)
    else:
        train_items, held_items = list(items), list(eval_items)
    limits = {"max_passage_chars": st.max_passage_chars, "max_answer_len": st.max_answer_len,
              "max_question_len": st.max_question_len}
    train_ex, train_counts = build_examples(tok, train_items, answer_marks=answer_marks, **limits)
    held_ex, held_counts = build_examples(tok, held_items, answer_marks=answer_marks, **limits)
    if not train_ex:
        raise UsageError("no training examples left (answers longer than --max-answer-len?)")
    log(
        f"{len(train_ex):,} training examples from {len({i.article for i in train_items}):,} articles, "
        f"{len(held_ex):,} held-out from {len({i.article for i in held_items}):,} "
        f"({train_counts['dropped_answer_too_long'] + held_counts['dropped_answer_too_long']} dropped: answer too long)"
    )
    with checkpoint_dir(out, resume=st.resume, log=st.log) as (ckpt_dir, resume_from):
        net.train()
        args = training_arguments(
            ckpt_dir,
            dev,
            per_device_train_batch_size=batch_size,
            per_device_eval_batch_size=batch_size * 2,
            num_train_epochs=epochs,
            max_steps=max_steps or -1,
            learning_rate=learning_rate,
            warmup_steps=int(st.warmup_ratio * (max_steps or epochs * ((len(train_ex) + batch_size - 1) // batch_size))),
            weight_decay=st.weight_decay,
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

        callbacks = trainer_callbacks(st, Log())
        trainer = _Seq2SeqTrainer(label_smoothing)(
            model=net, args=args, train_dataset=_Examples(train_ex), eval_dataset=_Examples(held_ex) if held_ex else None,
            data_collator=_collate(tok.pad_token_id), callbacks=callbacks,
        )
        quiet_trainer(trainer)
        t0 = time.time()
        trainer.train(resume_from_checkpoint=str(resume_from) if resume_from is not None else None)
        seconds = time.time() - t0
        training[0] = False
        final_eval = trainer.evaluate()["eval_loss"] if held_ex else None
    net.eval()
    settings = dict(DEFAULTS, **limits)
    settings.update(no_repeat_ngram=st.no_repeat_ngram, length_penalty=st.length_penalty)
    settings.update(st.decoding)
    settings.update(answer_marks=answer_marks, base_model=str(model),
                    format="[CLS] passage [SEP] answer [SEP] question [SEP]")
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
        "label_smoothing": label_smoothing,
        "batch_size": batch_size,
        "learning_rate": learning_rate,
        "history": history,
        "settings": settings,
        "torch_threads": torch.get_num_threads(),
    }
    with atomic_dir(out) as stage:
        stage = Path(stage)
        net.save_pretrained(stage, safe_serialization=True)
        tok.save_pretrained(stage)
        (stage / SETTINGS_FILE).write_text(json.dumps(settings, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        (stage / "metrics.json").write_text(json.dumps(metrics, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return metrics
