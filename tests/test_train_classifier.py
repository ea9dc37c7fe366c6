"""`nlptool train classifier` (nlptool.attribute.classifier) on a tiny synthetic task.

Checks: the stratified split is a partition with the asked share per label; the metrics agree with
a brute-force count; reading CSV/TSV/JSONL gives the same rows; a tiny BERT (tiny_bert_dir, an MLM
checkpoint, so the classification head is new) trained through the CLI learns a task whose label is
decided by one character (held-out accuracy well above chance, recomputed here from the saved model);
the directory is a normal HF model with id2label; per-epoch metrics reach stderr and the JSON file.
"""

from __future__ import annotations

import csv
import json
import random

import pytest


def test_holdout_split_is_a_stratified_partition():
    from nlptool.attribute.classifier import holdout_split

    labels = ["a"] * 50 + ["b"] * 30 + ["c"] * 3
    tr, ho = holdout_split(labels, 0.2, seed=3)
    assert sorted(tr + ho) == list(range(len(labels)))
    assert not set(tr) & set(ho)
    assert sum(labels[i] == "a" for i in ho) == 10
    assert sum(labels[i] == "b" for i in ho) == 6
    assert sum(labels[i] == "c" for i in ho) == 1
    assert holdout_split(labels, 0.2, seed=3) == (tr, ho)
    assert holdout_split(labels, 0.2, seed=4) != (tr, ho)


def test_metrics_against_brute_force():
    from nlptool.attribute.classifier import classification_metrics

    rng = random.Random(0)
    t = [rng.randrange(3) for _ in range(200)]
    p = [x if rng.random() < 0.7 else rng.randrange(3) for x in t]
    m = classification_metrics(t, p, 3)
    assert m["accuracy"] == pytest.approx(sum(a == b for a, b in zip(t, p)) / 200)
    f1s = []
    for c in range(3):
        tp = sum(a == c and b == c for a, b in zip(t, p))
        prec = tp / sum(b == c for b in p)
        rec = tp / sum(a == c for a in t)
        f1s.append(2 * prec * rec / (prec + rec))
    assert m["f1"] == pytest.approx(sum(f1s) / 3)


def _synthetic(n=240, seed=0):
    """Label 'pos' iff the text contains 好, 'neg' iff it contains 差; the rest is random filler."""
    rng = random.Random(seed)
    filler = list("的一是了我不人在他有这个上们来到时大地为子中你说生国年着就那和要出也得里后自以会家可下而过天去能对小多")
    rows = []
    for i in range(n):
        lab = "pos" if i % 2 == 0 else "neg"
        chars = [rng.choice(filler) for _ in range(rng.randrange(4, 12))]
        chars.insert(rng.randrange(len(chars) + 1), "好" if lab == "pos" else "差")
        rows.append(("".join(chars), lab))
    return rows


def test_read_formats_agree(tmp_path):
    from nlptool.attribute.classifier import read_labeled
    from nlptool.errors import InputDataError, UsageError

    rows = _synthetic(20) + [('含,逗号"引号"', "pos")]
    c = tmp_path / "d.csv"
    with open(c, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["label", "review"])
        w.writerows([(lab, t) for t, lab in rows])
    t = tmp_path / "d.tsv"
    t.write_text("review\tlabel\n" + "".join(f"{x}\t{y}\n" for x, y in rows), encoding="utf-8")
    j = tmp_path / "d.jsonl"
    j.write_text("".join(json.dumps({"review": x, "label": y}, ensure_ascii=False) + "\n" for x, y in rows),
                 encoding="utf-8")
    got = [read_labeled([p], text_key="review") for p in (c, t, j)]
    for g in got:
        assert list(zip(g.texts, g.labels)) == rows
    with pytest.raises(UsageError):
        read_labeled([c], text_key="text")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"review": "a", "label": "x"}\n{"review": "b"}\n', encoding="utf-8")
    with pytest.raises(InputDataError, match="bad.jsonl:2"):
        read_labeled([bad], text_key="review")


@pytest.mark.slow
def test_cli_training_learns_and_saves_a_hf_directory(tiny_bert_dir, tmp_path):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from typer.testing import CliRunner

    from nlptool.attribute.classifier import holdout_split
    from nlptool.cli import app

    rows = _synthetic(240)
    data = tmp_path / "train.csv"
    with open(data, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["review", "label"])
        w.writerows(rows)
    out = tmp_path / "clf"
    res = CliRunner().invoke(app, [
        "train", "classifier", str(data), "--out", str(out), "--model", tiny_bert_dir, "--text-key", "review",
        "--holdout", "0.25", "--epochs", "4", "--batch-size", "16", "--learning-rate", "3e-3", "--device", "cpu",
        "--seed", "0",
    ])
    assert res.exit_code == 0, res.output
    assert res.output.count("held-out accuracy") == 4  # one line per epoch on stderr
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert [round(e["epoch"]) for e in metrics["epochs"]] == [1, 2, 3, 4]
    assert metrics["n_train"] == 180 and metrics["n_heldout"] == 60
    assert metrics["labels"] == ["neg", "pos"]

    # a normal HF directory with label names, reloaded without nlptool
    model = AutoModelForSequenceClassification.from_pretrained(out)
    tok = AutoTokenizer.from_pretrained(out)
    assert model.config.id2label == {0: "neg", 1: "pos"}
    model.eval()
    _, ho = holdout_split([lab for _, lab in rows], 0.25, seed=0)
    texts = [rows[i][0] for i in ho]
    gold = [model.config.label2id[rows[i][1]] for i in ho]
    with torch.no_grad():
        enc = tok(texts, padding=True, return_tensors="pt")
        pred = model(**enc).logits.argmax(-1).tolist()
    acc = sum(a == b for a, b in zip(pred, gold)) / len(gold)
    assert acc == pytest.approx(metrics["final"]["accuracy"], abs=1e-9)
    assert acc >= 0.8  # chance is 0.5


def test_sentiment_splits_are_disjoint_and_stratified():
    """scripts/prepare_sentiment_data.py: duplicates (also across files) and label conflicts removed
    before splitting, so no test text is trained on; each (domain, label) cell split by share; cap."""
    import sys
    from collections import Counter
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
    import prepare_sentiment_data as prep

    rows = [(d, lab, f"{d}{lab}{i}") for d in ("书籍", "酒店") for lab in ("negative", "positive") for i in range(100)]
    rows += [("酒店", "positive", "书籍negative3")]  # same text, other label: both copies dropped
    rows += [("书籍", "positive", "书籍positive7")]  # exact duplicate: one kept
    uniq, stats = prep.dedupe(rows)
    assert stats["rows_conflicting_labels"] == 2 and len(uniq) == 399
    parts = prep.split(uniq, test=0.1, dev=0.05, cap=50, seed=1)
    texts = {k: [t for _, _, t in v] for k, v in parts.items()}
    assert not set(texts["test"]) & set(texts["train"]) and not set(texts["dev"]) & set(texts["train"])
    assert not set(texts["test"]) & set(texts["dev"])
    cells = Counter((d, lab) for d, lab, _ in parts["test"])
    assert set(cells.values()) == {10}
    assert set(Counter((d, lab) for d, lab, _ in parts["train"]).values()) == {50}
    assert prep.split(uniq, test=0.1, dev=0.05, cap=50, seed=1) == parts


def test_card_is_generated_from_the_report():
    from nlptool.attribute.classifier import card
    from nlptool.training import render_card

    block = {"n": 10, "accuracy": 0.9, "f1": 0.89, "majority": 0.5, "domain_majority": 0.6}
    report = {
        "name": "zh-x", "base": "zh-bert-mini", "n_params": 4_700_000, "size_bytes": 9_400_000,
        "splits": {"sources": ["a.csv"], "domains": ["书籍", "酒店"], "settings": {"seed": 13, "test": 0.1, "dev": 0.05, "cap": 4000},
                   "dedupe": {"rows_unique": 90, "rows_read": 100, "rows_conflicting_labels": 2},
                   "splits": {"train": {"rows": 70}, "dev": {"rows": 10}, "test": {"rows": 20}}},
        "train": {"steps": 123, "batch_size": 128, "max_length": 128, "learning_rate": 2e-4, "epochs_planned": 3,
                  "seconds": 61.0, "device": "cuda", "epochs": [{"epoch": 1.0, "step": 41, "accuracy": 0.8, "eval_loss": 0.4}]},
        "test": {"overall": block, "groups": {"书籍": block, "酒店": {**block, "accuracy": 0.95}}},
        "dev": {"overall": block},
    }
    facts = {"kind": "sequence-classification", "default_for": ["attribute"], "files": ["config.json"],
             "size_bytes": 9_400_000, "parameters": 4_700_000}
    text = render_card("zh-x", card(report), facts=facts, commands=["sh scripts/models/build.sh zh-x"])
    assert "| 酒店 | 10 | 0.9500 |" in text and "书籍, 酒店" in text
    assert "**0.9000**" in text and "123 steps of batch 128" in text and "sh scripts/models/build.sh zh-x" in text
    assert "9.4 MB, 4,700,000 parameters" in text and "`nlptool attribute`" in text


def test_training_data_contract_non_string_text_and_unclosed_quote(tmp_path):
    """JSONL with a list text / dict label and a CSV with an unclosed quote are
    bad input data (InputDataError, exit 3) naming the file and the line where the row starts."""
    from nlptool.attribute.classifier import read_labeled
    from nlptool.errors import InputDataError

    j = tmp_path / "bad.jsonl"
    j.write_text('{"text": "好", "label": 1}\n{"text": ["a"], "label": 0}\n', encoding="utf-8")
    with pytest.raises(InputDataError, match=r"bad\.jsonl:2: the text is a JSON list"):
        read_labeled([str(j)])
    j.write_text('{"text": "好", "label": {"x": 1}}\n', encoding="utf-8")
    with pytest.raises(InputDataError, match=r"bad\.jsonl:1: the label is a JSON dict"):
        read_labeled([str(j)])
    c = tmp_path / "bad.csv"
    c.write_text('label,text\n1,"fine, quoted"\n0,ok\n1,"unclosed\n0,more\n', encoding="utf-8")
    with pytest.raises(InputDataError, match=r"bad\.csv:4: CSV row starting here"):
        read_labeled([str(c)])
    good = tmp_path / "good.csv"
    good.write_text('label,text\n1,"a, b"\n0,"x\ny"\n1,z\n', encoding="utf-8")
    d = read_labeled([str(good)])
    assert d.texts == ["a, b", "x\ny", "z"] and d.where == [f"{good}:2", f"{good}:3", f"{good}:5"]
