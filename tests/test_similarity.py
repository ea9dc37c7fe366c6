"""WMD / WRD: exact values against an independent LP, lower bounds, pruned k-NN, degenerate input, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.optimize import linprog
from scipy.spatial.distance import cdist

from nlptool.similarity import (
    CorpusIndex,
    Doc,
    distance,
    emd,
    knn_search,
    load_idf,
    pair_distances,
    prepare,
    rwmd,
    sinkhorn_batch,
    wcd,
)
from nlptool.similarity.vectors import load_word2vec, save_word2vec, split_words


def lp_transport(a, b, cost) -> float:
    """min <T, C> s.t. T 1 = a, T^T 1 = b, T >= 0, solved as a plain LP (HiGHS)."""
    n, m = cost.shape
    rows = np.zeros((n + m, n * m))
    for i in range(n):
        rows[i, i * m:(i + 1) * m] = 1.0
    for j in range(m):
        rows[n + j, j::m] = 1.0
    res = linprog(cost.ravel(), A_eq=rows, b_eq=np.concatenate([a, b]), bounds=(0, None), method="highs")
    assert res.status == 0
    return float(res.fun)


def reference(doc_a: Doc, doc_b: Doc, metric: str) -> float:
    """WMD/WRD from the papers' definitions, written independently of the library."""
    xa, xb = doc_a.vectors, doc_b.vectors
    wa, wb = doc_a.counts * doc_a.idf, doc_b.counts * doc_b.idf
    if metric == "wmd":  # Kusner et al.: nBOW, Euclidean
        a, b, cost = wa / wa.sum(), wb / wb.sum(), cdist(xa, xb, "euclidean")
    else:  # Yokoi et al.: norm weights, 1 - cos
        na, nb = np.linalg.norm(xa, axis=1) * wa, np.linalg.norm(xb, axis=1) * wb
        a, b, cost = na / na.sum(), nb / nb.sum(), cdist(xa, xb, "cosine")
    return lp_transport(a, b, cost)


def random_doc(rng, n, dim=5, name="t", idf=False):
    return Doc(
        tokens=[f"{name}{i}" for i in range(n)],
        vectors=rng.normal(size=(n, dim)) * rng.uniform(0.2, 3.0, size=(n, 1)),
        counts=rng.integers(1, 4, size=n).astype(float),
        idf=rng.uniform(0.5, 3.0, size=n) if idf else None,
    )


@pytest.mark.parametrize("metric", ["wmd", "wrd"])
def test_exact_distance_equals_lp(metric):
    rng = np.random.default_rng(1)
    for trial in range(40):
        da = random_doc(rng, int(rng.integers(1, 7)), name="a", idf=trial % 2 == 1)
        db = random_doc(rng, int(rng.integers(1, 7)), name="b", idf=trial % 3 == 1)
        assert distance(da, db, metric) == pytest.approx(reference(da, db, metric), abs=1e-6)


def test_wrd_in_range_and_distances_only():
    rng = np.random.default_rng(2)
    docs_a = [random_doc(rng, int(rng.integers(1, 6)), name="a") for _ in range(20)]
    docs_b = [random_doc(rng, int(rng.integers(1, 6)), name="b") for _ in range(20)]
    # opposite vectors reach the upper end of the range
    docs_a.append(Doc(tokens=["x"], vectors=[[1.0, 2.0]]))
    docs_b.append(Doc(tokens=["y"], vectors=[[-2.0, -4.0]]))
    for res in pair_distances(docs_a, docs_b):
        assert 0.0 <= res["wrd"] <= 2.0 + 1e-12
        assert set(res) == {"wmd", "wrd"}  # distances only: the pair score is score_pairs' blend
    assert res["wrd"] == pytest.approx(2.0)


@pytest.mark.parametrize("metric", ["wmd", "wrd"])
def test_lower_bounds(metric):
    rng = np.random.default_rng(3)
    for _ in range(200):
        da = random_doc(rng, int(rng.integers(1, 8)), name="a")
        db = random_doc(rng, int(rng.integers(1, 8)), name="b")
        pa, pb = prepare(da, metric), prepare(db, metric)
        exact = emd(pa, pb, metric)
        assert wcd(pa, pb, metric) <= exact + 1e-9
        assert rwmd(pa, pb, metric) <= exact + 1e-9


def test_single_token_is_weighted_mean_cost():
    rng = np.random.default_rng(4)
    one = Doc(tokens=["x"], vectors=rng.normal(size=(1, 4)))
    other = random_doc(rng, 5, dim=4)
    b = other.counts / other.counts.sum()
    expect = float(b @ np.linalg.norm(other.vectors - one.vectors, axis=1))
    assert distance(one, other, "wmd") == pytest.approx(expect, abs=1e-12)
    assert distance(one, Doc(tokens=["y"], vectors=one.vectors * 3), "wrd") == pytest.approx(0.0, abs=1e-12)


def test_identical_and_empty_docs():
    rng = np.random.default_rng(5)
    d = random_doc(rng, 4)
    same = Doc(tokens=list(d.tokens), vectors=d.vectors.copy(), counts=d.counts.copy())
    empty = Doc(tokens=[], vectors=np.zeros((0, 5)))
    oov = Doc(tokens=[], vectors=np.zeros((0, 5)), oov=["foo", "bar"])
    res = pair_distances([d, d, empty, d], [same, empty, empty, oov])
    assert res[0] == {"wmd": 0.0, "wrd": 0.0}
    assert isinstance(res[1], Exception) and "second text: no tokens" in str(res[1])
    assert "first text" in str(res[2]) and "second text" in str(res[2])
    assert "all 2 words are out of vocabulary" in str(res[3])
    # without the identity shortcut the solver also gives 0 (diagonal costs are exactly 0)
    for metric in ("wmd", "wrd"):
        assert emd(prepare(d, metric), prepare(same, metric), metric) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("metric", ["wmd", "wrd"])
def test_sinkhorn_batch_matches_pot_per_problem(metric):
    import ot

    rng = np.random.default_rng(6)
    problems = []
    for _ in range(7):
        pa = prepare(random_doc(rng, int(rng.integers(1, 7))), metric)
        pb = prepare(random_doc(rng, int(rng.integers(1, 7))), metric)
        problems.append((pa, pb))
    got = sinkhorn_batch(problems, metric, reg=0.05, batch_size=3, tol=1e-9, max_iter=5000)
    from nlptool.similarity import cost_matrix

    for (pa, pb), g in zip(problems, got):
        want = ot.sinkhorn2(pa.a, pb.a, cost_matrix(pa.x, pb.x, metric), 0.05, method="sinkhorn_log",
                            numItermax=5000, stopThr=1e-9)
        assert g == pytest.approx(float(want), abs=1e-6)
        assert g >= emd(pa, pb, metric) - 1e-6  # a feasible plan costs at least the optimum


def test_sinkhorn_flags_a_plan_that_did_not_converge():
    """A regularisation so small that log-Sinkhorn stops at max_iter before its
    marginals match is reported (marginal error above the tolerance, a warning in pair mode), while a
    converged run's marginal error is ~0."""
    from nlptool.similarity.transport import SINKHORN_MARGINAL_TOL, pair_distances

    rng = np.random.default_rng(7)
    docs = [(random_doc(rng, 5), random_doc(rng, 6)) for _ in range(3)]
    problems = [(prepare(a, "wmd"), prepare(b, "wmd")) for a, b in docs]
    errs: list = []
    sinkhorn_batch(problems, "wmd", reg=0.05, tol=1e-9, max_iter=5000, marginal_errors=errs)
    assert max(errs) < 1e-6
    errs = []
    sinkhorn_batch(problems, "wmd", reg=1e-6, max_iter=20, marginal_errors=errs)
    assert max(errs) > SINKHORN_MARGINAL_TOL
    res = pair_distances([a for a, _ in docs], [b for _, b in docs], metrics=("wmd",), solver="sinkhorn", reg=1e-7)
    assert any("did not converge" in r.get("warning", "") for r in res if isinstance(r, dict))


def clustered_corpus(rng, n_docs, dim=6):
    centers = rng.normal(size=(8, dim)) * 3
    docs = []
    for i in range(n_docs):
        c = centers[rng.integers(0, len(centers))]
        n = int(rng.integers(1, 7))
        docs.append(Doc(tokens=[f"d{i}_{j}" for j in range(n)], vectors=c + rng.normal(size=(n, dim)),
                        counts=rng.integers(1, 3, size=n).astype(float)))
    return docs


@pytest.mark.parametrize("metric", ["wmd", "wrd"])
def test_pruned_knn_equals_brute_force(metric):
    rng = np.random.default_rng(7)
    corpus = clustered_corpus(rng, 120)
    corpus[10] = Doc(tokens=[], vectors=np.zeros((0, 6)))  # never a neighbour
    corpus[20] = corpus[21]  # exact tie: broken by index in both
    index = CorpusIndex(corpus, metric)
    avoided = 0
    for q in clustered_corpus(rng, 12) + [corpus[21]]:
        brute = sorted((distance(q, d, metric), i) for i, d in enumerate(corpus) if len(d))
        for k in (1, 3, 10):
            res = knn_search(q, index, k)
            assert [i for i, _ in res.neighbors] == [i for _, i in brute[:k]]
            assert [d for _, d in res.neighbors] == pytest.approx([d for d, _ in brute[:k]], abs=1e-12)
            assert res.exact_solves + res.avoided == len(corpus) - 1
            assert res.exact_solves >= k
            assert knn_search(q, index, k, prune=False).neighbors == res.neighbors
            avoided += res.avoided
    assert avoided > 0  # the bounds do prune on clustered data


# ----------------------------------------------------------------------------------- vectors


def write_vectors(tmp_path, binary=False):
    rng = np.random.default_rng(8)
    words = ["一个", "女人", "人", "在", "弹", "吉他", "男人", "跳舞", "the", "cat", "sat", "mat", "dog"]
    vecs = rng.normal(size=(len(words), 8)).astype(np.float32)
    path = tmp_path / ("vec.bin" if binary else "vec.txt")
    save_word2vec(path, words, vecs, binary=binary)
    return path, words, vecs


def test_word2vec_text_and_binary(tmp_path):
    pt, words, vecs = write_vectors(tmp_path, binary=False)
    pb, _, _ = write_vectors(tmp_path, binary=True)
    wt, wb = load_word2vec(pt), load_word2vec(pb)
    assert wt.words == words == wb.words
    np.testing.assert_array_equal(wt.vectors, vecs)
    np.testing.assert_array_equal(wb.vectors, vecs)
    assert len(load_word2vec(pb, limit=3)) == 3
    assert wt.lookup("Cat") == words.index("cat")


def test_split_words():
    assert split_words("The cat, sat!") == ["The", "cat", "sat"]
    zh = split_words("一个女人在弹吉他。")
    assert "".join(zh) == "一个女人在弹吉他" and len(zh) >= 4


def test_idf_table_and_corpus(tmp_path):
    table = tmp_path / "idf.tsv"
    table.write_text("a\t1.5\nb\t3.0\n", encoding="utf-8")
    idf, default = load_idf(table, str.split)
    assert idf == {"a": 1.5, "b": 3.0} and default == 3.0
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("a b\na c\na\n", encoding="utf-8")
    idf, default = load_idf(corpus, str.split)
    assert idf["a"] == pytest.approx(1.0) and idf["b"] > idf["a"] and default > idf["b"]


# ----------------------------------------------------------------------------------- contextual


def test_contextual_identity_and_long_text(tiny_bert_dir):
    from nlptool.models import load_model
    from nlptool.similarity import ContextualEmbedder

    loaded = load_model(tiny_bert_dir, kind="masked-lm", device="cpu")
    emb = ContextualEmbedder(loaded, layers=(1, -1), batch_size=2)
    text = "一个女人在弹吉他。"
    long_text = "我们在学校里学习中文和数学。" * 12  # 168 characters > the 64-position window
    docs = emb.embed([text, long_text, "", "他", text + "的"])
    assert len(docs[0]) == len(text)  # character tokens, [CLS]/[SEP] excluded
    assert len(docs[1]) == len(long_text) and np.isfinite(docs[1].vectors).all()
    assert len(docs[2]) == 0
    alone = emb.embed([text])[0]
    np.testing.assert_allclose(alone.vectors, docs[0].vectors, atol=1e-5)  # batching does not matter
    assert pair_distances([docs[0]], [alone])[0]["wrd"] == 0.0
    for metric in ("wmd", "wrd"):
        assert emd(prepare(docs[0], metric), prepare(alone, metric), metric) == pytest.approx(0.0, abs=1e-6)
    res = pair_distances([docs[0], docs[3], docs[1]], [docs[4], docs[4], docs[0]])
    assert all(isinstance(r, dict) for r in res)
    assert res[0]["wrd"] > 0 and res[1]["wmd"] > 0


# ----------------------------------------------------------------------------------- CLI

PAIRS = [
    ("一个女人在弹吉他。", "一个人在弹吉他。"),
    ("一个男人在跳舞。", "一个男人在跳舞。"),
    ("他说中文", "她在学习"),
    ("", "空"),
]


def run(args, input=None):
    from typer.testing import CliRunner

    from nlptool.cli import app

    return CliRunner().invoke(app, ["similarity", *args], input=input)


def test_cli_pairs_file_stdin_tsv_identical(tiny_bert_dir, tmp_path):
    jsonl = tmp_path / "pairs.jsonl"
    jsonl.write_text("".join(json.dumps({"sentence1": a, "sentence2": b}, ensure_ascii=False) + "\n"
                             for a, b in PAIRS), encoding="utf-8")
    tsv = tmp_path / "pairs.tsv"
    tsv.write_text("".join(f"{a}\t{b}\n" for a, b in PAIRS), encoding="utf-8")
    common = ["--model", tiny_bert_dir, "--device", "cpu", "-q"]
    r_file = run([str(jsonl), *common])
    r_stdin = run(["-", *common], input=jsonl.read_text(encoding="utf-8"))
    r_tsv = run([str(tsv), *common])
    for r in (r_file, r_stdin, r_tsv):
        assert r.exit_code == 0, r.output
    # identical, except the file name inside the error record of the empty text
    assert r_file.stdout.replace(str(jsonl), "<stdin>") == r_stdin.stdout
    assert r_tsv.stdout.replace(str(tsv), "<stdin>") == r_stdin.stdout
    rows = [json.loads(x) for x in r_file.stdout.splitlines()]
    assert len(rows) == len(PAIRS)
    assert rows[1]["wmd"] == 0.0 and rows[1]["wrd"] == 0.0 and rows[1]["similarity"] == pytest.approx(1.0)
    # the pair score blends the mean-vector cosine with the character Jaccard
    from nlptool.similarity import CHAR_WEIGHT, char_jaccard

    a, b = PAIRS[0][:2]
    assert rows[0]["similarity"] == pytest.approx((1 - CHAR_WEIGHT) * rows[0]["cos"] + CHAR_WEIGHT * char_jaccard(a, b))
    assert "error" in rows[3] and rows[3]["line"] == 4
    r = run([str(jsonl), *common, "--strict"])
    assert r.exit_code == 3
    r = run([str(jsonl), *common, "--metric", "wrd", "--solver", "sinkhorn", "--reg", "0.01"])
    assert r.exit_code == 0, r.output
    sk = [json.loads(x) for x in r.stdout.splitlines()]
    assert "wmd" not in sk[0] and sk[0]["wrd"] == pytest.approx(rows[0]["wrd"], abs=0.05)
    assert run([str(jsonl), *common, "--solver", "sinkhorn"]).exit_code == 2


def test_cli_static_vectors_oov(tmp_path):
    path, _, _ = write_vectors(tmp_path, binary=True)
    tsv = tmp_path / "pairs.tsv"
    tsv.write_text("一个女人在弹吉他\t一个男人在跳舞\nthe cat sat\tthe dog sat on the mat\n"
                   "陌生词汇\tthe cat\n", encoding="utf-8")
    r = run([str(tsv), "--vectors", str(path)])
    assert r.exit_code == 0, r.output
    rows = [json.loads(x) for x in r.stdout.splitlines()]
    assert rows[0]["oov"] == 0 and rows[1]["oov"] == 1  # "on"
    assert "out of vocabulary" in rows[2]["error"]
    assert "out of vocabulary:" in r.stderr


def test_cli_search_matches_brute_force(tiny_bert_dir, tmp_path):
    from nlptool.models import load_model
    from nlptool.similarity import ContextualEmbedder

    corpus = ["一个女人在弹吉他。", "一个男人在跳舞。", "他说中文。", "她在学习数学。", "我们去学校。",
              "孩子在骑马。", "一个人在切洋葱。", "", "天气很好。", "老师在上课。"]
    queries = ["一个人在弹吉他。", "孩子们在学校学习。", "男人跳舞"]
    (tmp_path / "c.txt").write_text("\n".join(corpus) + "\n", encoding="utf-8")
    (tmp_path / "q.txt").write_text("\n".join(queries) + "\n", encoding="utf-8")
    r = run(["--query", str(tmp_path / "q.txt"), "--corpus", str(tmp_path / "c.txt"), "--top-k", "3",
             "--metric", "wrd", "--model", tiny_bert_dir, "--device", "cpu", "--layer", "-1"])
    assert r.exit_code == 0, r.output
    rows = [json.loads(x) for x in r.stdout.splitlines()]
    emb = ContextualEmbedder(load_model(tiny_bert_dir, kind="masked-lm", device="cpu"), layers=(-1,))
    cdocs = emb.embed(corpus)
    for q, row in zip(emb.embed(queries), rows):
        brute = sorted((distance(q, d, "wrd"), i) for i, d in enumerate(cdocs) if len(d))[:3]
        assert [n["line"] for n in row["neighbors"]] == [i + 1 for _, i in brute]
        assert row["exact_solves"] + row["avoided"] == len(corpus) - 1
    assert "avoided by WCD/RWMD pruning" in r.stderr


def test_whitening_and_cli_options(tiny_bert_dir, tmp_path):
    from nlptool.similarity import Whitening, builtin_idf_path

    rng = np.random.default_rng(9)
    x = rng.normal(size=(500, 6)) @ rng.normal(size=(6, 6)) + 3.0
    z = Whitening.fit(x).apply(x)
    np.testing.assert_allclose(z.mean(0), 0, atol=1e-9)
    np.testing.assert_allclose(np.cov(z.T), np.eye(6), atol=1e-4)  # eps=1e-8 regularises s
    idf, default = load_idf(builtin_idf_path("zh-bert-mini"), str.split)
    assert idf["的"] < idf["吉"] <= default  # a function character is less informative

    tsv = tmp_path / "pairs.tsv"
    tsv.write_text("".join(f"{a}\t{b}\n" for a, b in PAIRS[:3]), encoding="utf-8")
    fit = tmp_path / "fit.txt"
    fit.write_text("\n".join(["我们在学校里学习中文。", "他说天气很好。", "一个女人在弹吉他。"] * 20), encoding="utf-8")
    common = [str(tsv), "--model", tiny_bert_dir, "--device", "cpu", "-q"]
    plain = [json.loads(x) for x in run(common).stdout.splitlines()]
    r = run([*common, "--whiten", str(fit), "--drop-punct", "--idf", str(fit)])
    assert r.exit_code == 0, r.output
    rows = [json.loads(x) for x in r.stdout.splitlines()]
    assert rows[1]["wrd"] == 0.0 and rows[0]["wrd"] != pytest.approx(plain[0]["wrd"])
    assert run([*common, "--uniform", "--idf", str(fit)]).exit_code == 2
    assert run([*common, "--whiten", str(tmp_path / "missing.txt")]).exit_code == 2


def test_the_similarity_object_owns_the_rules_of_options_and_modes():
    """Every rule of `nlptool similarity` lives in nlptool.similarity (Similarity, check_options):
    the CLI only parses and dispatches on the mode the object selects."""
    from nlptool.errors import UsageError
    from nlptool.similarity import Similarity

    s = Similarity()
    assert s.select_mode(["p.tsv"]) == "pairs" and s.select_mode(query="q", corpus="c") == "search"
    assert s.select_mode(["t.txt"], matrix="m.npy") == "matrix"
    assert Similarity(pool="mean").select_mode(query="q", corpus="c", matrix="m.npy") == "matrix"
    assert Similarity(solver="sinkhorn", reg=0.05).select_mode([], engine="ray") == "pairs"
    for bad in (lambda: s.select_mode(query="q"), lambda: s.select_mode(["p"], query="q", corpus="c"),
                lambda: s.select_mode(query="q", corpus="c", engine="ray"),
                lambda: s.select_mode(["t"], matrix="m.npy", output_dir="out"),
                lambda: Similarity(pool="mean").select_mode(query="q", corpus="c"),
                lambda: Similarity(solver="sinkhorn", reg=0.05).select_mode(["t"], matrix="m.npy"),
                lambda: Similarity(solver="sinkhorn", reg=0.05).search(["a"], ["b"]),
                lambda: Similarity(solver="sinkhorn"), lambda: Similarity(idf="x.tsv", uniform=True),
                lambda: Similarity(vectors="v.txt", drop_punct=True), lambda: Similarity(layers="1,x"),
                lambda: Similarity(metric="cos")):
        with pytest.raises(UsageError):
            bad()
    assert Similarity(layers="1,-1").config["layers"] == (1, -1) == Similarity(layers=[1, -1]).config["layers"]
    assert Similarity(layer=2).config["layers"] == (2,) and s.config["layers"] == (-1,)


def test_the_cli_module_imports_no_similarity_library_code():
    """The CLI reads its defaults from nlptool.similarity.command without importing numpy (the
    package's other names are imported on first use)."""
    import subprocess
    import sys

    code = ("import sys, nlptool.cli.similarity, nlptool.similarity as s; "
            "print([m for m in ('numpy', 'nlptool.similarity.api') if m in sys.modules], s.DEFAULT_MODEL); "
            "from nlptool.similarity import score_pairs, search; print(callable(score_pairs), search.__name__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split("\n")[:2] == ["[] zh-sim-mini", "True nlptool.similarity.search"], out.stdout


#: Run in a fresh process (``pot()`` imports POT once per process): POT imported by ``pot()``, with
#: the garbage collector in the state given, against a plain ``import ot`` in a second process.
#: torch first, as in every nlptool command (the thread rule imports it): torch's import looks at
#: every module's ``__file__`` (``inspect.getmodule``), which would run a deferred module.
_POT_PROBE = """
import gc, json, sys
import numpy as np
import torch
if sys.argv[1] == "plain":
    import ot
else:
    from nlptool.similarity.transport import pot
    if sys.argv[1] == "gc-off":
        gc.disable()
    ot = pot()
lazy = sorted(n for n, m in sys.modules.items() if type(m).__name__ == "_LazyModule")
loaded = sorted(n for n in sys.modules if n not in lazy)
rng = np.random.default_rng(0)
vals = []
for n, m in ((1, 3), (7, 5), (40, 60)):
    a, b = rng.random(n), rng.random(m)
    cost = rng.random((n, m))
    vals.append(ot.emd2(a / a.sum(), b / b.sum(), cost, numItermax=1_000_000, check_marginals=False, center_dual=False))
out = {"gc": gc.isenabled(), "lazy": lazy, "loaded": loaded, "vals": [repr(float(v)) for v in vals]}
import numpy.f2py, ot.datasets  # the deferred modules still work when used
out["f2py"] = callable(numpy.f2py.run_main)
out["datasets"] = ot.datasets.make_1D_gauss(5, 2, 1).shape == (5,)
print(json.dumps(out))
"""


def _pot_probe(mode: str) -> dict:
    import subprocess
    import sys

    res = subprocess.run([sys.executable, "-c", _POT_PROBE, mode], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


def test_pot_import_defers_unused_modules_restores_gc_and_solves_as_plain_pot():
    plain, ours, ours_gc_off = _pot_probe("plain"), _pot_probe("gc-on"), _pot_probe("gc-off")
    # same solver, same floats, byte for byte
    assert ours["vals"] == plain["vals"] == ours_gc_off["vals"]
    # the collector is paused only while POT imports: left as it was found
    assert ours["gc"] is True and ours_gc_off["gc"] is False and plain["gc"] is True
    # numpy.f2py (and through it charset_normalizer) and ot.datasets (scipy.stats) are not run by the import...
    for res in (ours, ours_gc_off):
        assert {"numpy.f2py", "ot.datasets"} <= set(res["lazy"])
        heavy = [m for m in res["loaded"] if m.split(".")[0] in ("charset_normalizer", "sklearn", "networkx")
                 or m.startswith(("numpy.f2py.", "scipy.stats"))]
        assert not heavy, heavy
    # ...whereas a plain import runs them (so the check above can fail)
    assert "numpy.f2py" in plain["loaded"] and "ot.datasets" in plain["loaded"]
    # and they work when used
    assert ours["f2py"] and ours["datasets"]
