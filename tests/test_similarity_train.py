"""`nlptool train similarity`: CoSENT and SimCSE losses against brute force, training on a tiny BERT,
data readers, the CLI, and the built-in zh-sim-mini on real pairs."""

from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest

from nlptool.similarity.train import (
    Pairs,
    char_jaccard,
    cosent_loss,
    read_pairs,
    read_sentences,
    simcse_loss,
    split_holdout,
    train_sentence_encoder,
)

SHARED = os.environ.get("NLPTOOL_SHARED_DATA", os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data"))
STS_VALID = os.path.join(SHARED, "sts", "STS-B.valid.data")


def test_cosent_loss_equals_double_loop():
    import torch

    rng = np.random.default_rng(0)
    for trial in range(20):
        b = int(rng.integers(1, 9))
        cos = rng.uniform(-1, 1, size=b)
        labels = rng.integers(0, 4, size=b).astype(float)  # ties included
        lam = [20.0, 5.0][trial % 2]
        s = 1.0  # the "1 +" term
        for i in range(b):
            for j in range(b):
                if labels[i] > labels[j]:
                    s += math.exp(lam * (cos[j] - cos[i]))
        got = cosent_loss(torch.tensor(cos), torch.tensor(labels), lam)
        assert float(got) == pytest.approx(math.log(s), rel=1e-5, abs=1e-6)
    # all scores equal: no term, loss exactly log 1 = 0
    assert float(cosent_loss(torch.tensor([0.1, 0.9]), torch.tensor([2.0, 2.0]))) == 0.0


def test_simcse_loss_equals_hand_softmax():
    import torch

    rng = np.random.default_rng(1)
    z1, z2 = rng.normal(size=(5, 7)), rng.normal(size=(5, 7))
    u = z1 / np.linalg.norm(z1, axis=1, keepdims=True)
    v = z2 / np.linalg.norm(z2, axis=1, keepdims=True)
    sim = u @ v.T / 0.05
    want = np.mean([-(sim[i, i] - np.log(np.exp(sim[i]).sum())) for i in range(5)])
    got = simcse_loss(torch.tensor(z1), torch.tensor(z2), 0.05)
    assert float(got) == pytest.approx(want, rel=1e-5)


def test_read_pairs_tsv_jsonl_and_errors(tmp_path):
    tsv = tmp_path / "p.tsv"
    tsv.write_text("一个人\t一个男人\t4\n\n猫\t狗\t0.5\n", encoding="utf-8")
    jl = tmp_path / "p.jsonl"
    jl.write_text(json.dumps({"sentence1": "天气", "sentence2": "气候", "label": 1}, ensure_ascii=False) + "\n",
                  encoding="utf-8")
    p = read_pairs([tsv, jl])
    assert p.s1 == ["一个人", "猫", "天气"] and p.score == [4.0, 0.5, 1.0]
    bad = tmp_path / "bad.tsv"
    bad.write_text("a\tb\tx\n", encoding="utf-8")
    from nlptool.errors import InputDataError, UsageError

    with pytest.raises(InputDataError, match="bad.tsv:1"):
        read_pairs([bad])
    with pytest.raises(UsageError):
        read_pairs([tmp_path / "missing.tsv"])
    assert read_sentences([tsv]) == ["一个人", "一个男人", "猫", "狗"]
    tr, ho = split_holdout(10, 0.3, 0)
    assert len(ho) == 3 and sorted(tr + ho) == list(range(10)) and split_holdout(10, 0.3, 0) == (tr, ho)
    assert char_jaccard("一个人", "一个男人") == pytest.approx(3 / 4)


TOY = ["一个女人在弹吉他", "一个男人在跳舞", "孩子在骑马", "老师在上课", "他说中文", "她在学习数学",
       "我们去学校", "天气很好", "一个人在切洋葱", "狗在草地上跑"]


def toy_pairs():
    """Identical or near-identical pairs score 5, unrelated pairs 0: learnable by a tiny model."""
    s1, s2, sc = [], [], []
    for i, a in enumerate(TOY):
        s1.append(a)
        s2.append(a + "。")
        sc.append(5.0)
        s1.append(a)
        s2.append(TOY[(i + 3) % len(TOY)])
        sc.append(0.0)
    return Pairs(s1, s2, sc)


@pytest.mark.slow
def test_cosent_training_lowers_loss_and_saves(tiny_bert_dir, tmp_path):
    from nlptool.models import load_model

    pairs = toy_pairs()
    m = train_sentence_encoder("cosent", tmp_path / "enc", pairs=pairs, eval_pairs=pairs, model=tiny_bert_dir,
                               max_steps=40, batch_size=10, learning_rate=1e-3, device="cpu", seed=0)
    assert m["steps"] == 40 and m["loss_last"] < 0.5 * m["loss_first"]
    assert m["eval_spearman"] > m["eval_spearman_before"]
    saved = json.loads((tmp_path / "enc" / "metrics.json").read_text())
    assert saved["steps"] == 40
    loaded = load_model(str(tmp_path / "enc"), kind="encoder", device="cpu")
    assert loaded.model.config.hidden_size == 32


@pytest.mark.slow
def test_simcse_training_lowers_loss(tiny_bert_dir, tmp_path):
    m = train_sentence_encoder("simcse", tmp_path / "enc", sentences=TOY, model=tiny_bert_dir, max_steps=30,
                               batch_size=5, learning_rate=1e-3, device="cpu", seed=0)
    assert m["steps"] == 30 and m["loss_last"] < m["loss_first"]
    assert 0.0 < m["loss_last"] < math.log(5)  # below the loss of indistinguishable vectors


def test_train_similarity_cli(tiny_bert_dir, tmp_path):
    from typer.testing import CliRunner

    from nlptool.cli import app

    data = tmp_path / "pairs.tsv"
    p = toy_pairs()
    data.write_text("".join(f"{a}\t{b}\t{s}\n" for a, b, s in zip(p.s1, p.s2, p.score)), encoding="utf-8")
    out = tmp_path / "out"
    r = CliRunner().invoke(app, ["train", "similarity", str(data), "--out", str(out), "--model", tiny_bert_dir,
                                 "--max-steps", "2", "--batch-size", "4", "--holdout", "0.2", "--device", "cpu",
                                 "--report", str(tmp_path / "m.json")])
    assert r.exit_code == 0, r.output
    m = json.loads((tmp_path / "m.json").read_text())
    assert m["method"] == "cosent" and m["train_items"] == 16 and m["eval_pairs"] == 4
    assert (out / "model.safetensors").exists() and (out / "sentence_config.json").exists()
    r = CliRunner().invoke(app, ["train", "similarity", str(data), "--method", "simcse", "--out", str(tmp_path / "s"),
                                 "--model", tiny_bert_dir, "--max-steps", "1", "--batch-size", "4", "--device", "cpu", "-q"])
    assert r.exit_code == 0, r.output
    bad = CliRunner().invoke(app, ["train", "similarity", str(data), "--out", str(out), "--method", "sbert"])
    assert bad.exit_code == 2
    bad = CliRunner().invoke(app, ["train", "similarity", str(data), "--out", str(out), "--batch-size", "1"])
    assert bad.exit_code == 2


# ----------------------------------------------------------------------------- the built-in model


def test_builtin_zh_sim_mini_ranks_paraphrases_first():
    """Hand-written pairs: a paraphrase must score above an unrelated sentence with both the
    transport (WRD, the default) and the mean cosine."""
    from nlptool.models import load_model
    from nlptool.similarity import load_embedder, model_kind, score_pairs

    loaded = load_model("zh-sim-mini", kind=model_kind("zh-sim-mini"), device="cpu")
    emb = load_embedder(loaded)
    anchors = ["一个男人在弹吉他。", "一只猫坐在垫子上。", "一个女人在切洋葱。"]
    para = ["一名男子正在演奏吉他。", "一只猫在垫子上坐着。", "一位女士在切洋葱。"]
    other = ["孩子们在公园里踢足球。", "股市今天大幅下跌。", "一个男人在骑自行车。"]
    for pool in ("none", "mean"):
        good = score_pairs(emb, anchors, para, pool=pool)
        bad = score_pairs(emb, anchors, other, pool=pool)
        for g, b in zip(good, bad):
            assert g["similarity"] > b["similarity"], (pool, g, b)


@pytest.mark.slow
def test_builtin_beats_char_jaccard_on_sts_valid():
    if not os.path.exists(STS_VALID):
        print(f"skipped: {STS_VALID} is missing (Chinese STS-B valid)")
        pytest.skip(f"{STS_VALID} is missing")
    from nlptool.similarity.train import sts_scores

    pairs = read_pairs([STS_VALID])
    pairs = pairs.subset(range(0, len(pairs), 5))  # 292 pairs keep it quick
    s = sts_scores("zh-sim-mini", pairs, transport=False)
    assert s["cos(mean)"] > s["char Jaccard"] + 0.03
    assert s["cos(mean)"] > 0.65


def test_training_data_contract_types_follow_train_classifier(tmp_path):
    """A non-string sentence or a non-number score in a JSON line is bad input data (exit 3,
    file and line), by the same rule as `train classifier` (io.check_json_field), never str()/float();
    invalid UTF-8 is an error too, never replaced."""
    from typer.testing import CliRunner

    from nlptool.cli import app
    from nlptool.errors import InputDataError

    def lines(*objs):
        f = tmp_path / "p.jsonl"
        f.write_text("".join(json.dumps(o, ensure_ascii=False) + "\n" for o in objs), encoding="utf-8")
        return f

    good = {"sentence1": "天气", "sentence2": "气候", "label": 1}
    for bad, msg in [({**good, "label": "4"}, "the score is a JSON string, expected a number"),
                     ({**good, "label": True}, "the score is a JSON boolean, expected a number"),
                     ({**good, "label": [1]}, "the score is a JSON list, expected a number"),
                     ({**good, "sentence1": 5}, "the first sentence is a JSON number, expected a string"),
                     ({**good, "sentence2": {"t": "x"}}, "the second sentence is a JSON dict, expected a string")]:
        f = lines(good, bad)
        with pytest.raises(InputDataError, match=rf"p\.jsonl:2: {msg}"):
            read_pairs([f])
    p = read_pairs([lines(good, {**good, "sentence2": None, "label": 2.5})])
    assert p.s2 == ["气候", ""] and p.score == [1.0, 2.5]
    with pytest.raises(InputDataError, match=r"p\.jsonl:1: the text is a JSON list, expected a string"):
        read_sentences([lines({"text": ["a"]})])
    assert read_sentences([lines({"text": "好"}, {"text": None})]) == ["好"]
    raw = tmp_path / "latin1.tsv"
    raw.write_bytes("a\tb\t1\n".encode() + "caf\xe9\tx\t2\n".encode("latin-1"))
    with pytest.raises(InputDataError, match=r"latin1\.tsv:2: invalid UTF-8 at byte 3"):
        read_pairs([raw])
    with pytest.raises(InputDataError, match=r"latin1\.tsv:2: invalid UTF-8"):
        read_sentences([raw])
    # the CLI: exit 3, one line naming file and line, no --out directory
    f = lines(good, good, {**good, "label": "4"})
    out = tmp_path / "m"
    res = CliRunner().invoke(app, ["train", "similarity", str(f), "--out", str(out), "--model", "none-needed"])
    assert res.exit_code == 3, res.output
    assert "p.jsonl:3: the score is a JSON string, expected a number" in res.output and not out.exists()
