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
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import InputDataError, UsageError
from ..records import check_json_field, jsonl_objects
from ..training import Card, TrainSettings, check_holdout, check_int_at_least


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
        InputDataError: a JSONL line is not an object, lacks a key, its text is not a string, its
            label is not a string or an integer, or a label is empty (message names the file and line).
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
                # strict: an unclosed quote is an error (not the rest of the file swallowed into one
                # field), reported at the line where the broken row starts
                reader = csv.DictReader(fh, delimiter="\t" if fmt == "tsv" else ",", strict=True)
                try:
                    header = reader.fieldnames or []
                except csv.Error as exc:
                    raise InputDataError(f"CSV header: {exc}", path, 1) from None
                for k in (text_key, label_key):
                    if k not in header:
                        raise UsageError(
                            f"{path}: no column {k!r} in the header {header}; set --text-key/--label-key"
                        )
                while True:
                    start = reader.line_num + 1
                    try:
                        row = next(reader)
                    except StopIteration:
                        break
                    except csv.Error as exc:
                        raise InputDataError(f"CSV row starting here: {exc} (an unclosed quote?)", path, start) from None
                    _add(texts, labels, where, row[text_key], row[label_key], path, start)
    if not texts:
        raise UsageError("no training rows in " + ", ".join(str(p) for p in paths))
    return LabeledData(texts, labels, where)


def _add(texts, labels, where, text, label, path, lineno) -> None:
    check_json_field(text, "text", ("string", "null"), path, lineno)
    check_json_field(label, "label", ("string", "integer", "null"), path, lineno)
    if label is None or str(label).strip() == "":
        raise InputDataError("empty label", path, lineno)
    texts.append("" if text is None else text)
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


@dataclass(kw_only=True)
class ClassifierSettings(TrainSettings):
    """The settings of ``nlptool train classifier`` (:func:`train_classifier`): the shared
    :class:`nlptool.training.TrainSettings` plus:

    Attributes:
        model: the encoder to start from (built-in name, local directory or hub id); a checkpoint
            without a classification head gets a freshly initialised one.
        holdout: share of the rows held out (stratified, :func:`holdout_split` with ``seed``) when
            no evaluation data is given, in [0, 1).
        max_length: texts are truncated to this many tokens (special tokens included; capped by
            the model's window).
    """

    model: str = "zh-bert-mini"
    epochs: float = 2.0
    batch_size: int = 32
    learning_rate: float = 5e-5
    warmup_ratio: float = 0.06
    holdout: float = 0.2
    max_length: int = 128

    def check(self) -> None:
        """The shared rules, plus ``holdout`` in [0, 1) and ``max_length`` >= 1.

        Raises:
            UsageError: one line naming the setting.
        """
        super().check()
        check_holdout(self.holdout)
        check_int_at_least("the maximum length in tokens", self.max_length, 1)


def train_classifier(data: LabeledData, out_dir: str | os.PathLike, settings: ClassifierSettings | None = None, *,
                     eval_data: LabeledData | None = None, metrics_path: str | os.PathLike | None = None,
                     **overrides) -> dict[str, Any]:
    """Fine-tune ``settings.model`` as a sequence classifier and save it to ``out_dir``.

    Args:
        data: training rows (see :func:`read_labeled`).
        out_dir: output directory: ``config.json`` (with ``id2label``/``label2id``), weights
            (safetensors), tokenizer files, ``metrics.json``; saved with
            :func:`nlptool.paths.atomic_dir` when training succeeded (a failed or interrupted run
            leaves no ``out_dir``, or a pre-existing one as it was; into a pre-existing one the
            model files are moved, its other files are never deleted).
        settings: :class:`ClassifierSettings` (default: its defaults). ``max_steps`` overrides
            ``epochs``; ``max_minutes`` stops training, then evaluates and saves (the metrics say
            ``"stopped_early": true``); fp16/bf16 mixed precision on CUDA; ``log`` gets one line
            per epoch (held-out accuracy/F1) and ``progress`` every step.
        eval_data: evaluation rows instead of a held-out share of ``data``.
        metrics_path: where to write the metrics JSON (default ``out_dir/metrics.json``; written
            whole with :func:`nlptool.paths.atomic_output`, just before the model directory).
        overrides: fields of :class:`ClassifierSettings` to change (``epochs=1``, ``log=print``).

    Returns:
        The metrics dict: ``epochs`` (list of per-epoch ``{"epoch", "accuracy", "f1",
        "eval_loss", "train_loss"}``), ``final``, label names, row counts, wall seconds.

    Raises:
        UsageError: fewer than two labels, bad settings (:meth:`ClassifierSettings.check`),
            ``holdout`` 0 without ``eval_data``, ``out_dir`` an existing file or in a missing
            directory (checked before the model loads).
        ModelError / DeviceError: from :func:`nlptool.models.load_model`.
    """
    import tempfile

    import torch
    from transformers import DataCollatorWithPadding, Trainer, TrainerCallback

    from ..paths import atomic_dir, atomic_output, check_out_dir
    from ..models import load_model
    from ..training import quiet_trainer, trainer_callbacks, training_arguments

    st = ClassifierSettings.build(settings, overrides)
    st.check()
    model, holdout, epochs, batch_size, seed = st.model, st.holdout, st.epochs, st.batch_size, st.seed
    max_steps, learning_rate = st.max_steps, st.learning_rate
    if eval_data is None and holdout <= 0:
        raise UsageError("--holdout 0 needs --eval FILE (nothing would be evaluated)")
    check_out_dir(out_dir)
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
        model, kind="sequence-classification", device=st.device, fp16=False, allow_new_head=True, for_training=True,
        num_labels=len(names), id2label=id2label, label2id=label2id,
    )
    net, tok = loaded.model, loaded.tokenizer
    max_len = min(int(st.max_length), loaded.max_length)

    def encode(texts):
        return dict(tok(list(texts), truncation=True, max_length=max_len))

    train_ds = _Encoded(encode(train_texts), train_labels)
    eval_ds = _Encoded(encode(eval_texts), eval_labels) if eval_texts else None
    out = Path(out_dir)
    scratch = tempfile.TemporaryDirectory(prefix="nlptool-trainer-")  # the Trainer's output_dir: nothing is saved there
    history: list[dict[str, Any]] = []
    t0 = time.time()
    say = st.say

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
        scratch.name,
        loaded.device,
        num_train_epochs=float(epochs),
        max_steps=int(max_steps) if max_steps else -1,
        per_device_train_batch_size=batch_size,
        per_device_eval_batch_size=max(batch_size, 64),
        learning_rate=learning_rate,
        weight_decay=st.weight_decay,
        warmup_steps=int(st.warmup_ratio * (max_steps or steps_per_epoch * epochs)),
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
        callbacks=trainer_callbacks(st, _Report(), save=False, evaluate=eval_ds is not None,
                                    on_stop=lambda: stopped_early.append(True)),
    )
    quiet_trainer(trainer)
    with scratch:
        result = trainer.train()
        if eval_ds is not None and (not history or history[-1]["step"] != trainer.state.global_step):
            trainer.evaluate()
    net.eval()
    net.config.id2label = id2label
    net.config.label2id = label2id
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
    text = json.dumps(metrics, ensure_ascii=False, indent=2) + "\n"
    with atomic_dir(out) as stage:
        trainer.save_model(stage)
        tok.save_pretrained(stage)
        if metrics_path:
            with atomic_output(metrics_path) as fh:
                fh.write(text)
        else:
            Path(stage, "metrics.json").write_text(text, encoding="utf-8")
    return metrics


# --------------------------------------------------------------------------- evaluation and export


def predict(loaded, texts: Sequence[str], *, batch_size: int = 128, max_length: int = 128) -> list[int]:
    """Predicted label index of each text, in order.

    Args:
        loaded: a :class:`nlptool.models.LoadedModel` of kind ``sequence-classification``.
        texts: the texts; each is truncated to ``max_length`` tokens (special tokens included).
        batch_size: texts per forward pass (sorted by length, padded per batch, order restored).
    """
    import torch

    tok, net, dev = loaded.tokenizer, loaded.model, loaded.device
    max_len = min(int(max_length), loaded.max_length)
    from ..batching import length_order

    order = length_order([len(t) for t in texts])
    out = [0] * len(texts)
    with torch.inference_mode():
        for b in range(0, len(order), max(1, batch_size)):
            idx = order[b:b + batch_size]
            enc = tok([texts[i] for i in idx], truncation=True, max_length=max_len, padding=True, return_tensors="pt")
            logits = net(**{k: v.to(dev) for k, v in enc.items()}).logits
            for i, p in zip(idx, logits.argmax(-1).tolist()):
                out[i] = int(p)
    return out


def evaluate_by_group(
    model: str | os.PathLike,
    data: str | os.PathLike,
    *,
    group_key: str = "domain",
    train: str | os.PathLike | None = None,
    device: str = "auto",
    batch_size: int = 128,
    max_length: int = 128,
) -> dict[str, Any]:
    """Accuracy and macro-F1 of a trained classifier on a labelled CSV/JSONL file, overall and per
    group (e.g. per review domain), beside two trivial baselines.

    Args:
        model: the classifier (built-in name, directory or hub id); its ``label2id`` names the labels.
        data: rows with ``text``, ``label`` and ``group_key`` fields (CSV with a header, or JSONL).
        train: the training file; the baselines are fitted on it: *majority* predicts its most
            frequent label, *domain majority* the most frequent label of the row's group in it.
            Without it both baselines are fitted on ``data`` itself (an optimistic baseline).

    Returns:
        ``{"overall": {"n", "accuracy", "f1", "majority", "domain_majority"}, "groups": {name: same},
        "labels": [...]}``; accuracies in [0, 1].

    Raises:
        UsageError / InputDataError: see :func:`read_labeled`; ModelError: the model is not a
        trained classifier, or a label of ``data`` is not one of its labels.
    """
    import csv as _csv
    from collections import Counter

    from ..errors import ModelError
    from ..models import load_model

    def rows_of(path):
        fmt = _format_of(str(path), "auto")
        with open(path, encoding="utf-8-sig", newline="") as fh:
            if fmt == "jsonl":
                return [(str(o.get(group_key, "")), str(o["label"]), str(o["text"])) for _, o in jsonl_objects(fh, str(path))]
            rd = _csv.DictReader(fh, delimiter="\t" if fmt == "tsv" else ",")
            return [(r.get(group_key) or "", r["label"], r["text"]) for r in rd]

    test = rows_of(data)
    fit = rows_of(train) if train else test
    loaded = load_model(model, kind="sequence-classification", device=device)
    label2id = {str(k): int(v) for k, v in loaded.model.config.label2id.items()}
    names = [n for n, _ in sorted(label2id.items(), key=lambda kv: kv[1])]
    bad = sorted({lab for _, lab, _ in test} - set(label2id))
    if bad:
        raise ModelError(f"{model}: labels {bad} of {data} are not labels of the model ({names})")
    pred = predict(loaded, [t for _, _, t in test], batch_size=batch_size, max_length=max_length)
    gold = [label2id[lab] for _, lab, _ in test]
    overall_major = Counter(lab for _, lab, _ in fit).most_common(1)[0][0]
    by_group: dict[str, Counter] = {}
    for g, lab, _ in fit:
        by_group.setdefault(g, Counter())[lab] += 1
    dom_major = [label2id[by_group[g].most_common(1)[0][0]] if g in by_group else label2id[overall_major]
                 for g, _, _ in test]

    def block(idx):
        t = [gold[i] for i in idx]
        m = classification_metrics(t, [pred[i] for i in idx], len(names))
        return {
            "n": len(idx),
            "accuracy": m["accuracy"],
            "f1": m["f1"],
            "majority": classification_metrics(t, [label2id[overall_major]] * len(idx), len(names))["accuracy"],
            "domain_majority": classification_metrics(t, [dom_major[i] for i in idx], len(names))["accuracy"],
        }

    groups: dict[str, list[int]] = {}
    for i, (g, _, _) in enumerate(test):
        groups.setdefault(g, []).append(i)
    return {
        "model": str(model),
        "data": str(data),
        "labels": names,
        "overall": block(list(range(len(test)))),
        "groups": {g: block(idx) for g, idx in sorted(groups.items())},
    }


def card(report: dict[str, Any]) -> Card:
    """The card (:class:`nlptool.training.Card`) of a built-in review classifier, from its build
    report (:func:`finish_builtin`).

    ``report`` keys: ``base`` (model fine-tuned), ``splits`` (the data preparation's
    ``splits.json``), ``train`` (``train_classifier``'s metrics), ``test`` and ``dev``
    (:func:`evaluate_by_group` results), ``quick`` (a smoke build).
    """
    tr, te, sp = report["train"], report["test"], report["splits"]
    domains = sp.get("domains", [])
    summary = (f"nlptool's built-in Chinese review sentiment classifier: a `BertForSequenceClassification` fine-tuned "
               f"from `{report['base']}` by `nlptool train classifier` on Chinese product and hotel reviews, labels "
               "`negative` / `positive` (`id2label` in config.json). It is the default model of `nlptool attribute`.")
    rows = [
        "| | |",
        "|---|---|",
        f"| trained on the domains | {', '.join(domains)} (all other domains are unseen) |",
        f"| data | {', '.join(sp.get('sources', []))} (NLPTOOL_SHARED_DATA); deduplicated on the text "
        f"({sp['dedupe']['rows_unique']:,} unique of {sp['dedupe']['rows_read']:,} rows; "
        f"{sp['dedupe']['rows_conflicting_labels']} rows of texts seen with both labels dropped) |",
        f"| splits | stratified by (domain, label), seed {sp['settings']['seed']}: test {sp['settings']['test']:.0%} "
        f"({sp['splits']['test']['rows']:,} rows, never trained on, reported once), dev {sp['settings']['dev']:.0%} "
        f"({sp['splits']['dev']['rows']:,} rows, per-epoch evaluation and choice of settings), train the rest capped at "
        f"{sp['settings']['cap']} rows per (domain, label) to balance domains ({sp['splits']['train']['rows']:,} rows) |",
        f"| training | {tr['steps']:,} steps of batch {tr['batch_size']}, max length {tr['max_length']} tokens, peak learning "
        f"rate {tr['learning_rate']:g}, {tr['epochs'][-1]['epoch'] if tr.get('epochs') else tr['epochs_planned']} epochs, "
        f"{tr['seconds']:.0f} s on {tr['device']}{' (stopped by the time budget)' if tr.get('stopped_early') else ''} |",
        f"| test accuracy | **{te['overall']['accuracy']:.4f}** (macro-F1 {te['overall']['f1']:.4f}); majority-class baseline "
        f"{te['overall']['majority']:.4f}, per-domain majority {te['overall']['domain_majority']:.4f} |",
    ]
    if report.get("dev"):
        rows.append(f"| dev accuracy | {report['dev']['overall']['accuracy']:.4f} |")
    quality = ["Accuracy per domain on the held-out test split (baselines fitted on the training split):", "",
               "| domain | test rows | accuracy | macro-F1 | majority class | domain majority |",
               "|---|---:|---:|---:|---:|---:|"]
    for g, b in te["groups"].items():
        quality.append(f"| {g} | {b['n']:,} | {b['accuracy']:.4f} | {b['f1']:.4f} | {b['majority']:.4f} | {b['domain_majority']:.4f} |")
    if tr.get("epochs"):
        quality += ["", "Dev accuracy during training:", "", "| epoch | step | dev accuracy | dev loss |", "|---:|---:|---:|---:|"]
        for e in tr["epochs"]:
            quality.append(f"| {e['epoch']:.2f} | {e['step']} | {e['accuracy']:.4f} | {e['eval_loss']:.4f} |")
    limits = ("Reviews only (short, opinionated text); the domains above are all e-commerce products and hotels, so "
              "accuracy on other text (news, social media, other products) is lower; texts beyond "
              f"{tr['max_length']} tokens are truncated.")
    return Card(summary, [("Data and training", "\n".join(rows)), ("Measured quality", "\n".join(quality)),
                          ("Limits", limits)], quick=bool(report.get("quick")))


def finish_builtin(src: str | os.PathLike, name: str, *, data_dir: str | os.PathLike, base: str,
                   train_report: str | os.PathLike, commands: Sequence[str] = (), dest: str | os.PathLike | None = None,
                   device: str = "auto", quick: bool = False) -> dict[str, Any]:
    """Last stage of a built-in classifier's build: evaluate ``src`` (a model of ``train
    classifier``) per domain on ``data_dir/test.csv`` (reported) and ``data_dir/dev.csv``, with
    baselines fitted on ``data_dir/train.csv``, then export it with its card
    (:func:`nlptool.training.export_builtin`, :func:`card`) and the report as ``build_report.json``.

    Args:
        train_report: the metrics JSON ``train classifier --report`` wrote.
        commands: the build commands, for the card.
    Returns:
        The report: ``base``, ``quick``, ``splits``, ``train``, ``test``, ``dev``, ``commands``,
        ``n_params``, ``size_bytes``.
    """
    import tempfile

    from ..training import export_builtin

    data_dir, src = Path(data_dir), Path(src)
    test = evaluate_by_group(src, data_dir / "test.csv", train=data_dir / "train.csv", device=device)
    dev = evaluate_by_group(src, data_dir / "dev.csv", train=data_dir / "train.csv", device=device)
    report: dict[str, Any] = {
        "name": name, "base": base, "quick": bool(quick),
        "splits": json.loads((data_dir / "splits.json").read_text(encoding="utf-8")),
        "train": json.loads(Path(train_report).read_text(encoding="utf-8")),
        "test": test, "dev": dev, "commands": [c for c in commands if c.strip()],
    }
    with tempfile.TemporaryDirectory(prefix="nlptool-report-") as tmp:
        path = Path(tmp, "build_report.json")

        def the_card(facts):
            report.update(n_params=facts["parameters"], size_bytes=facts["size_bytes"])
            path.write_text(json.dumps(report, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
            return card(report)

        export_builtin(src, name, card=the_card, commands=commands, dest=dest, extra_files={"build_report.json": path})
    return report
