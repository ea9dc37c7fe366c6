"""wordvec-dim: n > 8.33 ln N (Su 2020), the exact constant, corpus counting and word2vec reading."""

from __future__ import annotations

import json
import math
import struct
from collections import Counter

import pytest
from typer.testing import CliRunner

from nlptool.cli import app
from nlptool.errors import UsageError
from nlptool.wordvec_dim import EXACT_CONSTANT, count_vocabulary, estimate, read_word2vec_shape, report

runner = CliRunner()


def test_su_numbers():
    # Su: N = 100,000 -> about 96; N = 5,000,000 -> about 128
    e = estimate(100_000)
    assert e["estimate"] == 95.9 and e["min_dim"] == 96
    e = estimate(5_000_000)
    assert e["estimate"] == 128.5 and e["min_dim"] == 129
    assert estimate("5e6") == e and estimate("5,000,000") == e


def test_exact_constant():
    # H = 2 ln N - c n with c = -1/2 ln((sqrt5-1)/2); H > ln N  <=>  n < ln N / c ... the post's bound 2/(2c)
    c = -0.5 * math.log((math.sqrt(5) - 1) / 2)
    assert c == pytest.approx(0.2406, abs=1e-4)  # Su's 0.24
    assert EXACT_CONSTANT == pytest.approx(2 / c) and EXACT_CONSTANT == pytest.approx(8.3123, abs=1e-4)
    assert estimate(100_000)["estimate_exact"] == round(EXACT_CONSTANT * math.log(100_000), 1) == 95.7


@pytest.mark.parametrize("bad", [1, 0, -5, "1", "abc", "2.5", "nan", "inf", "", True])
def test_invalid_vocab_size(bad):
    with pytest.raises(UsageError):
        estimate(bad)


def test_cli_vocab_size_and_table():
    r = runner.invoke(app, ["wordvec-dim", "--vocab-size", "100000"])
    assert r.exit_code == 0, r.output
    obj = json.loads(r.stdout)
    assert obj["estimate"] == 95.9 and obj["min_dim"] == 96 and "8.33 ln N" in obj["formula"]
    r = runner.invoke(app, ["wordvec-dim", "-N", "5e6", "--table"])
    obj = json.loads(r.stdout)
    sizes = [row["vocab_size"] for row in obj["table"]]
    assert sizes == sorted(sizes) and 5_000_000 in sizes and 1000 in sizes
    assert all(row["min_dim"] > 8.33 * math.log(row["vocab_size"]) >= row["min_dim"] - 1 for row in obj["table"])
    for bad in ("1", "abc", "-3", "0"):
        r = runner.invoke(app, ["wordvec-dim", "--vocab-size", bad])
        assert r.exit_code == 2 and "vocabulary size" in r.stderr
    assert runner.invoke(app, ["wordvec-dim"]).exit_code == 2
    assert runner.invoke(app, ["wordvec-dim", "-N", "10", "--vectors", "x"]).exit_code == 2


def test_corpus_count_matches_independent_count(tmp_path):
    lines = ["the cat sat on the mat", "the dog  sat", "", "a cat and a dog", "我爱北京天安门 我爱北京"]
    f = tmp_path / "c.txt"
    f.write_text("\n".join(lines) + "\n", encoding="utf-8")
    ws = Counter(w for ln in lines for w in ln.split())
    got = count_vocabulary([str(f)], "whitespace")
    assert got["vocab_size"] == len(ws) and got["tokens"] == sum(ws.values()) and got["lines"] == len(lines)
    assert count_vocabulary([str(f)], "whitespace", min_count=2)["vocab_size"] == sum(1 for c in ws.values() if c >= 2)
    chars = Counter(c for ln in lines for c in ln if not c.isspace())
    assert count_vocabulary([str(f)], "char")["vocab_size"] == len(chars)
    import jieba

    jw = Counter(w for ln in lines for w in jieba.lcut(ln) if w.strip())
    assert count_vocabulary([str(f)], "jieba")["vocab_size"] == len(jw)
    r = runner.invoke(app, ["wordvec-dim", "--corpus", str(f), "--tokenizer", "whitespace", "-q"])
    assert r.exit_code == 0, r.output
    obj = json.loads(r.stdout)
    assert obj["vocab_size"] == len(ws) and obj["tokens"] == sum(ws.values())
    assert obj["estimate"] == round(8.33 * math.log(len(ws)), 1)


def _vectors(n, d):
    return {f"w{i}": [((i * 7 + j) % 11) / 10 - 0.5 for j in range(d)] for i in range(n)}


def test_vectors_text_binary_glove(tmp_path):
    vecs = _vectors(37, 12)
    txt = tmp_path / "v.txt"
    txt.write_text(f"{len(vecs)} 12\n" + "".join(f"{w} {' '.join(map(str, v))}\n" for w, v in vecs.items()),
                   encoding="utf-8")
    assert read_word2vec_shape(str(txt)) == {"vocab_size": 37, "dim": 12, "format": "word2vec-text"}
    binf = tmp_path / "v.bin"
    with open(binf, "wb") as fh:
        fh.write(f"{len(vecs)} 12\n".encode())
        for w, v in vecs.items():
            fh.write(w.encode() + b" " + struct.pack("12f", *v))
    assert read_word2vec_shape(str(binf)) == {"vocab_size": 37, "dim": 12, "format": "word2vec-binary"}
    glove = tmp_path / "g.txt"
    glove.write_text("".join(f"{w} {' '.join(map(str, v))}\n" for w, v in vecs.items()), encoding="utf-8")
    assert read_word2vec_shape(str(glove)) == {"vocab_size": 37, "dim": 12, "format": "glove-text"}
    r = runner.invoke(app, ["wordvec-dim", "--vectors", str(txt)])
    obj = json.loads(r.stdout)
    assert obj["vocab_size"] == 37 and obj["dim"] == 12
    assert obj["above_estimate"] is (12 > 8.33 * math.log(37))  # 30.1: below
    assert report(1000, dim=64)["above_estimate"] is True  # 8.33 ln 1000 = 57.5
    bad = tmp_path / "bad.txt"
    bad.write_text("hello\n", encoding="utf-8")
    r = runner.invoke(app, ["wordvec-dim", "--vectors", str(bad)])
    assert r.exit_code == 3 and "word2vec" in r.stderr


# ---------------------------------------------------------------------------------------------
# the --rules formulas against their references; --corpus - reads stdin; bad values exit 2
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [2, 10, 1000, 100_000, 5_000_000, 10**9])
@pytest.mark.parametrize("eps", [0.1, 0.3, 0.5, 0.9])
def test_jl_rule_equals_sklearn(n, eps):
    from sklearn.random_projection import johnson_lindenstrauss_min_dim

    from nlptool.wordvec_dim import jl_min_dim

    assert jl_min_dim(n, eps) == int(johnson_lindenstrauss_min_dim(n, eps=eps))


def test_fastai_and_fourth_root_rules():
    """fastai is not installed (it pulls its own torch); its emb_sz_rule is one line, checked by
    hand here: 1.6 * 10**0.56 = 5.81 -> 6; 1.6 * 1000**0.56 = 76.6 -> 77; capped at 600."""
    from nlptool.wordvec_dim import fastai_emb_size, fourth_root, rules

    def emb_sz_rule(n_cat):  # fastai/tabular/model.py
        return min(600, round(1.6 * n_cat**0.56))

    assert fastai_emb_size(10) == 6 and fastai_emb_size(1000) == 77 and fastai_emb_size(10**6) == 600
    for n in (2, 37, 500, 12345, 99_999):
        assert fastai_emb_size(n) == emb_sz_rule(n)
    assert fourth_root(10_000) == 10 and fourth_root(10_001) == 11 and fourth_root(16) == 2 and fourth_root(17) == 3
    got = {r["rule"]: r for r in rules(100_000)}
    assert set(got) == {"su2020", "johnson-lindenstrauss", "fastai", "fourth-root"}
    assert got["su2020"]["dim"] == 96 and got["fourth-root"]["dim"] == 18 and got["fastai"]["dim"] == 600
    assert all(r["source"] for r in got.values())
    with pytest.raises(UsageError):
        rules(100, jl_eps=1.0)


def test_cli_rules_and_bad_values(tmp_path):
    r = runner.invoke(app, ["wordvec-dim", "-N", "100000", "--rules", "--jl-eps", "0.5"])
    assert r.exit_code == 0, r.output
    obj = json.loads(r.stdout)
    from sklearn.random_projection import johnson_lindenstrauss_min_dim

    jl = next(x for x in obj["rules"] if x["rule"] == "johnson-lindenstrauss")
    assert jl["dim"] == int(johnson_lindenstrauss_min_dim(100_000, eps=0.5)) and "eps = 0.5" in jl["formula"]
    for bad in (["-N", "10", "--jl-eps", "0"], ["-N", "10", "--jl-eps", "1"], ["-N", "10", "--jl-eps", "nan"],
                ["--corpus", "x", "--tokenizer", "bogus"], ["--corpus", "x", "--min-count", "0"],
                ["--corpus", str(tmp_path / "nope.txt")], ["--table", "--rules"]):
        r = runner.invoke(app, ["wordvec-dim", *bad])
        assert r.exit_code == 2, (bad, r.output)
    r = runner.invoke(app, ["wordvec-dim", "--corpus", str(tmp_path)])
    assert r.exit_code == 2 and "directory" in r.stderr
    r = runner.invoke(app, ["wordvec-dim", "--vectors", str(tmp_path)])
    assert r.exit_code == 2 and "directory" in r.stderr


def test_cli_corpus_stdin_equals_file(tmp_path):
    text = "the cat sat on the mat\na dog and a cat\n"
    f = tmp_path / "c.txt"
    f.write_text(text, encoding="utf-8")
    r1 = runner.invoke(app, ["wordvec-dim", "--corpus", str(f), "--tokenizer", "whitespace", "-q"])
    r2 = runner.invoke(app, ["wordvec-dim", "--corpus", "-", "--tokenizer", "whitespace", "-q"], input=text)
    assert r1.exit_code == 0 and r2.exit_code == 0, r2.output
    o1, o2 = json.loads(r1.stdout), json.loads(r2.stdout)
    assert o1["vocab_size"] == o2["vocab_size"] == len(set(text.split())) and o2["corpus"] == ["-"]


def test_library_entry_point_holds_the_option_rules(tmp_path):
    """The CLI calls wordvec_dim.wordvec_dim; a Python user gets the same object and the same refusals."""
    from nlptool.errors import UsageError
    from nlptool.wordvec_dim import FORMULA, report, table, wordvec_dim

    assert wordvec_dim(vocab_size="1e5") == report(100_000)
    assert wordvec_dim(with_table=True) == {"formula": FORMULA, "table": table()}
    corpus = tmp_path / "c.txt"
    corpus.write_text("a b a\nc d\n", encoding="utf-8")
    lines: list[str] = []
    got = wordvec_dim(corpus=[str(corpus)], tokenizer="whitespace", min_count=1, log=lines.append)
    assert got["vocab_size"] == 4 and got["tokens"] == 5 and got["lines"] == 2
    assert lines == ["2 lines, 5 whitespace tokens, 4 words with count >= 1"]
    for kwargs, msg in [
        ({"vocab_size": 100, "corpus": [str(corpus)]}, "only one of"),
        ({}, "give --vocab-size"),
        ({"with_table": True, "with_rules": True}, "--rules needs"),
        ({"corpus": [str(corpus)], "tokenizer": "whitespace", "min_count": 2}, "the estimate needs N > 1"),
        ({"corpus": [str(tmp_path / "missing.txt")]}, "missing.txt"),
    ]:
        with pytest.raises(UsageError, match=msg):
            wordvec_dim(**kwargs)
