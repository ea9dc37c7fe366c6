"""The character tagger (student of `train segmenter`): labels, masked loss, batching, save/load."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from nlptool.segment.train import LabelledClause, fit_tagger, teacher_labels, word_prf
from nlptool.segment.tagger import LoadedTagger, TaggerVocab, join_probabilities, load_tagger, new_tagger, save_tagger

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


# ------------------------------------------------------------------ unigram lexicon + semi-Markov decode


def _brute_force_joins(keys, p, lex, weight, bonus, oov_scale=None):
    """Enumerate all 2^(n-1) segmentations and score them by the formula of lexicon_decode."""
    import itertools

    from nlptool.segment.lexicon import Lexicon  # noqa: F401

    n = len(keys)
    best, arg = -math.inf, None
    q = np.clip(p, 1e-6, 1 - 1e-6)
    for bits in itertools.product([0, 1], repeat=n - 1):
        s, start, ok = 0.0, 0, True
        for k in range(n):
            if k == n - 1 or not bits[k]:
                w = "".join(keys[start : k + 1])
                if len(w) > lex.max_len or (len(w) > 1 and w not in lex.logp and oov_scale is None):
                    ok = False
                    break
                if len(w) > 1 and w not in lex.logp:
                    s += weight * oov_scale * lex.unk_logp * len(w) + bonus
                else:
                    s += weight * lex.logp.get(w, lex.unk_logp) + bonus
                start = k + 1
        if not ok:
            continue
        s += sum(math.log(q[k]) if bits[k] else math.log(1 - q[k]) for k in range(n - 1))
        if s > best + 1e-9:
            best, arg = s, np.array(bits, dtype=bool)
    return arg


def test_lexicon_decode_equals_enumeration():
    from nlptool.segment.lexicon import Lexicon, lexicon_decode

    rng = np.random.default_rng(0)
    alphabet = "abcd"
    for trial in range(200):
        n = int(rng.integers(2, 9))
        keys = "".join(rng.choice(list(alphabet), n))
        words = {c: float(rng.uniform(-6, -1)) for c in alphabet}
        for _ in range(12):  # some multi-unit words, some of them in this clause
            a = int(rng.integers(0, n - 1))
            b = int(rng.integers(a + 2, min(n, a + 4) + 1))
            words[keys[a:b]] = float(rng.uniform(-8, -2))
        lex = Lexicon.from_pieces(words)
        p = rng.uniform(0.01, 0.99, n - 1)
        weight, bonus = float(rng.choice([0.0, 0.3, 1.0])), float(rng.choice([0.0, 1.0, -1.0]))
        oov = [None, 0.5, 0.2][trial % 3]
        got = lexicon_decode(keys, p, lex, weight=weight, bonus=bonus, oov_scale=oov)
        want = _brute_force_joins(keys, p, lex, weight, bonus, oov)
        assert got.shape == (n - 1,) and (got == want).all(), (trial, keys, p, got, want)


def test_lexicon_decode_without_lexicon_weight_is_the_threshold_rule():
    import itertools

    from nlptool.segment.lexicon import Lexicon, lexicon_decode

    rng = np.random.default_rng(1)
    keys = "abcab"
    # every substring of length <= 5 is a word: the decode reduces to p >= 0.5 per pair
    words = {keys[a:b]: -3.0 for a, b in itertools.combinations(range(len(keys) + 1), 2)}
    lex = Lexicon.from_pieces(words)
    for _ in range(50):
        p = rng.uniform(0.01, 0.99, len(keys) - 1)
        assert (lexicon_decode(keys, p, lex, weight=0.0, bonus=0.0) == (p >= 0.5)).all()
    # a multi-unit string outside the lexicon is never a word, however sure the tagger is ...
    lex = Lexicon.from_pieces({c: -2.0 for c in "abc"})
    assert not lexicon_decode(keys, np.full(4, 0.99), lex, weight=0.0, bonus=0.0).any()
    # ... unless out-of-lexicon words are allowed at a cost per unit (oov_scale)
    # (up to the lexicon's longest word: here "cc", 2 units; unk_logp = -3 - 2)
    lex = Lexicon.from_pieces({"a": -2.0, "b": -2.0, "cc": -3.0})
    assert not lexicon_decode("ab", np.array([0.99]), lex, weight=1.0, bonus=0.0).any()
    assert lexicon_decode("ab", np.array([0.99]), lex, weight=1.0, bonus=0.0, oov_scale=0.5).all()  # -5.01 > -8.61
    assert not lexicon_decode("ab", np.array([0.6]), lex, weight=1.0, bonus=0.0, oov_scale=0.5).any()  # -5.51 < -4.92
    assert lexicon_decode("a", np.zeros(0), lex, weight=1.0, bonus=0.0).shape == (0,)


def test_lexicon_key_and_file_round_trip(tmp_path):
    from nlptool.errors import ModelError
    from nlptool.segment.lexicon import LEX_ENG, LEX_NUM
    from nlptool.segment.lexicon import Lexicon, lexicon_key

    assert lexicon_key("中") == "中" and lexicon_key("1998") == LEX_NUM and lexicon_key("abc") == LEX_ENG
    assert lexicon_key("a") == LEX_ENG and lexicon_key("x2") == LEX_NUM and lexicon_key("，") == "，"
    lex = Lexicon.from_pieces({"北京": -5.5, "的": -3.0, LEX_NUM + "年": -7.25})
    lex.save(tmp_path / "lexicon.tsv")
    back = Lexicon.load(tmp_path / "lexicon.tsv")
    assert back.logp == lex.logp and back.max_len == 2 and back.unk_logp == -9.25
    (tmp_path / "bad.tsv").write_text("北京\tnot-a-number\n", encoding="utf-8")
    with pytest.raises(ModelError, match="line 1"):
        Lexicon.load(tmp_path / "bad.tsv")
    (tmp_path / "empty.tsv").write_text("", encoding="utf-8")
    with pytest.raises(ModelError, match="empty"):
        Lexicon.load(tmp_path / "empty.tsv")


def test_train_lexicon_finds_the_recurring_words(tmp_path):
    from nlptool.segment.lexicon import LEX_NUM
    from nlptool.segment.lexicon import train_lexicon

    rng = random.Random(0)
    words = ["北京", "天安门", "广场", "我", "的", "在", "人民", LEX_NUM + "年"]
    clauses = ["".join(rng.choice(words) for _ in range(rng.randint(3, 10))) for _ in range(3000)]
    lex = train_lexicon(clauses, tmp_path, size=200, max_len=4)
    for w in ("北京", "天安门", "广场", "人民"):
        assert w in lex.logp, (w, sorted(lex.logp, key=lex.logp.get)[-30:])
    assert lex.max_len <= 4 and all(v < 0 for v in lex.logp.values())
    # a saved tagger carries its lexicon; load_tagger reads it back
    v = _vocab()
    save_tagger(new_tagger(v, emb_dim=8, hidden=4), v, tmp_path / "tg",
                {"emb_dim": 8, "hidden": 4, "lexicon_weight": 0.3, "lexicon_bonus": 1.0}, lex)
    tg = load_tagger(tmp_path / "tg")
    assert tg.lexicon is not None and tg.lexicon.logp == pytest.approx(lex.logp, abs=1e-4)


def test_reestimate_lexicon_hand_example():
    from nlptool.segment.lexicon import reestimate_lexicon

    # words: ab | c, ab, abc (seen once: dropped), x
    lex = reestimate_lexicon(["abc", "ab", "abc", "x"], [np.array([1, 0]), np.array([1]), np.array([1, 1]), np.zeros(0)])
    assert set(lex.logp) == {"ab", "c", "x"}
    assert lex.logp["ab"] == pytest.approx(math.log(2 / 5)) and lex.logp["c"] == pytest.approx(math.log(1 / 5))
    assert lex.max_len == 2
    lex1 = reestimate_lexicon(["abc"], [np.array([1, 1])], min_count=1)
    assert lex1.logp == {"abc": 0.0}
