"""The extractive reader: character F1, exact best-span search, example encoding, training on a
synthetic task (tiny model) and refusing untrained span heads."""

from __future__ import annotations

import json
import random

import pytest
import torch
from typer.testing import CliRunner

from nlptool.qagen import reader
from nlptool.cli import app


def test_char_f1_hand_examples():
    assert reader.char_f1("北京", "北京") == 1.0
    assert reader.char_f1("北京市", "北京") == pytest.approx(2 * (2 / 3) * 1 / (2 / 3 + 1))
    assert reader.char_f1("上海", "北京") == 0.0
    assert reader.char_f1("北京。", " 北京") == 1.0  # punctuation and spaces ignored
    assert reader.char_f1("", "") == 1.0 and reader.char_f1("", "北京") == 0.0
    assert reader.char_f1("京北", "北京") == 1.0  # a bag of characters, as SQuAD's token F1


def test_best_span_is_the_brute_force_maximum():
    g = torch.Generator().manual_seed(0)
    for _ in range(200):
        n = random.Random(_).randint(3, 12)
        s, e = torch.randn(n, generator=g), torch.randn(n, generator=g)
        lo, hi, k = 1, n - 1, random.Random(_ + 1).randint(1, 4)
        i, j, score = reader.best_span(s, e, lo, hi, k)
        best = max((float(s[a] + e[b]), a, b) for a in range(lo, hi) for b in range(a, min(hi, a + k)))
        assert (i, j) == best[1:] and score == pytest.approx(best[0])


def test_encoded_positions_point_at_the_answer(tiny_bert_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_bert_dir)
    ctx, q = "张先生住在北京。王先生住在上海。", "上海住着谁？"
    row = reader.encode_reader_example(tok, ctx, q, ctx.index("上海"), "上海")
    a, z = row["start_positions"], row["end_positions"]
    assert ctx[row["offsets"][a][0]: row["offsets"][z][1]] == "上海"
    assert row["token_type_ids"][a] == 1 and row["token_type_ids"][row["context_from"] - 1] == 0
    assert reader.encode_reader_example(tok, ctx, q, 200, "上海") is None  # answer outside the context


def _synthetic(n, seed=0):
    rng = random.Random(seed)
    people, cities = list("张王李刘陈黄马林"), ["北京", "上海", "广州", "南京", "西安", "成都", "长沙", "东山"]
    rows = []
    for k in range(n):
        a, b = rng.sample(people, 2)
        ca, cb = rng.sample(cities, 2)
        passage = f"{a}先生住在{ca}。{b}先生住在{cb}。"
        city = ca if rng.random() < 0.5 else cb
        rows.append({"passage": passage, "question": f"{city}住着谁？", "answer": city, "article": f"a{k}"})
    return rows


@pytest.mark.slow
def test_train_reader_learns_a_synthetic_task_and_is_refused_untrained(tiny_bert_dir, tmp_path):
    data = tmp_path / "train.jsonl"
    data.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in _synthetic(300)) + "\n", encoding="utf-8")
    out = tmp_path / "reader"
    r = CliRunner().invoke(app, ["train", "reader", str(data), "--out", str(out), "--model", tiny_bert_dir, "--epochs", "15",
                                 "--batch-size", "32", "--learning-rate", "5e-3", "--holdout", "0.1", "--quiet"])
    assert r.exit_code == 0, r.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["heldout"]["questions"] == 30 and metrics["heldout"]["exact_match"] >= 0.5, metrics["heldout"]
    rd = reader.load_reader(str(out), device="cpu")
    rows = _synthetic(20, seed=7)
    got = reader.answer_questions(rd, [(x["passage"], x["question"]) for x in rows])
    for (ans, start, _), x in zip(got, rows):
        assert x["passage"][start: start + len(ans)] == ans  # an exact span of the context
    right = sum(ans == x["answer"] for (ans, _, _), x in zip(got, rows))
    # the same span search with the untrained (random) span head: trained must do far better
    from nlptool.models import load_model

    raw = load_model(tiny_bert_dir, kind="question-answering", device="cpu")
    base = sum(ans == x["answer"] for (ans, _, _), x in zip(reader.answer_questions(raw, [(x["passage"], x["question"]) for x in rows]), rows))
    assert right >= 8 and right >= base + 5, (right, base)
    from nlptool.errors import ModelError

    with pytest.raises(ModelError, match="not an extractive reader"):
        reader.load_reader(tiny_bert_dir, device="cpu")
