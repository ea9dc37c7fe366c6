"""The character tagger (student of `train segmenter`): labels, masked loss, batching, save/load."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from nlptool.tagger import (
    LabelledClause,
    LoadedTagger,
    TaggerVocab,
    fit_tagger,
    join_probabilities,
    load_tagger,
    new_tagger,
    save_tagger,
    teacher_labels,
    word_prf,
)

CHARS = list("的一是了我不人在他有这个上们来到时大地为子中你说生国年着就")


def _vocab():
    return TaggerVocab(["[PAD]", "[UNK]"] + CHARS + ["[NUM]", "[ENG]"])


def test_teacher_labels_hand_example():
    d = np.array([3.0, 1.0, 1.0, 3.0])  # mean 2: ratios 1.5, 0.5, 0.5, 1.5
    lab, w = teacher_labels(d, ratio=1.0, margin=0.4)  # e^0.4 = 1.49: 1.5 joins, 0.5 cuts
    assert lab.tolist() == [1, 0, 0, 1] and w.tolist() == [1, 1, 1, 1]
    lab, w = teacher_labels(d, ratio=1.0, margin=0.5)  # e^0.5 = 1.65: 1.5 unconfident; e^-0.5 = 0.61: 0.5 cuts
    assert w.tolist() == [0, 1, 1, 0] and lab.tolist() == [0, 0, 0, 0]
    # two units: against the fallback, none without it
    assert teacher_labels(np.array([5.0]), ratio=1.0, margin=0.4, fallback=2.0)[1].tolist() == [1]
    assert teacher_labels(np.array([5.0]), ratio=1.0, margin=0.4)[1].tolist() == [0]


def test_word_prf_hand_example():
    gold = [["我们", "的", "国家"]]
    pred = [["我", "们", "的", "国家"]]
    p, r, f = word_prf(gold, pred)  # right: 的, 国家 -> P 2/4, R 2/3
    assert (p, r) == (0.5, 2 / 3) and math.isclose(f, 2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))


def test_vocab_maps_latin_and_digits():
    v = _vocab()
    assert v.id_of("我") == v.index["我"] and v.id_of("龘") == v.unk
    assert v.id_of("2024") == v.num and v.id_of("iPhone") == v.eng


def test_batched_probabilities_equal_one_at_a_time():
    import torch

    torch.manual_seed(0)
    v = _vocab()
    net = new_tagger(v, emb_dim=16, hidden=8).eval()
    tg = LoadedTagger("t", "", v, net, torch.device("cpu"), {})
    rng = random.Random(1)
    clauses = [[rng.randrange(2, len(v)) for _ in range(rng.randint(0, 30))] for _ in range(40)]
    batched = join_probabilities(tg, clauses, batch_size=7)
    for c, p in zip(clauses, batched):
        (alone,) = join_probabilities(tg, [c], batch_size=1)
        assert p.shape == (max(len(c) - 1, 0),)
        np.testing.assert_allclose(p, alone, atol=1e-5)


def _synthetic(v, n, rng, flip_masked=True):
    """Rule: join exactly when the left unit is 的/一/是 (ids 2..4). Masked pairs carry wrong labels."""
    data = []
    for _ in range(n):
        ids = [rng.randrange(2, 2 + len(CHARS)) for _ in range(rng.randint(2, 12))]
        truth = np.array([1.0 if a in (2, 3, 4) else 0.0 for a in ids[:-1]], dtype=np.float32)
        w = np.array([rng.random() < 0.6 for _ in truth], dtype=np.float32)
        labels = np.where(w > 0, truth, 1 - truth) if flip_masked else truth
        data.append(LabelledClause(ids, np.zeros(len(ids) - 1), labels.astype(np.float32), w))
    return data


@pytest.mark.slow
def test_fit_learns_the_rule_and_ignores_masked_pairs():
    import torch

    rng = random.Random(0)
    v = _vocab()
    data = _synthetic(v, 400, rng)
    net = new_tagger(v, emb_dim=16, hidden=16, dropout=0.0)
    fit = fit_tagger(net, data, epochs=15, batch_size=32, learning_rate=1e-2, device=torch.device("cpu"), seed=0)
    kept = sum(1 for c in data if c.weights.sum() > 0)  # clauses with no confident pair are dropped
    assert fit["steps"] == 15 * math.ceil(kept / 32)
    tg = LoadedTagger("t", "", v, net, torch.device("cpu"), {})
    test = _synthetic(v, 100, random.Random(5), flip_masked=False)
    probs = join_probabilities(tg, [c.ids for c in test])
    acc = np.mean(np.concatenate([(p >= 0.5) == (c.labels > 0.5) for c, p in zip(test, probs)]))
    # the masked (weight 0) pairs had the opposite label; learning them would pull accuracy to ~0.6
    assert acc > 0.97


def test_save_load_round_trip(tmp_path):
    import torch

    torch.manual_seed(0)
    v = _vocab()
    net = new_tagger(v, emb_dim=16, hidden=8).eval()
    save_tagger(net, v, tmp_path / "m", {"emb_dim": 16, "hidden": 8, "teacher": "zh-bert-mini"})
    loaded = load_tagger(tmp_path / "m")
    assert loaded.tokenizer.units == v.units and loaded.config["teacher"] == "zh-bert-mini"
    clauses = [[2, 3, 4, 5, 6], [7, 8]]
    a = join_probabilities(LoadedTagger("t", "", v, net, torch.device("cpu"), {}), clauses)
    b = join_probabilities(loaded, clauses)
    for x, y in zip(a, b):
        np.testing.assert_allclose(x, y, atol=2e-3)  # fp16 weights


def test_load_rejects_a_bert_dir(tiny_bert_dir):
    from nlptool.errors import ModelError

    with pytest.raises(ModelError):
        load_tagger(tiny_bert_dir)
