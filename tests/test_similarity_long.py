"""Long inputs to `similarity` in bounded memory.

* ordinary pairs (every text below MAX_SUPPORT tokens) give the same output as before the cap
  (recorded in tests/data/similarity_reference.json);
* a text of more than MAX_SUPPORT tokens is streamed through the encoder a batch of windows at a
  time into a merge-and-reduce quantizer per metric: checked against the same reduction replayed on
  the per-token vectors;
* every transport problem has at most MAX_SUPPORT points per side (quantize: a mass-proportional
  systematic sample of the points, each point's mass moved to its nearest sample point), and the
  reduction moves WMD by no more than its coupling cost (checked against POT on random measures).
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from typer.testing import CliRunner

from nlptool.similarity import embedders, transport
from nlptool.similarity.transport import MAX_SUPPORT, Doc, Prepared, prepare, quantize

HERE = os.path.dirname(__file__)


REPO = os.path.dirname(HERE)


def _vectors(path) -> None:
    """A deterministic word2vec text file for the words of data/sample_zh.txt (every fifth word,
    in sorted order, left out: out of vocabulary), 16 dimensions from numpy's seeded generator."""
    from nlptool.similarity.vectors import split_words

    with open(os.path.join(REPO, "data", "sample_zh.txt"), encoding="utf-8") as fh:
        words = sorted({w for line in fh for w in split_words(line)})
    words = [w for k, w in enumerate(words) if k % 5]
    vecs = np.random.default_rng(0).normal(size=(len(words), 16))
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(f"{len(words)} 16\n")
        for w, v in zip(words, vecs):
            fh.write(w + " " + " ".join(f"{x:.4f}" for x in v) + "\n")


@pytest.mark.parametrize("run", ["tiny", "tiny-mean", "tiny-wmd", "static"])
def test_ordinary_pairs_unchanged_by_the_cap(run, tiny_bert_dir, tmp_path):
    """The reference outputs were recorded with the code before the cap (commit 8ae142c) on the
    same tiny model (tests/conftest.py) and word vectors (_vectors); every text is far below
    MAX_SUPPORT tokens, so the outputs must not change."""
    from nlptool.cli import app

    ref = json.load(open(os.path.join(HERE, "data", "similarity_reference.json"), encoding="utf-8"))
    src = tmp_path / "pairs.jsonl"
    src.write_text("".join(json.dumps(p, ensure_ascii=False) + "\n" for p in ref["pairs"]), encoding="utf-8")
    _vectors(tmp_path / "vectors.txt")
    args = [a.format(TINY=tiny_bert_dir, VECTORS=tmp_path / "vectors.txt") for a in ref["runs"][run]["args"]]
    r = CliRunner().invoke(app, ["similarity", str(src), "-q", *args])
    assert r.exit_code == 0, r.output
    got = [json.loads(line) for line in r.stdout.splitlines()]
    from nlptool.similarity import blend

    for g, want, p in zip(got, ref["runs"][run]["outputs"], ref["pairs"], strict=True):
        assert {k: g[k] for k in p} == p
        # recorded when `similarity` was 1 - WRD (or the cosine); it is now the cosine blended with
        # the characters (nlptool.similarity.api.blend), and pair mode reports `cos` too
        a, b = (p[k] for k in ("sentence1", "sentence2"))
        measured = {k: v for k, v in want.items() if k not in ("similarity", "best")}
        added = {"cos", "similarity"} | ({"cos_max", "best"} if isinstance(b, list) else set())
        assert set(g) - set(p) == set(measured) | added
        for k, v in measured.items():
            assert g[k] == pytest.approx(v, rel=1e-5, abs=1e-6), (k, g[k], v)  # float32 compute: rounding differs by CPU (SIMD width, BLAS kernel)
        if isinstance(b, list):
            scores = [blend(c, a, r) for c, r in zip(g["cos"], b)]
            assert g["best"] == scores.index(max(scores)) and g["similarity"] == pytest.approx(max(scores), abs=1e-12)
        else:
            assert g["similarity"] == pytest.approx(blend(g["cos"], a, b), abs=1e-12)


def _tiny_embedder(tiny_bert_dir, **kw):
    from nlptool.models import load_model

    loaded = load_model(tiny_bert_dir, kind="encoder", device="cpu")
    return embedders.ContextualEmbedder(loaded, **kw)


TEXT = ("我们的国家很美丽，今天天气很好。他们来到北京，一个人在吹长笛。孩子们在公园里踢足球！股市今天大幅下跌；"
        "一架飞机正在起飞。这个电影很好看，我们都喜欢。") * 6


@pytest.mark.parametrize("drop_punct", [False, True])
def test_long_text_is_streamed_and_reduced_in_bounded_memory(tiny_bert_dir, monkeypatch, drop_punct):
    from nlptool.similarity import score_pairs

    emb = _tiny_embedder(tiny_bert_dir, batch_size=2, drop_punct=drop_punct)
    emb.idf = {"的": 3.0}
    (plain,) = emb.embed([TEXT])  # below the cap: one row per token
    n = len(emb.tokenize([TEXT])[0])
    assert plain.measures is None and n > 3 * emb.window  # several windows, several batches
    seen = []
    real = emb.encode_ids
    monkeypatch.setattr(emb, "encode_ids", lambda ids: seen.append(len(ids)) or real(ids))
    cap = 50
    monkeypatch.setattr(embedders, "MAX_SUPPORT", cap)
    (long,) = emb.embed([TEXT])
    assert max(seen) <= emb.batch_size  # never more than one batch of windows at a time
    assert long.measures is not None and long.key != plain.key
    # the documented reduction, replayed on the per-token vectors: the same windows added in order
    for metric in ("wmd", "wrd"):
        ref = transport.StreamQuantizer(cap, metric)
        full = prepare(plain, metric, max_support=None)
        w = np.array([3.0 if t == "的" else 1.0 for t in plain.tokens])
        x = plain.vectors
        nrm = np.linalg.norm(x, axis=1)
        a, pts = (w, x) if metric == "wmd" else (w * nrm, x / nrm[:, None])
        start = 0
        for win in range(0, n, emb.window):  # the tokens each window kept
            toks = emb.tokenizer.convert_ids_to_tokens(emb.tokenize([TEXT])[0][win:win + emb.window])
            k = sum(not (drop_punct and embedders._is_punct_token(t)) for t in toks)
            ref.add(a[start:start + k], pts[start:start + k])
            start += k
        assert start == len(plain)
        want, got = ref.result(), long.measures[metric]
        assert len(got.a) <= cap and got.a.sum() == pytest.approx(1.0)
        np.testing.assert_allclose(got.a, want.a, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(got.x, want.x, rtol=1e-9, atol=1e-9)
        if metric == "wmd":  # the Doc's one row is the exact weighted mean: --pool mean is unchanged
            np.testing.assert_allclose(long.vectors[0], full.a @ full.x, rtol=1e-9, atol=1e-12)
    assert len(long) == 1 and transport.mean_cosine(long, plain) == pytest.approx(1.0, abs=1e-12)
    # no transport problem above the cap, and a sensible distance to the unreduced text
    sizes = []
    real_emd = transport.emd
    monkeypatch.setattr(transport, "emd", lambda pa, pb, m: sizes.append((len(pa.a), len(pb.a))) or real_emd(pa, pb, m))
    (res,) = score_pairs(emb, [TEXT], [TEXT[: len(TEXT) // 2] + "另外一句话。"])
    assert sizes and max(max(z) for z in sizes) <= cap and 0 < res["wrd"] < 1
    assert res["warning"].startswith("approximate")
    # tokenised piece by piece (cut after punctuation): the same ids, windows and measures
    monkeypatch.setattr(embedders, "STREAM_CHARS", 40)
    (pieced,) = emb.embed([TEXT])
    assert pieced.key == long.key
    for metric in ("wmd", "wrd"):
        np.testing.assert_array_equal(pieced.measures[metric].x, long.measures[metric].x)


def test_text_pieces_join_back_and_cut_after_punctuation():
    text = "甲乙丙，丁戊。" * 30 + "x" * 100 + "尾"
    pieces = list(embedders.text_pieces(text, 25))
    assert "".join(pieces) == text and all(len(p) <= 25 for p in pieces)
    ends = np.cumsum([len(p) for p in pieces])
    assert all(p[-1] in "，。" for p, e in zip(pieces, ends) if e <= 200)  # a cut after punctuation
    assert "x" * 25 in pieces  # no punctuation or space in reach: a hard cut
    assert list(embedders.text_pieces("", 5)) == [""] and list(embedders.text_pieces("abc", 5)) == ["abc"]


def test_quantize_bounds_the_support_and_moves_wmd_by_at_most_its_coupling_cost():
    import ot

    rng = np.random.default_rng(0)
    for trial in range(6):
        n, m, k = int(rng.integers(30, 80)), int(rng.integers(5, 40)), int(rng.integers(3, 25))
        a = rng.random(n) ** 3
        p = Prepared(a / a.sum(), rng.normal(size=(n, 4)))
        b = rng.random(m)
        q = Prepared(b / b.sum(), rng.normal(size=(m, 4)))
        r = quantize(p, "wmd", k)
        assert r.x.shape == (k, 4) and r.a.sum() == pytest.approx(1.0) and (r.a > 0).all()
        # brute force: the systematic mass-proportional sample, then each point to its nearest sample point
        cum, centres = np.cumsum(p.a), []
        for j in range(k):
            i = next(i for i in range(n) if cum[i] >= (j + 0.5) / k * cum[-1])
            if i not in centres:
                centres.append(i)
        centres += [i for i in np.argsort(-p.a, kind="stable") if i not in centres][: k - len(centres)]
        centres = sorted(centres)
        np.testing.assert_array_equal(r.x, p.x[centres])  # actual points, original order
        d = np.sqrt(((p.x[:, None, :] - p.x[centres][None]) ** 2).sum(-1))
        owner = d.argmin(1)
        owner[centres] = np.arange(k)
        np.testing.assert_allclose(r.a, np.bincount(owner, weights=p.a, minlength=k))
        eps = float(sum(p.a[i] * d[i, owner[i]] for i in range(n)))  # the coupling's cost
        exact = ot.emd2(p.a, q.a, transport.cost_matrix(p.x, q.x, "wmd"))
        reduced = ot.emd2(r.a, q.a, transport.cost_matrix(r.x, q.x, "wmd"))
        assert abs(exact - reduced) <= eps + 1e-9
    u = rng.normal(size=(40, 5))
    w = quantize(Prepared(np.full(40, 1 / 40), u / np.linalg.norm(u, axis=1, keepdims=True)), "wrd", 7)
    np.testing.assert_allclose(np.linalg.norm(w.x, axis=1), 1.0)  # WRD points stay unit vectors


def test_prepare_caps_the_support_and_leaves_smaller_documents_alone():
    rng = np.random.default_rng(1)
    doc = Doc(tokens=[f"w{i}" for i in range(30)], vectors=rng.normal(size=(30, 6)), counts=rng.integers(1, 4, 30))
    for metric in ("wmd", "wrd"):
        full = prepare(doc, metric, max_support=None)
        same = prepare(doc, metric, max_support=30)
        assert np.array_equal(full.a, same.a) and np.array_equal(full.x, same.x)
        assert len(prepare(doc, metric, max_support=10).a) == 10


def test_every_transport_problem_stays_under_the_cap(tmp_path, monkeypatch):
    """A text with more distinct words than MAX_SUPPORT (static vectors) against a long one: the
    cost matrices the solver sees are at most MAX_SUPPORT on each side."""
    from nlptool.similarity import load_embedder, score_pairs

    rng = np.random.default_rng(2)
    n_words, dim = MAX_SUPPORT + 500, 8
    vec = tmp_path / "v.txt"
    with open(vec, "w", encoding="utf-8") as fh:
        fh.write(f"{n_words} {dim}\n")
        for i in range(n_words):
            fh.write(f"w{i} " + " ".join(f"{x:.4f}" for x in rng.normal(size=dim)) + "\n")
    emb = load_embedder(vectors=str(vec))
    shapes = []
    real = transport.cost_matrix
    monkeypatch.setattr(transport, "cost_matrix", lambda x, y, m: shapes.append((len(x), len(y))) or real(x, y, m))
    a = " ".join(f"w{i}" for i in range(n_words))
    b = " ".join(f"w{i % 300}" for i in range(embedders.STREAM_CHARS))  # longer than STREAM_CHARS: split in pieces
    (res,) = score_pairs(emb, [a], [b])
    assert res["wrd"] > 0 and res["wmd"] > 0 and res["warning"].startswith("approximate")
    assert shapes and max(max(s) for s in shapes) <= MAX_SUPPORT
    assert (n_words, 300) not in shapes and (MAX_SUPPORT, 300) in shapes
