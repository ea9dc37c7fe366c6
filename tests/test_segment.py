"""segment: text handling invariants, the auto rule, parsing glue, on a tiny model."""

from __future__ import annotations

import random

import numpy as np
import pytest

from nlptool.models import load_model
from nlptool.segment.api import auto_joins, parse_words, segment_texts, split_pieces


@pytest.fixture(scope="module")
def tiny(tiny_bert_dir):
    return load_model(tiny_bert_dir, kind="encoder", device="cpu")


def test_pieces_tile_the_text_and_classify():
    text = "我在2024年用iPhone 15拍了3.14张照片——真的！！ COVID-19  ok"
    pieces = split_pieces(text)
    assert "".join(text[p.start : p.end] for p in pieces) == text
    kinds = {text[p.start : p.end]: p.kind for p in pieces}
    assert kinds["2024"] == "alnum"
    assert kinds["iPhone"] == "alnum"
    assert kinds["3.14"] == "alnum"
    assert kinds["COVID-19"] == "alnum"
    assert kinds["——"] == "punct"
    assert kinds["！！"] == "punct"
    assert kinds["  "] == "space"
    assert kinds["我"] == "char"


def test_full_width_digits_are_one_unit():
    pieces = split_pieces("１９９８年")
    assert [("１９９８年"[p.start : p.end], p.kind) for p in pieces] == [("１９９８", "alnum"), ("年", "char")]


def _random_text(rng: random.Random, n: int) -> str:
    alphabet = list("的一是了我不人在他有这个上们来到时大地为子中你说生国年着就") + list("，。！？、 \t") + list(
        "abcXYZ0123４５") + ["\u3000", "😀", "é", "\u0301", "——", "……", "\n"]
    return "".join(rng.choice(alphabet) for _ in range(n))


def test_words_always_concatenate_back(tiny):
    rng = random.Random(0)
    texts = [_random_text(rng, rng.randint(0, 80)) for _ in range(40)]
    texts += ["", " ", "。", "中" * 300, "a" * 200, "中国" * 40 + "，" + "人民" * 50]  # longer than the 64-token window
    results = segment_texts(tiny, texts, batch_size=64)
    for text, r in zip(texts, results):
        assert "".join(r.words) == text
        assert all(r.words)
        for w in r.words:  # punctuation and whitespace never glue to characters
            if any(c in w for c in "，。！？ "):
                assert w.strip("，。！？ \t\u3000\n") == "" or len(set(w)) == 1


def test_fixed_threshold_extremes(tiny):
    text = "我们的国家很美丽"
    (low,) = segment_texts(tiny, [text], threshold=-1.0)
    (high,) = segment_texts(tiny, [text], threshold=1e9)
    assert low.words == [text]
    assert high.words == list(text)


def test_auto_rule_is_scale_invariant():
    d = np.array([1.0, 5.0, 2.0, 8.0, 0.5])
    assert (auto_joins(d) == auto_joins(d * 1000)).all()
    assert auto_joins(d).tolist() == [False, True, False, True, False]  # mean 3.3
    assert auto_joins(np.array([3.0]), fallback=2.0).tolist() == [True]
    assert auto_joins(np.array([1.0]), fallback=2.0).tolist() == [False]


def test_result_independent_of_other_lines(tiny):
    a = segment_texts(tiny, ["我们的国家很美丽"])[0].words
    b = segment_texts(tiny, ["今天天气不错", "我们的国家很美丽", "中" * 90])[1].words
    assert a == b


def test_parse_words_dependency_and_constituency(tiny):
    words = ["我们", "的", " ", "国家", "很", "美丽", "。"]
    (dep,) = parse_words(tiny, [words], mode="dependency")
    assert dep.heads[2] is None
    kept = [h for h in dep.heads if h is not None]
    assert kept.count(0) == 1 and len(kept) == 6
    assert all(h is None or 0 <= h <= len(words) for h in dep.heads)
    (con,) = parse_words(tiny, [words], mode="constituency")
    assert con.tree.count("(") == con.tree.count(")") == 5  # binary tree over 6 words
    for w in ["我们", "国家", "美丽"]:
        assert w in con.tree


def test_parse_longer_than_window(tiny):
    words = ["中国"] * 50  # 100 tokens > 62
    (dep,) = parse_words(tiny, [words], mode="dependency")
    assert dep.heads.count(0) == 1
    (con,) = parse_words(tiny, [words], mode="constituency")
    assert con.tree.count("中国") == 50
