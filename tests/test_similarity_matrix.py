"""`similarity --matrix`, several references and `--pool mean`, each checked against the pair mode."""

from __future__ import annotations

import json

import numpy as np
import pytest

TEXTS = ["一个女人在弹吉他。", "一个男人在跳舞。", "他说中文。", "", "一个人在弹吉他。", "孩子在骑马。",
         "一个男人在跳舞。"]


@pytest.fixture(scope="module")
def embedder(tiny_bert_dir):
    from nlptool.models import load_model
    from nlptool.similarity import load_embedder

    return load_embedder(load_model(tiny_bert_dir, kind="masked-lm", device="cpu"), batch_size=3)


def records(tmp_path, texts, name="t.txt"):
    from nlptool.records import read_records

    path = tmp_path / name
    path.write_text("\n".join(texts) + "\n", encoding="utf-8")
    return path, read_records([str(path)], input_format="text", keys=["text"])


@pytest.mark.parametrize("metric,pool,key", [("wrd", "none", "wrd"), ("wmd", "none", "wmd"), ("both", "mean", "cos")])
def test_matrix_equals_pair_mode(embedder, tmp_path, metric, pool, key):
    from nlptool.similarity import matrix, score_pairs

    _, recs = records(tmp_path, TEXTS)
    out = tmp_path / "m.npy"
    rows = list(matrix(recs, embedder, out, metric=metric, pool=pool, top_k=2, block_rows=2))
    m = np.load(out)
    n = len(TEXTS)
    assert m.shape == (n, n) and len(rows) == n
    for i in range(n):
        res = score_pairs(embedder, [TEXTS[i]] * n, TEXTS, metric=metric, pool=pool)
        for j, r in enumerate(res):
            if isinstance(r, Exception):
                assert np.isnan(m[i, j])
            else:
                want = 1.0 - r["cos"] if key == "cos" else r[key]
                assert m[i, j] == pytest.approx(want, abs=1e-9)
    assert m[1, 6] == 0.0 or key == "cos"  # identical texts: exactly 0 in the transport
    # top-k per row = the k smallest off-diagonal finite values (ties by column index)
    for i, row in enumerate(rows):
        if i == 3:
            assert "error" in row
            continue
        vals = [(m[i, j], j) for j in range(n) if j != i and np.isfinite(m[i, j])]
        assert [nb["index"] for nb in row["neighbors"]] == [j for _, j in sorted(vals)[:2]]
        assert row["neighbors"][0]["distance"] == pytest.approx(sorted(vals)[0][0])
        assert row["text"] == TEXTS[i]


def test_matrix_queries_by_corpus_and_strict(embedder, tmp_path):
    from nlptool.errors import InputDataError
    from nlptool.similarity import matrix, score_pairs

    _, q = records(tmp_path, TEXTS[:3], "q.txt")
    _, c = records(tmp_path, TEXTS[3:], "c.txt")
    out = tmp_path / "qc.npy"
    rows = list(matrix(q, embedder, out, col_records=c, metric="wrd", top_k=10, block_rows=1))
    m = np.load(out)
    assert m.shape == (3, 4) and np.isnan(m[:, 0]).all()
    for i in range(3):
        res = score_pairs(embedder, [TEXTS[i]] * 3, TEXTS[4:], metric="wrd")
        np.testing.assert_allclose(m[i, 1:], [r["wrd"] for r in res], atol=1e-12)
        assert len(rows[i]["neighbors"]) == 3  # the empty corpus text is never a neighbour
    _, recs = records(tmp_path, TEXTS, "s.txt")
    with pytest.raises(InputDataError):
        list(matrix(recs, embedder, tmp_path / "s.npy", strict=True))
    assert not (tmp_path / "s.npy").exists()  # written whole or not at all


def test_several_references_equal_pair_mode(embedder):
    from nlptool.similarity import score_pairs

    refs = ["一个人在弹吉他。", "孩子在骑马。", "一个女人在弹吉他。"]
    [multi] = score_pairs(embedder, [TEXTS[0]], [refs])
    single = score_pairs(embedder, [TEXTS[0]] * 3, refs)
    assert multi["wrd"] == [s["wrd"] for s in single] and multi["wmd"] == [s["wmd"] for s in single]
    assert multi["wrd_min"] == min(multi["wrd"]) == 0.0 and multi["best"] == 2
    assert multi["similarity"] == pytest.approx(1.0) and multi["similarity"] == max(s["similarity"] for s in single)
    [mean] = score_pairs(embedder, [TEXTS[0]], [refs[:2]], pool="mean")
    assert mean["cos_max"] == max(mean["cos"]) and mean["best"] == int(np.argmax(mean["cos"]))
    bad = score_pairs(embedder, [TEXTS[0], TEXTS[0]], [["", "猫"], []])
    assert "reference 0" in str(bad[0]) and "empty" in str(bad[1])


def test_pool_mean_is_cosine_of_mean_token_vectors(embedder):
    from nlptool.similarity import load_embedder, score_pairs

    plain = load_embedder(embedder.loaded, uniform=True)
    [r] = score_pairs(plain, [TEXTS[0]], [TEXTS[1]], pool="mean")
    a, b = (d.vectors.mean(0) for d in plain.embed([TEXTS[0], TEXTS[1]]))
    assert r["cos"] == pytest.approx(a @ b / np.linalg.norm(a) / np.linalg.norm(b), abs=1e-12)
    [r0] = score_pairs(plain, [TEXTS[0]], [TEXTS[1]], pool="mean", char_weight=0.0)
    assert r0["similarity"] == r0["cos"] == r["cos"]


@pytest.mark.parametrize("pool", ["none", "mean"])
def test_similarity_is_the_cosine_blended_with_character_jaccard(embedder, pool):
    from nlptool.similarity import CHAR_WEIGHT, char_jaccard, score_pairs

    a, b = "桂林山水在哪个省", "桂林山水在哪个市"
    [r] = score_pairs(embedder, [a], [b], pool=pool)
    assert char_jaccard(a, b) == pytest.approx(7 / 9)
    assert r["similarity"] == pytest.approx((1 - CHAR_WEIGHT) * r["cos"] + CHAR_WEIGHT * 7 / 9, abs=1e-12)
    [one] = score_pairs(embedder, [a], [b], pool=pool, char_weight=1.0)
    assert one["similarity"] == pytest.approx(7 / 9)


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan"), True])
def test_char_weight_outside_zero_one_is_a_usage_error(embedder, bad):
    from nlptool.errors import UsageError
    from nlptool.similarity import score_pairs

    with pytest.raises(UsageError, match="char-weight"):
        score_pairs(embedder, ["a"], ["b"], char_weight=bad)


def run(args, input=None):
    from typer.testing import CliRunner

    from nlptool.cli import app

    return CliRunner().invoke(app, ["similarity", *args], input=input)


def test_cli_matrix_and_list_references(tiny_bert_dir, tmp_path):
    path, _ = records(tmp_path, TEXTS)
    common = ["--model", tiny_bert_dir, "--device", "cpu", "-q"]
    r = run([str(path), "--matrix", str(tmp_path / "m.npy"), "--top-k", "3", "--chunk-size", "2", *common])
    assert r.exit_code == 0, r.output
    rows = [json.loads(x) for x in r.stdout.splitlines()]
    assert len(rows) == len(TEXTS) and len(rows[0]["neighbors"]) == 3 and "error" in rows[3]
    m = np.load(tmp_path / "m.npy")
    pairs = tmp_path / "p.jsonl"
    pairs.write_text(json.dumps({"sentence1": TEXTS[0], "sentence2": [TEXTS[1], TEXTS[4]]}, ensure_ascii=False) + "\n"
                     + json.dumps({"sentence1": TEXTS[0], "sentence2": TEXTS[4]}, ensure_ascii=False) + "\n",
                     encoding="utf-8")
    r = run([str(pairs), "--metric", "wrd", *common])
    assert r.exit_code == 0, r.output
    multi, single = (json.loads(x) for x in r.stdout.splitlines())
    assert multi["wrd"] == pytest.approx([m[0, 1], m[0, 4]], abs=1e-12)
    assert multi["wrd_min"] == min(multi["wrd"]) and single["wrd"] == multi["wrd"][1]
    assert single["wrd"] == pytest.approx(m[0, 4], abs=1e-12)
    # bad values exit 2 with one line
    assert run([str(path), "--top-k", "0", *common]).exit_code == 2
    assert run([str(path), "--pool", "max", *common]).exit_code == 2
    assert run([str(path), "--layer", "1,-1", *common]).exit_code == 2
    r = run([str(pairs), "--layers", "1,-1", *common])
    assert r.exit_code == 0, r.output
    assert run([str(path), "--matrix", str(tmp_path / "m.txt"), *common]).exit_code == 2
