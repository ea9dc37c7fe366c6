"""segment with the tagger: words tile the input for any text, user dictionaries, traditional input,
the library entry point the CLI calls, and the built-in zh-seg-mini's real behaviour."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
from typer.testing import CliRunner

from nlptool.cli import app
from nlptool.segment.api import (
    UserDict,
    apply_user_dict,
    convert_chars,
    looks_traditional,
    model_text,
    read_user_dict,
    segment_or_parse,
    segment_with_tagger,
)
from nlptool.segment.tagger import TaggerVocab, new_tagger, save_tagger

CHARS = list("的一是了我不人在他有这个上们来到时大地为子中你说生国年着就北京天安门广场")


@pytest.fixture(scope="module")
def tiny_tagger_dir(tmp_path_factory):
    import torch

    torch.manual_seed(0)
    v = TaggerVocab(["[PAD]", "[UNK]"] + CHARS + ["[NUM]", "[ENG]"])
    net = new_tagger(v, emb_dim=16, hidden=8).eval()
    out = tmp_path_factory.mktemp("tiny-tagger")
    save_tagger(net, v, out, {"emb_dim": 16, "hidden": 8, "teacher": "zh-bert-mini", "layer": -1})
    return str(out)


@pytest.fixture(scope="module")
def tiny_tagger(tiny_tagger_dir):
    from nlptool.models import load_model

    return load_model(tiny_tagger_dir, kind="char-tagger", device="cpu")


@pytest.fixture(scope="module")
def tiny_tagger_lexicon(tiny_tagger_dir, tmp_path_factory):
    """The tiny tagger with a unigram lexicon (digit-run words included) and decoding weights."""
    import json
    import shutil

    from nlptool.models import load_model
    from nlptool.segment.lexicon import LEX_NUM
    from nlptool.segment.lexicon import Lexicon

    out = tmp_path_factory.mktemp("tiny-tagger-lex") / "m"
    shutil.copytree(tiny_tagger_dir, out)
    cfg = json.loads((out / "config.json").read_text(encoding="utf-8"))
    cfg.update(lexicon_weight=0.5, lexicon_bonus=1.0)
    (out / "config.json").write_text(json.dumps(cfg), encoding="utf-8")
    words = {c: -4.0 for c in CHARS}
    words.update({"北京": -3.0, "天安门": -3.5, "广场": -3.5, "中国": -4.0, LEX_NUM + "年": -4.0, "中中中": -2.0})
    Lexicon.from_pieces(words).save(out / "lexicon.tsv")
    return load_model(str(out), kind="char-tagger", device="cpu")


def test_lexicon_decoding_keeps_every_character_and_uses_the_lexicon(tiny_tagger, tiny_tagger_lexicon):
    rng = random.Random(1)
    texts = [_random_text(rng, rng.randint(0, 120)) for _ in range(60)] + ["", "中" * 600, "a" * 300]
    for r, t in zip(segment_with_tagger(tiny_tagger_lexicon, texts), texts):
        assert "".join(r.words) == t
    text = "我在北京天安门广场，1998年。"
    words = segment_with_tagger(tiny_tagger_lexicon, [text])[0].words
    # a word of the lexicon (strong prior at weight 0.5) stays whole; a multi-unit string outside it
    # is never one word
    assert "".join(words) == text and {"北京", "天安门", "广场"} <= set(words)
    assert all(len(w) == 1 or w in ("北京", "天安门", "广场", "1998年", "1998") for w in words), words
    # lexicon=False is the plain threshold rule, the same as a tagger without a lexicon
    plain = segment_with_tagger(tiny_tagger, [text])[0].words
    assert segment_with_tagger(tiny_tagger_lexicon, [text], lexicon=False)[0].words == plain


def test_one_tagger_pass_decodes_like_segment_with_tagger(tiny_tagger_lexicon):
    from nlptool.segment.api import tagger_pass
    from nlptool.segment.lexicon import decode_settings

    rng = random.Random(2)
    texts = [_random_text(rng, rng.randint(0, 80)) for _ in range(30)] + ["我在北京天安门广场，1998年。"]
    tp = tagger_pass(tiny_tagger_lexicon, texts)
    with_lex = tp.decode(tiny_tagger_lexicon.lexicon, **decode_settings(tiny_tagger_lexicon.config))
    assert [r.words for r in with_lex] == [r.words for r in segment_with_tagger(tiny_tagger_lexicon, texts)]
    assert [r.words for r in tp.decode()] == [r.words for r in segment_with_tagger(tiny_tagger_lexicon, texts, lexicon=False)]


def _random_text(rng: random.Random, n: int) -> str:
    alphabet = CHARS + list("，。！？、 \t") + list("abcXYZ0123４５") + [
        "\u3000", "😀", "👍🏽", "é", "e\u0301", "\u0301", "——", "……", "\n", "這", "國", "學", "龘", "\ufe0f"]
    return "".join(rng.choice(alphabet) for _ in range(n))


def test_words_always_concatenate_back_tagger(tiny_tagger):
    rng = random.Random(0)
    texts = [_random_text(rng, rng.randint(0, 120)) for _ in range(60)]
    texts += ["", " ", "。", "中" * 600, "a" * 300, "這個國家的學生"]
    for convert in ("auto", "t2s", "none"):
        res = segment_or_parse(texts, segmenter=tiny_tagger, method="tagger", convert=convert,
                               user_dict=UserDict.from_words(["北京", "中中中", "e\u0301", "這個"]))
        for text, r in zip(texts, res):
            assert "".join(r["words"]) == text
            assert all(r["words"])


def test_user_dict_longest_match_left_to_right():
    ud = UserDict.from_words(["北京", "北京天安门", "天安门广场", "门广场"])
    text = "我爱北京天安门广场"
    words = apply_user_dict(text, list(text), ud)
    # at 北: the longest word is 北京天安门; the scan continues at 广 (天安门广场 overlaps: left wins)
    assert words == ["我", "爱", "北京天安门", "广", "场"]
    # a dictionary word overrides a model word that crosses it, with boundaries at both ends
    assert apply_user_dict("他们来到北京", ["他", "们来到北", "京"], UserDict.from_words(["北京", "他们"])) == [
        "他们", "来到", "北京"]
    # never inside a letter run or between a base character and its combining mark
    assert apply_user_dict("COVID-19", ["COVID-19"], UserDict.from_words(["COVID"])) == ["COVID-19"]


def test_user_dict_file_jieba_format(tmp_path, tiny_tagger):
    f = tmp_path / "dict.txt"
    f.write_text("# comment\n天安门广场 3 ns\n北京\n\n来到 5\n", encoding="utf-8")
    ud = read_user_dict(f)
    assert ud.words == {"天安门广场", "北京", "来到"}
    (r,) = segment_or_parse(["他们来到北京天安门广场。"], segmenter=tiny_tagger, method="tagger", user_dict=ud)
    assert "天安门广场" in r["words"] and "北京" in r["words"] and "来到" in r["words"]


def test_traditional_conversion_is_character_aligned():
    trad = "這個軟體的開發者說，學習漢語很難。"
    simp = convert_chars(trad, "t2s")
    assert len(simp) == len(trad) and simp.startswith("这个软")
    assert looks_traditional(trad) and not looks_traditional("这个软件的开发者说，学习汉语很难。")
    assert model_text("这个软件", "auto") == "这个软件"
    assert model_text(trad, "none") == trad


def test_traditional_input_segments_like_its_simplified_form(tiny_tagger):
    trad = "這個國家的學生來到北京"
    simp = convert_chars(trad, "t2s")
    (a,) = segment_or_parse([trad], segmenter=tiny_tagger, method="tagger", convert="auto")
    (b,) = segment_with_tagger(tiny_tagger, [simp])
    assert [len(w) for w in a["words"]] == [len(w) for w in b.words]
    assert "".join(a["words"]) == trad  # the input's own characters


def test_cli_tagger_matches_library_and_flags(tmp_path, tiny_tagger_dir, tiny_tagger):
    runner = CliRunner()
    texts = ["我们来到北京。", "", "這個國家的學生"]
    f = tmp_path / "in.txt"
    f.write_text("\n".join(texts) + "\n", encoding="utf-8")
    d = tmp_path / "u.txt"
    d.write_text("北京 3\n", encoding="utf-8")
    r = runner.invoke(app, ["segment", str(f), "--method", "tagger", "--model", tiny_tagger_dir, "-q", "--user-dict", str(d)])
    assert r.exit_code == 0, r.output
    got = [json.loads(x)["words"] for x in r.stdout.splitlines()]
    lib = segment_or_parse(texts, segmenter=tiny_tagger, method="tagger", user_dict=read_user_dict(d))
    assert got == [x["words"] for x in lib]
    assert "北京" in got[0]
    for bad in (["--method", "bert"], ["--convert", "s2t"], ["--chunk-size", "0"], ["--batch-size", "0"]):
        r = runner.invoke(app, ["segment", str(f), "--model", tiny_tagger_dir, "-q", *bad])
        assert r.exit_code == 2, (bad, r.output)
    r = runner.invoke(app, ["segment", str(f), "--model", tiny_tagger_dir, "-q", "--user-dict", str(tmp_path / "missing.txt")])
    assert r.exit_code == 2


def test_default_cli_is_the_builtin_tagger_with_its_lexicon_and_matches_the_library(tmp_path):
    """`nlptool segment` (no --method, no --model) = segment_or_parse with the built-in zh-seg-mini,
    whose lexicon is loaded and used (decoding without it differs on real text)."""
    from nlptool.models import load_model

    try:
        tg = load_model("zh-seg-mini", kind="char-tagger", device="cpu")
    except Exception as exc:  # noqa: BLE001
        pytest.skip(f"zh-seg-mini not built ({exc})")
    texts = [" ".join(g).replace(" ", "") for g in GOLD] + ["1998年1月18日，新华社记者报道了马克思主义理论研究的新进展。", ""]
    f = tmp_path / "in.txt"
    f.write_text("\n".join(texts) + "\n", encoding="utf-8")
    r = CliRunner().invoke(app, ["segment", str(f), "-q", "--device", "cpu"])
    assert r.exit_code == 0, r.output
    got = [json.loads(x)["words"] for x in r.stdout.splitlines()]
    assert got == [x["words"] for x in segment_or_parse(texts, segmenter=tg, method="tagger")]
    assert tg.lexicon is not None and len(tg.lexicon) > 10_000 and "lexicon_weight" in tg.config
    assert all("".join(w) == t for w, t in zip(got, texts))
    # the decode really goes through the lexicon: one of single characters only (and no out-of-lexicon
    # words) leaves no word of two Chinese characters
    import dataclasses

    from nlptool.segment.lexicon import Lexicon

    single = dataclasses.replace(tg, lexicon=Lexicon.from_pieces({c: -5.0 for t in texts for c in t}),
                                 config={**tg.config, "lexicon_oov_scale": None})
    chars = [r.words for r in segment_with_tagger(single, texts)]
    assert all(len(w) == 1 or w.isascii() or not w.isalpha() for ws in chars for w in ws), chars
    assert any(len(w) > 1 and not w.isascii() and w.isalpha() for ws in got for w in ws)


def test_parse_with_tagger_words(tiny_bert_dir, tiny_tagger):
    from nlptool.models import load_model

    bert = load_model(tiny_bert_dir, kind="encoder", device="cpu")
    (r,) = segment_or_parse(["這個國家的學生來到北京"], segmenter=tiny_tagger, method="tagger", parser=bert, parse="dependency")
    assert "".join(r["words"]) == "這個國家的學生來到北京"
    assert len(r["heads"]) == len(r["words"]) and r["heads"].count(0) == 1


# ------------------------------------------------------------- the shipped model (real behaviour)

GOLD = [  # hand-segmented sample lines (written for this test)
    ["我们", "的", "国家", "很", "美丽", "。"],
    ["今天", "天气", "不错", "，", "我们", "去", "公园", "吧", "。"],
    ["中国", "人民", "银行", "发布", "了", "新", "的", "政策", "。"],
    ["他", "在", "北京", "大学", "学习", "计算机", "科学", "。"],
    ["经济", "发展", "需要", "改革", "和", "开放", "。"],
]


def test_builtin_zh_seg_mini_beats_every_character():
    from nlptool.models import load_model
    from nlptool.segment.train import word_prf

    try:
        tg = load_model("zh-seg-mini", kind="char-tagger", device="cpu")
    except Exception as exc:  # noqa: BLE001
        print(f"skipped: built-in zh-seg-mini not available ({exc})")
        pytest.skip("zh-seg-mini not built")
    texts = ["".join(g) for g in GOLD]
    pred = [r["words"] for r in segment_or_parse(texts, segmenter=tg, method="tagger")]
    f_model = word_prf(GOLD, pred)[2]
    f_chars = word_prf(GOLD, [list(t) for t in texts])[2]
    assert f_model > f_chars + 0.15, (f_model, f_chars, pred)
    # traditional input: the shipped model with conversion does better than without
    trad = [convert_chars(t, "s2t") for t in texts]
    f_conv = word_prf(GOLD, [r["words"] for r in segment_or_parse(trad, segmenter=tg, method="tagger", convert="auto")])[2]
    assert np.isclose(f_conv, f_model)
