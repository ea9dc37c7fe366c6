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


# ------------------------------------------------------------------- long texts, window by window
# a line of millions of characters is cut into windows (text_windows) instead of being segmented
# whole (~650 bytes per character: out of memory)


def _long_text(rng: random.Random, n: int) -> str:
    """Sentences, a stretch without punctuation (cut between clauses), letter/digit runs, marks."""
    parts = []
    while sum(map(len, parts)) < n:
        k = rng.random()
        if k < 0.1:
            parts.append("".join(rng.choice("的一是了我不人在他有这个上们") for _ in range(rng.randint(200, 700))))
        elif k < 0.2:
            parts.append(rng.choice(["COVID-19", "3.14", "abc", "é\u0301", "——", "  ", "１９９８年", "a好a好a"]))
        else:
            parts.append(_random_text(rng, rng.randint(1, 40)).replace("\n", "") + rng.choice("，。！"))
    return "".join(parts)[:n]


def test_text_windows_tile_the_text_at_clause_starts():
    from nlptool.segment.api import UserDict, _clean_cut, tagger_clauses, text_windows
    from nlptool.segment.tagger import TaggerVocab

    vocab = TaggerVocab(["[PAD]", "[UNK]"] + list("的一是了我不人在他有这个上们"))

    def starts(s):
        return [c.spans[0] for c in tagger_clauses(s, 0, vocab)[1]]

    rng = random.Random(5)
    udict = UserDict.from_words(["。的", "的一", "a好a"])
    for _ in range(30):
        text = _long_text(rng, rng.randint(500, 3000))
        size = rng.choice([1, 7, 50, 300])
        windows = list(text_windows(text, size, clause_starts=starts, user_dict=udict))
        assert [a for a, _ in windows[1:]] == [b for _, b in windows[:-1]] and windows[0][0] == 0
        assert windows[-1][1] == len(text) and all(b - a >= size for a, b in windows[:-1])
        whole = {c.spans[0][0] for c in tagger_clauses(text, 0, vocab)[1]}
        for _, b in windows[:-1]:
            assert _clean_cut(text, b, False) or b in whole  # after punctuation, or where a clause starts
            assert not any(text[s: s + len(w)] == w for w in udict.words for s in range(b - len(w) + 1, b))
    assert list(text_windows("中" * 100, 10)) == [(0, 100)]  # nothing to cut at: one window
    assert list(text_windows("中" * 1000, 10, clause_starts=starts)) == [(0, 256), (256, 512), (512, 768), (768, 1000)]


@pytest.mark.parametrize("parse", ["none", "dependency"])
def test_windows_give_the_words_of_the_whole_text_masking(tiny, monkeypatch, parse):
    from nlptool.segment import api

    rng = random.Random(7)
    texts = [_long_text(rng, 700), "我们的国家很美丽。", _long_text(rng, 400), ""]
    udict = api.UserDict.from_words(["国家", "。的", "们的国"])
    kw = dict(segmenter=tiny, method="masking", parser=tiny, parse=parse, user_dict=udict, fallback=0.5)
    whole = api.segment_or_parse(texts, **kw)
    for size in (30, 97):
        monkeypatch.setattr(api, "SEGMENT_WINDOW", size)
        assert len(api._long_texts(texts, None, tiny, "masking", "auto", udict)) == 2
        assert api.segment_or_parse(texts, **kw) == whole


def test_windows_give_the_words_of_the_whole_text_tagger(monkeypatch):
    from nlptool.segment import api

    try:
        tagger = load_model("zh-seg-mini", kind="char-tagger", device="cpu")
    except Exception as exc:  # noqa: BLE001
        pytest.skip(f"zh-seg-mini not built ({exc})")
    rng = random.Random(8)
    traditional = "我們去臺灣看電視，這裡的風景很漂亮。" * 40  # the auto script decision is the whole text's
    texts = [_long_text(rng, 5000), traditional, "今天天气不错", _long_text(rng, 3000)]
    for udict in (None, api.UserDict.from_words(["天安门", "的一是", "。我"])):
        whole = api.segment_or_parse(texts, segmenter=tagger, user_dict=udict)
        for size in (50, 400):
            monkeypatch.setattr(api, "SEGMENT_WINDOW", size)
            assert len(api._long_texts(texts, None, tagger, "tagger", "auto", udict)) == 3
            assert api.segment_or_parse(texts, segmenter=tagger, user_dict=udict) == whole
        monkeypatch.setattr(api, "SEGMENT_WINDOW", 1 << 16)


@pytest.mark.slow
def test_a_300k_character_line_is_segmented_in_windows(tmp_path):
    """`nlptool segment` on 好 / 300,000 characters with no line break / 坏: every line written, the
    long one's words concatenate back to it, and its pass over the model takes memory for one
    window, not for the line: peak traced memory grows by the words of the line (~100 bytes a
    character), not by the whole-line pass (~650 bytes a character before windows)."""
    import json
    import tracemalloc

    from typer.testing import CliRunner

    from nlptool.cli import app
    from nlptool.segment import api

    try:
        tagger = load_model("zh-seg-mini", kind="char-tagger", device="cpu")
    except Exception as exc:  # noqa: BLE001
        pytest.skip(f"zh-seg-mini not built ({exc})")
    rng = random.Random(9)
    text = _long_text(rng, 300_000)
    f = tmp_path / "long.txt"
    f.write_text("好\n" + text + "\n坏\n", encoding="utf-8")
    r = CliRunner().invoke(app, ["segment", str(f), "--quiet"])
    assert r.exit_code == 0, r.output
    out = [json.loads(x) for x in r.stdout.splitlines()]
    assert [o["text"] for o in out] == ["好", text, "坏"]
    assert out[0]["words"] == ["好"] and out[2]["words"] == ["坏"] and "".join(out[1]["words"]) == text
    def peak(t):
        tracemalloc.start()
        try:
            (res,) = api.segment_or_parse([t], segmenter=tagger)
            return res, tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    peak(text[:1000])  # warm the caches
    short = 2 * api.SEGMENT_WINDOW
    _, p_short = peak(text[:short])
    res, p_long = peak(text)
    assert res["words"] == out[1]["words"]
    per_char = (p_long - p_short) / (len(text) - short)  # growth beyond the window: the words themselves
    assert per_char < 200, f"{per_char:.0f} bytes per character"
