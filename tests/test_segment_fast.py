"""The tagger's fast paths against the reference definitions they replace: the vectorised text layout
(against split_pieces/tagger_clauses), the batched lexicon Viterbi (against lexicon_decode), the CPU
BiLSTM (against the torch module), the translate-based script conversion (against OpenCC per
character); and the thread rule (nlptool/threads.py)."""

from __future__ import annotations

import random
from typing import Optional

import numpy as np
import pytest

from nlptool.segment.api import (
    TaggerPass,
    model_form,
    split_pieces,
    tagger_clauses,
    tagger_layout,
    tagger_pass,
)
from nlptool.segment.lexicon import Lexicon, lexicon_decode, lexicon_decode_batch, lexicon_key
from nlptool.segment.tagger import LoadedTagger, TaggerVocab, join_probabilities, new_tagger

CHARS = list("的一是了我不人在他有这个上们来到时大地为子中你说生国年着就北京天安门广场")
# every kind of character split_pieces tells apart: CJK, ASCII and full-width letters/digits,
# the separators ALNUM_RUN keeps inside a run (. , : - ．), other punctuation and symbols,
# repeated punctuation, whitespace of several kinds, combining marks, Latin-1 letters and ×,
# letter-like ○, a private-use key character, an astral ideograph
ALPHABET = (CHARS[:12] + list("aZ09１Ａｚ.,:-．。，！…—×éÀ○〇\ue000𠀀") + [" ", "\t", "\u3000", "\u00a0", "\u0301", "\u20dd", "\u0903"])


def _random_text(rng: random.Random, n: int) -> str:
    out = []
    while len(out) < n:
        c = rng.choice(ALPHABET)
        out.append(c * rng.choice([1, 1, 1, 2, 3]))
    return "".join(out)[:n]


def _vocab():
    return TaggerVocab(["[PAD]", "[UNK]"] + CHARS + ["a", "1", "[NUM]", "[ENG]"])


@pytest.mark.parametrize("max_units", [None, 3])
def test_layout_equals_split_pieces_and_tagger_clauses(max_units):
    rng = random.Random(7)
    v = _vocab()
    for trial in range(40):
        texts = [_random_text(rng, rng.randint(0, 40)) for _ in range(rng.randint(1, 6))]
        lay = tagger_layout(texts, v, max_units)
        tp = TaggerPass(lay, np.zeros(len(lay.unit_ids) - len(lay.clause_offsets) + 1, dtype=np.float32))
        want_clauses = []
        for t, text in enumerate(texts):
            assert tp.pieces[t] == split_pieces(text), (trial, text)
            want_clauses += tagger_clauses(text, t, v, max_units)[1]
        got = tp.clauses
        assert [(c.text_index, c.spans, c.ids) for c in got] == [(c.text_index, c.spans, c.ids) for c in want_clauses]
        keys = tp.keys()
        for c, k in zip(got, keys):
            text = texts[c.text_index]
            assert k == "".join(lexicon_key(model_form(text[a:b])) for a, b in c.spans)


def _decode_case(rng, n_clauses, alphabet="abcd", max_word=4):
    lengths = rng.integers(1, 12, n_clauses)
    keys = ["".join(rng.choice(list(alphabet), int(n))) for n in lengths]
    words = {c: float(rng.uniform(-6, -1)) for c in alphabet[:-1]}  # the last key: never a word alone
    for _ in range(30):
        k = keys[int(rng.integers(0, n_clauses))]
        if len(k) >= 2:
            a = int(rng.integers(0, len(k) - 1))
            b = int(rng.integers(a + 2, min(len(k), a + max_word) + 1))
            words[k[a:b]] = float(rng.choice([-3.0, rng.uniform(-8, -2)]))  # repeated values: ties
    p = [rng.choice([0.5, 0.25, 0.75, 1.0, 0.0, float(rng.uniform())], int(n) - 1) for n in lengths]
    return keys, p, Lexicon.from_pieces(words)


@pytest.mark.parametrize("oov", [None, 0.5])
def test_batched_lexicon_decode_equals_lexicon_decode(oov):
    rng = np.random.default_rng(3)
    for trial in range(30):
        keys, p, lex = _decode_case(rng, int(rng.integers(1, 40)))
        weight, bonus = float(rng.choice([0.0, 0.7, 1.0])), float(rng.choice([0.0, 2.0, -1.0]))
        offsets = np.concatenate([[0], np.cumsum([len(k) for k in keys])])
        flat_keys = np.array([ord(c) for k in keys for c in k])
        flat_p = np.concatenate([np.asarray(x, dtype=np.float32) for x in p])
        got = lexicon_decode_batch(flat_keys, flat_p, offsets, lex, weight=weight, bonus=bonus, oov_scale=oov, group=7)
        want = np.concatenate([lexicon_decode(k, np.asarray(x, dtype=np.float32), lex, weight=weight, bonus=bonus,
                                              oov_scale=oov) for k, x in zip(keys, p)])
        assert got.dtype == bool and (got == want).all(), trial


def test_batched_lexicon_decode_falls_back_for_a_wide_lexicon(monkeypatch):
    rng = np.random.default_rng(4)
    keys, p, lex = _decode_case(rng, 10)
    monkeypatch.setattr(Lexicon, "index", lambda self: None)
    offsets = np.concatenate([[0], np.cumsum([len(k) for k in keys])])
    got = lexicon_decode_batch(np.array([ord(c) for k in keys for c in k]), np.concatenate(p), offsets, lex,
                               weight=0.7, bonus=2.0, oov_scale=0.6)
    want = np.concatenate([lexicon_decode(k, x, lex, weight=0.7, bonus=2.0, oov_scale=0.6) for k, x in zip(keys, p)])
    assert (got == want).all()


def test_lexicon_index_is_rebuilt_for_a_changed_lexicon():
    lex = Lexicon.from_pieces({"a": -1.0, "b": -1.0, "ab": -1.0})
    assert lex.index().lookup(2, np.array([(1 << lex.index().bits) | 2]))[0].all()
    lex.logp["ba"] = -1.0
    idx = lex.index()
    assert idx.lookup(2, np.array([(2 << idx.bits) | 1]))[0].all()


def _tiny(seed=0, emb=16, hidden=8):
    import torch

    torch.manual_seed(seed)
    v = _vocab()
    return LoadedTagger("t", "", v, new_tagger(v, emb_dim=emb, hidden=hidden).eval(), torch.device("cpu"), {})


def test_cpu_bilstm_equals_the_torch_module(monkeypatch):
    import nlptool.segment.tagger as tagger_mod

    tg = _tiny()
    rng = random.Random(2)
    clauses = [[rng.randrange(1, len(tg.tokenizer)) for _ in range(rng.choice([0, 1, 2, 5, 17, 40]))] for _ in range(60)]
    fast = join_probabilities(tg, clauses, batch_size=16)
    monkeypatch.setattr(tagger_mod, "_cpu_runner", lambda net: None)  # the module itself, padded and packed
    slow = join_probabilities(tg, clauses, batch_size=16)
    for c, a, b in zip(clauses, fast, slow):
        assert a.shape == b.shape == (max(len(c) - 1, 0),)
        np.testing.assert_allclose(a, b, atol=2e-6)


def test_cpu_bilstm_follows_weight_updates():
    import torch

    tg = _tiny(1)
    clauses = [[3, 4, 5, 6], [7, 8]]
    before = join_probabilities(tg, clauses)
    with torch.no_grad():  # in place, as an optimiser step does
        tg.model.lstm.weight_hh_l0.mul_(-1.0)
        tg.model.embed.weight.add_(0.5)
    after = join_probabilities(tg, clauses)
    with torch.no_grad():
        ids = torch.tensor([[3, 4, 5, 6]])
        want = torch.sigmoid(tg.model(ids)).numpy()[0]
    np.testing.assert_allclose(after[0], want, atol=2e-6)
    assert not np.allclose(before[0], after[0])


def test_tagger_pass_probs_match_join_probabilities():
    tg = _tiny(2)
    texts = ["我们来到北京天安门广场。他说：", "", "abc 123 的的的", "中" * 300]
    tp = tagger_pass(tg, texts, batch_size=3)
    want = join_probabilities(tg, [[u[0] for u in c.ids] for c in tp.clauses])
    for a, b in zip(tp.probs, want):
        np.testing.assert_allclose(a, b, atol=2e-6)
    res = tp.decode()
    for t, r in zip(texts, res):
        assert "".join(r.words) == t
    assert res[3].impacts and len(res[3].impacts) == 2  # 300 units: two clauses of at most 256
    assert tp.decode(impacts=False)[3].impacts == []


def test_script_conversion_equals_opencc_per_character():
    opencc = pytest.importorskip("opencc")
    from nlptool.segment.api import convert_chars, looks_traditional

    text = "這個軟體的開發者說，學習漢語很難。这个软件 abc 乾隆 后来 髮 发 ÀÉ"
    for cfg in ("t2s", "s2t"):
        conv = opencc.OpenCC(cfg)
        want = "".join(c if ord(c) < 0x2E80 or len(conv.convert(c)) != 1 else conv.convert(c) for c in text)
        assert convert_chars(text, cfg) == want
    for s in (text, "这个软件的开发者说", "軟體", "", "abc", "后髮", "髮后后"):
        n_t = sum(a != b for a, b in zip(s, convert_chars(s, "t2s")))
        n_s = sum(a != b for a, b in zip(s, convert_chars(s, "s2t")))
        assert looks_traditional(s) == (n_t > n_s), s
    assert convert_chars("髮后", "t2s") == "发后" and looks_traditional("軟體") and not looks_traditional("软件")


# ------------------------------------------------------------------------------ the thread rule


def test_thread_count_precedence():
    from nlptool.threads import thread_count

    assert thread_count("tagger", environ={}) == (1, "rule")
    assert thread_count("bert", environ={}) == (1, "rule")
    assert thread_count("none", environ={}) == (None, "none")
    assert thread_count("tagger", environ={"OMP_NUM_THREADS": "4"}) == (4, "OMP_NUM_THREADS")
    assert thread_count("bert", environ={"MKL_NUM_THREADS": "3"}) == (3, "MKL_NUM_THREADS")
    assert thread_count("bert", environ={"OMP_NUM_THREADS": "2,1", "MKL_NUM_THREADS": "3"}) == (2, "OMP_NUM_THREADS")
    assert thread_count("bert", environ={"OMP_NUM_THREADS": "x", "MKL_NUM_THREADS": "0"}) == (1, "rule")
    assert thread_count("tagger", 3, environ={"OMP_NUM_THREADS": "4"}) == (3, "--threads")
    with pytest.raises(ValueError):
        thread_count("tagger", 0, environ={})
    with pytest.raises(ValueError):
        thread_count("gpu", environ={})


def test_command_kind():
    from nlptool.segment.command import Segmenter
    from nlptool.threads import command_kind

    assert command_kind(Segmenter()) == "tagger"
    assert command_kind(Segmenter(method="masking")) == "bert"
    assert command_kind(Segmenter(parse="dependency")) == "bert"

    class Custom:
        thread_kind = "none"

    assert command_kind(Custom()) == "none"


@pytest.fixture
def torch_threads():
    import torch

    before = torch.get_num_threads()
    yield torch
    torch.set_num_threads(before)


def test_apply_thread_rule_sets_torch(torch_threads, monkeypatch):
    from nlptool.threads import apply_thread_rule

    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.delenv(var, raising=False)
    assert apply_thread_rule("tagger") == (1, "rule") and torch_threads.get_num_threads() == 1
    assert apply_thread_rule("bert", 2) == (2, "--threads") and torch_threads.get_num_threads() == 2
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert apply_thread_rule("bert") == (3, "OMP_NUM_THREADS") and torch_threads.get_num_threads() == 3


def test_threads_option_reaches_the_rule(torch_threads, monkeypatch):
    """A command that declares ThreadsOpt gets its value applied by run_record_command's thread step."""
    import typer
    from typer.testing import CliRunner

    from nlptool.cli.options import ThreadsOpt
    from nlptool.cli.run import apply_threads as _apply_threads

    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.delenv(var, raising=False)
    app = typer.Typer()
    seen = []

    @app.command()
    def main(threads: Optional[int] = ThreadsOpt()):
        class Cmd:
            thread_kind = "bert"

        _apply_threads(Cmd(), None)
        seen.append(torch_threads.get_num_threads())

    runner = CliRunner()
    assert runner.invoke(app, ["--threads", "2"]).exit_code == 0
    assert runner.invoke(app, []).exit_code == 0
    assert seen == [2, 1]
    assert runner.invoke(app, ["--threads", "0"]).exit_code == 2


@pytest.mark.parametrize("argv, stdin", [
    (["segment"], "今天天气很好\n"),
    (["segment", "--method", "masking"], "今天天气很好\n"),
    (["similarity"], '{"a": "今天天气很好", "b": "今天天气不错"}\n'),
    (["similarity", "--query", "-", "--corpus", "data/sample_zh.txt", "--top-k", "1"], "今天天气很好\n"),
    (["attribute", "--steps", "4"], "这家酒店服务太差了\n"),
    (["qa-gen", "--answers-key", "answers", "--beam-size", "1", "--no-round-trip"],
     '{"text": "长江是中国第一长河，全长约6300公里。", "answers": ["长江"]}\n'),
])
def test_every_torch_command_takes_threads(torch_threads, monkeypatch, argv, stdin):
    """`--threads N` reaches torch on every command that runs a model (the record engine, similarity
    search); without it the rule gives 1 (no thread variable set)."""
    import os

    from typer.testing import CliRunner

    from nlptool.cli import app

    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    runner = CliRunner()
    for threads, expected in ((["--threads", "2"], 2), ([], 1)):
        torch_threads.set_num_threads(3)
        res = runner.invoke(app, [*argv, "-q", *threads], input=stdin)
        assert res.exit_code == 0, res.output
        assert torch_threads.get_num_threads() == expected
    assert runner.invoke(app, [*argv, "--threads", "0"], input=stdin).exit_code == 2
