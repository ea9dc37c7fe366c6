"""Fine-tune a sequence classifier (``AutoModelForSequenceClassification``) on ``text,label`` data.

The library behind ``nlptool train classifier``: read CSV/TSV/JSONL rows, hold out a stratified
fraction, fine-tune with the transformers ``Trainer`` (cross-entropy, AdamW, linear decay), report
held-out accuracy and macro-F1 after every epoch, and save a normal Hugging Face model directory
whose ``config.json`` carries the label names (``id2label`` / ``label2id``), so that
``nlptool attribute --model DIR`` and ``AutoModelForSequenceClassification.from_pretrained(DIR)``
show names instead of ``LABEL_0``.

Reference: Devlin et al., "BERT: Pre-training of Deep Bidirectional Transformers" (NAACL 2019),
section 4.1 (the [CLS] vector through a linear layer, all weights fine-tuned).
"""

from __future__ import annotations

import csv
import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import InputDataError, UsageError
from .io import jsonl_objects


@dataclass
class LabeledData:
    """Parallel lists of texts and label strings, plus where each row came from (``file:line``)."""

    texts: list[str]
    labels: list[str]
    where: list[str]


def _format_of(path: str, data_format: str) -> str:
    if data_format != "auto":
        if data_format not in ("csv", "tsv", "jsonl"):
            raise UsageError(f"--data-format {data_format}: expected auto, csv, tsv or jsonl")
        return data_format
    low = path.lower()
    if low.endswith((".jsonl", ".json", ".ndjson")):
        return "jsonl"
    if low.endswith((".tsv", ".tab")):
        return "tsv"
    return "csv"


def read_labeled(
    paths: Sequence[str | os.PathLike],
    *,
    text_key: str = "text",
    label_key: str = "label",
    data_format: str = "auto",
) -> LabeledData:
    """Read ``text,label`` rows from CSV/TSV files (with a header row) or JSONL files.

    The format comes from the extension (``.csv``; ``.tsv``/``.tab``; ``.jsonl``/``.json``/``.ndjson``)
    unless ``data_format`` says ``csv|tsv|jsonl``. Labels are kept as strings (``1`` and ``"1"``
    are the same label). Rows with an empty text are kept (the model sees ``[CLS] [SEP]``).

    Raises:
        UsageError: a file is missing, or the header lacks ``text_key``/``label_key``.
        InputDataError: a JSONL line is not an object, lacks a key, or a label is empty
            (message names the file and line).
    """
    texts: list[str] = []
    labels: list[str] = []
    where: list[str] = []
    for p in paths:
        path = str(p)
        if not os.path.isfile(path):
            raise UsageError(f"{path}: no such file (training data: CSV/TSV with a header, or JSONL)")
        fmt = _format_of(path, data_format)
        with open(path, encoding="utf-8-sig", newline="") as fh:
            if fmt == "jsonl":
                for lineno, obj in jsonl_objects(fh, path):
                    for k in (text_key, label_key):
                        if k not in obj:
                            raise InputDataError(f"missing key {k!r} (set --text-key/--label-key)", path, lineno)
                    _add(texts, labels, where, obj[text_key], obj[label_key], path, lineno)
            else:
                reader = csv.DictReader(fh, delimiter="\t" if fmt == "tsv" else ",")
                header = reader.fieldnames or []
                for k in (text_key, label_key):
                    if k not in header:
                        raise UsageError(
                            f"{path}: no column {k!r} in the header {header}; set --text-key/--label-key"
                        )
                for row in reader:
                    _add(texts, labels, where, row[text_key], row[label_key], path, reader.line_num)
    if not texts:
        raise UsageError("no training rows in " + ", ".join(str(p) for p in paths))
    return LabeledData(texts, labels, where)


def _add(texts, labels, where, text, label, path, lineno) -> None:
    if label is None or str(label).strip() == "":
        raise InputDataError("empty label", path, lineno)
    texts.append("" if text is None else str(text))
    labels.append(str(label).strip())
    where.append(f"{path}:{lineno}")


def label_names(labels: Sequence[str]) -> list[str]:
    """Sorted distinct labels; integer-looking labels sort numerically (``0, 1, 2, 10``)."""
    uniq = set(labels)
    if all(s.lstrip("-").isdigit() for s in uniq):
        return sorted(uniq, key=int)
    return sorted(uniq)


def holdout_split(labels: Sequence[str], fraction: float = 0.2, seed: int = 0) -> tuple[list[int], list[int]]:
    """Stratified split of row indices into (train, held-out), deterministic for ``seed``.

    ``fraction`` in (0, 1): share of each label's rows held out (rounded, at least one row of a
    label with two or more rows). Returns sorted index lists.

    Raises:
        UsageError: ``fraction`` outside (0, 1).
    """
    import numpy as np

    if not 0.0 < fraction < 1.0:
        raise UsageError(f"--holdout {fraction}: expected a fraction in (0, 1)")
    rng = np.random.default_rng(seed)
    train: list[int] = []
    held: list[int] = []
    by_label: dict[str, list[int]] = {}
    for i, lab in enumerate(labels):
        by_label.setdefault(lab, []).append(i)
    for lab in sorted(by_label):
        idx = np.array(by_label[lab])
        rng.shuffle(idx)
        k = int(round(fraction * len(idx)))
        if len(idx) >= 2:
            k = min(max(k, 1), len(idx) - 1)
        else:
            k = 0
        held.extend(int(i) for i in idx[:k])
        train.extend(int(i) for i in idx[k:])
    return sorted(train), sorted(held)


def classification_metrics(y_true: Sequence[int], y_pred: Sequence[int], n_labels: int) -> dict[str, float]:
    """Accuracy and macro-F1 (mean over labels of per-label F1; a label never predicted nor
    present counts as F1 = 0 only if it occurs in ``y_true`` or ``y_pred``). Both in [0, 1]."""
    import numpy as np

    t = np.asarray(y_true)
    p = np.asarray(y_pred)
    acc = float((t == p).mean()) if len(t) else 0.0
    f1s = []
    for c in range(n_labels):
        tp = int(((p == c) & (t == c)).sum())
        fp = int(((p == c) & (t != c)).sum())
        fn = int(((p != c) & (t == c)).sum())
        if tp + fp + fn == 0:
            continue
        f1s.append(2 * tp / (2 * tp + fp + fn))
    return {"accuracy": acc, "f1": float(np.mean(f1s)) if f1s else 0.0}


class _Encoded:
    """A list-like torch dataset of tokenized rows (``input_ids``, ``attention_mask``, ``labels``)."""

    def __init__(self, enc: dict[str, list], labels: list[int]):
        self.enc = enc
        self.labels = labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict[str, Any]:
        item = {k: v[i] for k, v in self.enc.items()}
        item["labels"] = self.labels[i]
        return item


def train_classifier(
    data: LabeledData,
    out_dir: str | os.PathLike,
    *,
    model: str = "zh-bert-mini",
    holdout: float = 0.2,
    eval_data: LabeledData | None = None,
    epochs: float = 2.0,
    batch_size: int = 32,
    learning_rate: float = 5e-5,
    weight_decay: float = 0.01,
    warmup_ratio: float = 0.06,
    max_length: int = 128,
    max_minutes: float | None = None,
    seed: int = 0,
    device: str = "auto",
    metrics_path: str | os.PathLike | None = None,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Fine-tune ``model`` as a sequence classifier and save it to ``out_dir``.

    Args:
        data: training rows (see :func:`read_labeled`).
        out_dir: output directory: ``config.json`` (with ``id2label``/``label2id``), weights
            (safetensors), tokenizer files, ``metrics.json``.
        model: built-in name, local directory or hub id of any encoder; a checkpoint without a
            classification head gets a freshly initialised one.
        holdout: fraction of ``data`` held out (stratified, :func:`holdout_split` with ``seed``);
            ignored when ``eval_data`` is given.
        epochs: passes over the training rows (may be fractional).
        max_length: texts are truncated to this many tokens (special tokens included; capped by
            the model's window).
        max_minutes: stop training after this many minutes of wall time, then evaluate and save
            (the metrics say ``"stopped_early": true``).
        device: ``auto|cpu|cuda|cuda:N``; fp16 mixed precision on CUDA.
        metrics_path: where to write the metrics JSON (default ``out_dir/metrics.json``).
        log: called with one line per epoch (held-out accuracy/F1) and at the end.

    Returns:
        The metrics dict: ``epochs`` (list of per-epoch ``{"epoch", "accuracy", "f1",
        "eval_loss", "train_loss"}``), ``final``, label names, row counts, wall seconds.

    Raises:
        UsageError: fewer than two labels, bad ``holdout``.
        ModelError / DeviceError: from :func:`nlptool.models.load_model`.
    """
    import torch
    from transformers import DataCollatorWithPadding, Trainer, TrainerCallback

    from .models import load_model
    from .training import quiet_trainer, time_budget, training_arguments

    names = label_names(data.labels + (eval_data.labels if eval_data else []))
    if len(names) < 2:
        raise UsageError(f"need at least two distinct labels to train a classifier, found {names}")
    label2id = {n: i for i, n in enumerate(names)}
    id2label = {i: n for n, i in label2id.items()}
    if eval_data is None:
        tr_idx, ho_idx = holdout_split(data.labels, holdout, seed)
        train_texts = [data.texts[i] for i in tr_idx]
        train_labels = [label2id[data.labels[i]] for i in tr_idx]
        eval_texts = [data.texts[i] for i in ho_idx]
        eval_labels = [label2id[data.labels[i]] for i in ho_idx]
    else:
        train_texts, train_labels = data.texts, [label2id[x] for x in data.labels]
        eval_texts, eval_labels = eval_data.texts, [label2id[x] for x in eval_data.labels]

    torch.manual_seed(seed)
    loaded = load_model(
        model, kind="sequence-classification", device=device, fp16=False,
        num_labels=len(names), id2label=id2label, label2id=label2id,
    )
    net, tok = loaded.model, loaded.tokenizer
    max_len = min(int(max_length), loaded.max_length)

    def encode(texts):
        return dict(tok(list(texts), truncation=True, max_length=max_len))

    train_ds = _Encoded(encode(train_texts), train_labels)
    eval_ds = _Encoded(encode(eval_texts), eval_labels) if eval_texts else None
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    history: list[dict[str, Any]] = []
    t0 = time.time()
    say = log or (lambda s: None)

    def compute_metrics(pred):
        import numpy as np

        logits = pred.predictions[0] if isinstance(pred.predictions, tuple) else pred.predictions
        return classification_metrics(pred.label_ids, np.argmax(logits, axis=-1), len(names))

    stopped_early: list[bool] = []

    class _Report(TrainerCallback):
        def on_evaluate(self, args, state, control, metrics=None, **kw):
            train_losses = [h["loss"] for h in state.log_history if "loss" in h]
            row = {
                "epoch": round(float(state.epoch or 0.0), 3),
                "step": int(state.global_step),
                "accuracy": float(metrics.get("eval_accuracy", float("nan"))),
                "f1": float(metrics.get("eval_f1", float("nan"))),
                "eval_loss": float(metrics.get("eval_loss", float("nan"))),
                "train_loss": float(train_losses[-1]) if train_losses else None,
                "seconds": round(time.time() - t0, 1),
            }
            if history and history[-1]["step"] == row["step"]:
                return  # the same point evaluated twice (time stop at an epoch end)
            history.append(row)
            say(
                f"epoch {row['epoch']:.2f} (step {row['step']}): held-out accuracy {row['accuracy']:.4f}, "
                f"macro-F1 {row['f1']:.4f}, loss {row['eval_loss']:.4f}, {row['seconds']:.0f} s"
            )

    steps_per_epoch = max(1, -(-len(train_ds) // batch_size))
    args = training_arguments(
        out / "_trainer",
        loaded.device,
        num_train_epochs=float(epochs),
        per_device_train_batch_size=batch_size,
        per_device_eval_batch_size=max(batch_size, 64),
        learning_rate=learning_rate,
        weight_decay=weight_decay,
        warmup_steps=int(warmup_ratio * steps_per_epoch * epochs),
        eval_strategy="epoch" if eval_ds is not None else "no",
        save_strategy="no",
        logging_strategy="steps",
        logging_steps=max(1, min(50, steps_per_epoch)),
        seed=seed,
        train_sampling_strategy="group_by_length",
    )
    net.train()
    trainer = Trainer(
        model=net,
        args=args,
        train_dataset=train_ds,
        eval_dataset=eval_ds,
        data_collator=DataCollatorWithPadding(tok),
        compute_metrics=compute_metrics,
        callbacks=[_Report()] + ([] if max_minutes is None else [
            time_budget(max_minutes, save=False, evaluate=eval_ds is not None, on_stop=lambda: stopped_early.append(True))
        ]),
    )
    quiet_trainer(trainer)
    result = trainer.train()
    if eval_ds is not None and (not history or history[-1]["step"] != trainer.state.global_step):
        trainer.evaluate()
    net.eval()
    net.config.id2label = id2label
    net.config.label2id = label2id
    trainer.save_model(str(out))
    tok.save_pretrained(str(out))
    _rm_tree(out / "_trainer")
    metrics = {
        "model": loaded.name,
        "labels": names,
        "n_train": len(train_ds),
        "n_heldout": len(eval_ds) if eval_ds is not None else 0,
        "holdout": holdout if eval_data is None else None,
        "seed": seed,
        "max_length": max_len,
        "batch_size": batch_size,
        "learning_rate": learning_rate,
        "epochs_planned": epochs,
        "device": str(loaded.device),
        "epochs": history,
        "final": history[-1] if history else None,
        "train_loss": float(result.training_loss),
        "steps": int(trainer.state.global_step),
        "stopped_early": bool(stopped_early),
        "seconds": round(time.time() - t0, 1),
    }
    mpath = Path(metrics_path) if metrics_path else out / "metrics.json"
    mpath.parent.mkdir(parents=True, exist_ok=True)
    mpath.write_text(json.dumps(metrics, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return metrics


def _rm_tree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)
