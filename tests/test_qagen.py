"""qa-gen: the UniLM mask, cached decoding against full recomputation, nucleus sampling, the
filters, training on a synthetic task, reproducible generation and the CLI."""

from __future__ import annotations

import json
import math

import pytest
import torch
from typer.testing import CliRunner

from nlptool import qagen
from nlptool.qagen import unilm
from nlptool.cli import app


def _tiny(vocab=40, layers=2, seed=0):
    from transformers import BertConfig, BertForMaskedLM

    torch.manual_seed(seed)
    cfg = BertConfig(vocab_size=vocab, hidden_size=32, num_hidden_layers=layers, num_attention_heads=4,
                     intermediate_size=64, max_position_embeddings=64)
    return BertForMaskedLM(cfg).eval()


# ---------------------------------------------------------------------------------------------
# the UniLM mask


def test_unilm_mask_matches_its_definition():
    types = torch.tensor([[0, 0, 0, 1, 1, 1, 1], [0, 0, 1, 1, 1, 1, 1]])
    att = torch.tensor([[1, 1, 1, 1, 1, 1, 0], [1, 1, 1, 1, 1, 1, 1]])
    allowed = unilm.unilm_allowed(types, att)
    for b in range(2):
        for i in range(7):
            for j in range(7):
                if not att[b, j]:
                    want = False
                elif types[b, i] == 0:  # passage query: passage keys only
                    want = bool(types[b, j] == 0)
                else:  # target query: passage and targets up to itself
                    want = bool(types[b, j] == 0 or j <= i)
                assert bool(allowed[b, i, j]) == want, (b, i, j)


def test_later_target_token_does_not_change_earlier_logits():
    m = _tiny()
    ids = torch.tensor([[2, 10, 11, 12, 3, 20, 21, 22, 3]])
    types = torch.tensor([[0, 0, 0, 0, 0, 1, 1, 1, 1]])
    att = torch.ones_like(ids)
    with torch.no_grad():
        base = m.cls(unilm.hidden_states(m, ids, types, att))
        later = ids.clone()
        later[0, 7] = 30  # a later target token
        h2 = m.cls(unilm.hidden_states(m, later, types, att))
        passage = ids.clone()
        passage[0, 2] = 30  # a passage token
        h3 = m.cls(unilm.hidden_states(m, passage, types, att))
    assert torch.allclose(base[0, :7], h2[0, :7], atol=1e-6)
    assert not torch.allclose(base[0, 7:], h2[0, 7:], atol=1e-4)  # the mask is not "see nothing"
    # every position sees the whole passage, including the passage tokens before the change
    assert (base[0] - h3[0]).abs().amax(-1).min() > 1e-5


def test_seq2seq_loss_counts_target_tokens_only():
    import torch.nn.functional as F

    m = _tiny()
    ids = torch.tensor([[2, 10, 11, 3, 20, 21, 3, 0], [2, 12, 3, 22, 3, 23, 24, 3]])
    types = torch.tensor([[0, 0, 0, 0, 1, 1, 1, 1], [0, 0, 0, 1, 1, 1, 1, 1]])
    att = torch.tensor([[1, 1, 1, 1, 1, 1, 1, 0], [1] * 8])
    with torch.no_grad():
        loss = unilm.seq2seq_loss(m, ids, types, att)
        terms = []
        for b in range(2):
            logits = m.cls(unilm.hidden_states(m, ids[b: b + 1], types[b: b + 1], att[b: b + 1]))[0]
            for t in range(7):
                if types[b, t + 1] == 1 and att[b, t + 1]:
                    terms.append(-F.log_softmax(logits[t], -1)[ids[b, t + 1]])
    assert len(terms) == 3 + 5
    assert loss.item() == pytest.approx(torch.stack(terms).mean().item(), abs=1e-5)


# ---------------------------------------------------------------------------------------------
# cached (incremental) decoding


def _full_logits(m, src, tgt):
    ids = src + tgt
    types = [0] * len(src) + [1] * len(tgt)
    h = unilm.hidden_states(m, torch.tensor([ids]), torch.tensor([types]), torch.ones(1, len(ids), dtype=torch.long))
    return m.cls(h[0, -1])


def test_incremental_steps_equal_full_recomputation():
    m = _tiny()
    src = [[2, 10, 11, 12, 3], [2, 13, 3]]
    tgt = [[20, 21, 22, 3], [23, 3, 0, 0]]
    with torch.no_grad():
        logits, st = unilm.prefill(m, [(s, [0] * len(s)) for s in src], "cpu")
        got = [logits]
        for t in range(4):
            valid = torch.tensor([True, t < 2])  # row 1 has finished: fillers are masked out
            got.append(unilm.step(m, st, torch.tensor([tgt[0][t], tgt[1][t]]), valid))
        for r, n in ((0, 4), (1, 2)):
            for t in range(n + 1):
                assert torch.allclose(got[t][r], _full_logits(m, src[r], tgt[r][:t]), atol=1e-5), (r, t)


def _greedy_full(m, src, end_id, max_len, banned):
    out = []
    for _ in range(max_len):
        logits = _full_logits(m, src, out)
        logits[banned] = float("-inf")
        if not out:
            logits[end_id] = float("-inf")
        y = int(logits.argmax())
        if y == end_id:
            return out
        out.append(y)
    return None


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cached_beam_search_matches_full_recomputation(seed):
    m = _tiny(seed=seed)
    srcs = [[2, 10, 11, 12, 3], [2, 13, 14, 3], [2, 15, 3]]
    banned = [0, 1, 2, 4]
    with torch.no_grad():
        # greedy (beam 1): the same tokens as recomputing the whole sequence at every step
        logits, st = unilm.prefill(m, [(s, [0] * len(s)) for s in srcs], "cpu")
        found = unilm.beam_search(m, st, logits, beam_size=1, max_len=6, end_id=3, banned=banned)
        for s, hyp in zip(srcs, found):
            want = _greedy_full(m, s, 3, 6, banned)
            assert (hyp[0] if hyp else None) == want
        # beam 4: each returned hypothesis' score is its log-probability recomputed from scratch
        logits, st = unilm.prefill(m, [(s, [0] * len(s)) for s in srcs], "cpu")
        found = unilm.beam_search(m, st, logits, beam_size=4, max_len=6, end_id=3, banned=banned)
        for s, hyp in zip(srcs, found):
            if hyp is None:
                continue
            toks, total = hyp
            seq = toks + [3]
            ref = sum(float(torch.log_softmax(_full_logits(m, s, seq[:t]), -1)[seq[t]]) for t in range(len(seq)))
            assert total == pytest.approx(ref, abs=1e-4)


def test_nucleus_sampling_keeps_the_top_p_set():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    # top_p 0.7: {0, 1} (0.5 + 0.3 reaches 0.7); token 0 takes u < 0.5 / 0.8
    picks = [int(unilm.nucleus_sample(logits, 0.7, torch.tensor([u]))) for u in (0.0, 0.6, 0.63, 0.99)]
    assert picks == [0, 0, 1, 1]
    assert int(unilm.nucleus_sample(logits, 1.0, torch.tensor([0.97]))) == 3
    assert int(unilm.nucleus_sample(logits, 0.01, torch.tensor([0.99]))) == 0
    # frequencies follow the renormalised nucleus
    u = torch.rand(20000, generator=torch.Generator().manual_seed(0))
    draws = unilm.nucleus_sample(logits.expand(20000, 4), 0.9, u)
    freq = torch.bincount(draws, minlength=4).float() / 20000
    assert torch.allclose(freq, torch.tensor([0.5, 0.3, 0.15, 0.0]) / 0.95, atol=0.015)


# ---------------------------------------------------------------------------------------------
# passages, data, filters


def test_chunks_cut_at_sentence_ends_and_cover_the_passage():
    text = "第一句话。第二句话很长很长很长！第三句？" + "无标点的长句子" * 10
    chunks = qagen.chunk_passage(text, 12)
    assert "".join(c for _, c in chunks) == text
    assert all(len(c) <= 12 for _, c in chunks)
    assert all(text[s: s + len(c)] == c for s, c in chunks)
    assert chunks[0][1] == "第一句话。"  # the next sentence would overflow 12 characters
    s, c = qagen.chunk_with_answer(text, text.index("第三句"), "第三句", 12)
    assert "第三句" in c and text[s: s + len(c)] == c
    # an answer straddling two chunks gets a window around it
    s, c = qagen.chunk_with_answer(text, 3, "话。第二", 12)
    assert "话。第二" in c


def test_allocate_shares_samples_by_length():
    assert qagen.allocate([10, 10], 5) in ([3, 2], [2, 3])
    assert sum(qagen.allocate([1, 50, 7], 4)) == 4
    assert qagen.allocate([], 3) == []
    assert qagen.allocate([5], 0) == [0]


def test_read_squad_and_jsonl(tmp_path):
    squad = {"data": [{"id": "A", "paragraphs": [{"context": "北京是中国的首都。", "qas": [
        {"question": "中国的首都是哪里？", "answers": [{"text": "北京", "answer_start": 0}]},
        {"question": "错位？", "answers": [{"text": "首都", "answer_start": 0}]},  # wrong offset: found by search
        {"question": "不在文中？", "answers": [{"text": "上海", "answer_start": 0}]},
    ]}]}]}
    p = tmp_path / "s.json"
    p.write_text(json.dumps(squad, ensure_ascii=False), encoding="utf-8")
    j = tmp_path / "d.jsonl"
    j.write_text(json.dumps({"passage": "上海在东边。", "question": "哪里在东边？", "answer": "上海"}, ensure_ascii=False) + "\n",
                 encoding="utf-8")
    items, counts = qagen.read_qa_data([p, j])
    assert [(i.answer, i.answer_start) for i in items] == [("北京", 0), ("首都", 6), ("上海", 0)]
    assert counts["skipped_answer_not_in_passage"] == 1
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"passage": "x", "question": "y"}\n', encoding="utf-8")
    from nlptool.errors import InputDataError

    with pytest.raises(InputDataError, match="answer"):
        qagen.read_qa_data([bad])


# malformed question-answer data: exit 3 naming the file and the line or the JSON path; the data
# is read before the model loads, so no model is needed

def _squad(paragraphs=None, qas=None, answers=None, answer=None):
    answer = {"text": "北京", "answer_start": 0} if answer is None else answer
    answers = [answer] if answers is None else answers
    qas = [{"id": "q1", "question": "首都是哪里？", "answers": answers}] if qas is None else qas
    paragraphs = [{"context": "北京是中国的首都。", "qas": qas}] if paragraphs is None else paragraphs
    return {"data": [{"id": "A", "paragraphs": paragraphs}]}



def _without(d, key):
    return {k: v for k, v in d.items() if k != key}


_ANSWER = {"text": "北京", "answer_start": 0}
_QA = {"question": "首都是哪里？", "answers": [_ANSWER]}
_PARA = {"context": "北京是中国的首都。", "qas": [_QA]}

MALFORMED_SQUAD = [
    ({"data": [{"paragraphs": 5}]}, "data[0].paragraphs is a number"),
    ({"data": {"paragraphs": []}}, "data is an object"),
    ({"data": "x"}, "data is a string"),
    ({"data": None}, "data is null"),
    ({"data": ["article"]}, "data[0] is a string"),
    ({"data": [{"title": "t"}]}, "data[0].paragraphs missing"),
    ({"data": [{"title": ["t"], "paragraphs": []}]}, "data[0].title is a list"),
    ({"data": [{"id": {"x": 1}, "paragraphs": []}]}, "data[0].id is an object"),
    (_squad(paragraphs=[_without(_PARA, "context")]), "data[0].paragraphs[0].context missing"),
    (_squad(paragraphs=[{**_PARA, "context": 7}]), "data[0].paragraphs[0].context is a number"),
    (_squad(paragraphs=[_PARA, 3]), "data[0].paragraphs[1] is a number"),
    (_squad(paragraphs=[{**_PARA, "qas": "q"}]), "data[0].paragraphs[0].qas is a string"),
    (_squad(paragraphs=[_without(_PARA, "qas")]), "data[0].paragraphs[0].qas missing"),
    (_squad(qas=[[_QA]]), "data[0].paragraphs[0].qas[0] is a list"),
    (_squad(qas=[_without(_QA, "question")]), "data[0].paragraphs[0].qas[0].question missing"),
    (_squad(qas=[{**_QA, "question": True}]), "data[0].paragraphs[0].qas[0].question is a boolean"),
    (_squad(qas=[_without(_QA, "answers")]), "data[0].paragraphs[0].qas[0].answers missing"),
    (_squad(answers={"text": "北京"}), "data[0].paragraphs[0].qas[0].answers is an object"),
    (_squad(answers=[_ANSWER, "北京"]), "data[0].paragraphs[0].qas[0].answers[1] is a string"),
    (_squad(answer={"answer_start": 0}), "data[0].paragraphs[0].qas[0].answers[0].text missing"),
    (_squad(answer={"text": 5, "answer_start": 0}), "answers[0].text is a number"),
    (_squad(answer={"text": "北京", "answer_start": "0"}), "answers[0].answer_start is a string"),
    (_squad(answer={"text": "北京", "answer_start": 1.5}), "answers[0].answer_start is a number"),
    (_squad(answer={"text": "北京", "answer_start": True}), "answers[0].answer_start is a boolean"),
    (_squad(answer={"text": "北京", "answer_start": -9}), "answers[0].answer_start is -9"),
    # the answer occurs nowhere in the context: skipped, and then nothing is left
    (_squad(answer={"text": "上海", "answer_start": 0}), "no usable question-answer pair"),
    (_squad(answers=[]), "no usable question-answer pair"),
]


def _write(path, obj):
    path.write_text(json.dumps(obj, ensure_ascii=False), encoding="utf-8")
    return path


@pytest.mark.parametrize("doc, message", MALFORMED_SQUAD, ids=[m for _, m in MALFORMED_SQUAD])
def test_malformed_squad_names_the_json_path(tmp_path, doc, message):
    from nlptool.errors import InputDataError

    p = _write(tmp_path / "squad.json", doc)
    with pytest.raises(InputDataError) as exc:
        qagen.read_qa_data([p])
    assert message in str(exc.value) and str(exc.value).startswith(str(p))
    r = CliRunner().invoke(app, ["eval", "qa-gen", str(p), "--quiet"])
    assert r.exit_code == 3, r.output
    assert message in r.output and "squad.json" in r.output and "Traceback" not in r.output


def test_well_formed_squad_variants_still_read(tmp_path):
    """Optional keys absent or null, integer ids, empty lists and a pretty-printed document are fine."""
    doc = {"version": "1.1", "data": [
        {"title": 7, "paragraphs": []},
        {"paragraphs": [{"context": "北京是中国的首都。", "qas": []},
                        {"context": "北京是中国的首都。", "qas": [
                            {"id": 3, "question": "首都？", "answers": [{"text": "首都", "answer_start": None}]},
                            {"question": "哪里？", "answers": [{"text": "北京"}, {"text": "中国", "answer_start": 3}]},
                            {"question": "无解？", "answers": []}]}]}]}
    p = tmp_path / "s.json"
    p.write_text(json.dumps(doc, ensure_ascii=False, indent=2), encoding="utf-8")
    items, counts = qagen.read_qa_data([p])
    assert [(i.answer, i.answer_start, i.where) for i in items] == [("首都", 6, f"{p}:3"), ("北京", 0, f"{p}:1/1")]
    assert counts == {"questions": 3, "skipped_answer_not_in_passage": 0, "skipped_no_answer": 1}
    assert {i.article for i in items} == {"s.json:1"}


_REC = {"passage": "北京是中国的首都。", "question": "首都是哪里？", "answer": "北京"}


def test_answer_start_minus_one_is_unknown_and_found_in_the_passage(tmp_path):
    """CMRC 2018 writes ``answer_start: -1`` for some answers: the answer is looked up."""
    p = tmp_path / "d.jsonl"
    p.write_text(json.dumps({**_REC, "answer_start": -1}, ensure_ascii=False) + "\n", encoding="utf-8")
    items, stats = qagen.read_qa_data([p])
    assert len(items) == 1 and items[0].passage[items[0].answer_start:].startswith(items[0].answer)


@pytest.mark.parametrize("bad, message", [
    ({"passage": "北京", "question": "q"}, "missing field 'answer'"),
    ({**_REC, "passage": ["北京"]}, "the passage is a JSON list"),
    ({**_REC, "question": None}, "the question is a JSON null"),
    ({**_REC, "answer": {"text": "北京"}}, "the answer is a JSON dict"),
    ({**_REC, "answer_start": "0"}, "the answer_start is a JSON string"),
    ({**_REC, "answer_start": -2}, "the answer_start is -2"),
    ({**_REC, "article": [1]}, "the article is a JSON list"),
    ([1, 2], "expected a JSON object"),
])
def test_malformed_jsonl_names_file_and_line(tmp_path, bad, message):
    p = tmp_path / "d.jsonl"
    p.write_text(json.dumps(_REC, ensure_ascii=False) + "\n\n" + json.dumps(bad, ensure_ascii=False) + "\n", encoding="utf-8")
    from nlptool.errors import InputDataError

    with pytest.raises(InputDataError, match="d.jsonl:3: ") as exc:
        qagen.read_qa_data([p])
    assert message in str(exc.value) and exc.value.line == 3
    r = CliRunner().invoke(app, ["eval", "qa-gen", str(p), "--quiet"])
    assert r.exit_code == 3 and f"{p}:3: " in r.output and message in r.output, r.output


def test_unreadable_qa_files_exit_3(tmp_path):
    """Invalid UTF-8, deep nesting (one line or a pretty-printed document), a truncated document,
    a lone surrogate, a JSON value that is neither SQuAD nor JSONL: exit 3 with file and line or path."""
    from nlptool.errors import InputDataError

    ok = json.dumps(_REC, ensure_ascii=False) + "\n"
    cases = {
        "utf8.jsonl": (ok.encode() + b'{"passage": "\xff"}\n', "utf8.jsonl:2: invalid UTF-8"),
        "utf8.json": (b'\xef\xbb\xbf{"data": [\n{"title": "\xc3(", "paragraphs": []}]}', "utf8.json:2: invalid UTF-8"),
        "deep.json": (b"[" * 100_000 + b"]" * 100_000, "deep.json:1: JSON nested too deeply"),
        "deep.jsonl": (ok.encode() + b'{"passage": ' + b"[" * 100_000 + b"]" * 100_000 + b"}\n",
                       "deep.jsonl:2: JSON nested too deeply"),
        "deep_doc.json": (b'{\n"data":\n' + b"[" * 100_000 + b"]" * 100_000 + b"\n}", "deep_doc.json:3: JSON nested too deeply"),
        "data_deep.json": (b'{"data": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "data_deep.json:1: JSON nested too deeply"),
        "truncated.json": (b'{\n  "data": [\n    {"paragraphs": [\n', "truncated.json:4: invalid JSON"),
        "surrogate.json": (json.dumps(_squad(paragraphs=[{**_PARA, "context": "北京\ud800"}])).encode(),
                           "data[0].paragraphs[0].context holds a lone UTF-16 surrogate"),
        "list.json": (b"[\n1,\n2\n]\n", "list.json: the file is one JSON value, a list"),
        "other.json": (b'{\n"version": 1\n}\n', 'other.json: the file is one JSON value, an object without a "data" key'),
        "empty.jsonl": (b"", "empty.jsonl: no usable question-answer pair"),
    }
    for name, (content, message) in cases.items():
        p = tmp_path / name
        p.write_bytes(content)
        with pytest.raises(InputDataError) as exc:
            qagen.read_qa_data([p])
        assert str(exc.value).startswith(str(tmp_path)) and message in str(exc.value), (name, str(exc.value))
        r = CliRunner().invoke(app, ["eval", "qa-gen", str(p), "--quiet"])
        assert r.exit_code == 3 and message in r.output, (name, r.output)


@pytest.mark.parametrize("command", [["train", "qa-gen"], ["train", "reader"]])
def test_training_commands_refuse_malformed_data(tmp_path, command):
    p = _write(tmp_path / "squad.json", {"data": [{"paragraphs": 5}]})
    out = tmp_path / "model"
    r = CliRunner().invoke(app, [*command, str(p), "--out", str(out), "--quiet"])
    assert r.exit_code == 3 and "squad.json: data[0].paragraphs is a number" in r.output, r.output
    assert not out.exists()


def test_split_articles_keeps_articles_whole():
    items = [qagen.QAItem("p", "q", "a", 0, f"art{i % 20}", "") for i in range(200)]
    train, held = qagen.split_articles(items, 0.1, seed=3)
    assert {i.article for i in train}.isdisjoint({i.article for i in held})
    assert len({i.article for i in held}) == 2 and len(train) + len(held) == 200
    assert qagen.split_articles(items, 0.1, seed=3)[1] == held


def test_question_filters_remove_what_they_claim():
    res = qagen.QAGenResult()
    add = lambda q, a, s: qagen.add_pair(res, {"question": q, "answer": a, "answer_start": 0, "score": s})  # noqa: E731
    assert add("北京是哪里？", "北京", -1.0) is None
    assert add("  ", "北京", -0.5) == "question_empty"
    assert add("北京？", "北京", -0.5) == "question_is_answer"
    assert add("北京 是哪里?", "首都", -2.0) == "duplicate_question"  # worse: dropped
    assert [p["answer"] for p in res.pairs] == ["北京"]
    assert add("北京是哪里", "首都", -0.2) == "duplicate_question"  # better: replaces the kept one
    assert [p["answer"] for p in res.pairs] == ["首都"]
    assert res.filtered == {**dict.fromkeys(qagen.FILTERS, 0), "question_empty": 1, "question_is_answer": 1,
                            "duplicate_question": 2}
    assert qagen.find_subsequence([5, 6, 7, 6, 7], [6, 7]) == 1
    assert qagen.find_subsequence([5, 6, 7], [7, 5]) == -1


# ---------------------------------------------------------------------------------------------
# training and generation on a synthetic task (tiny model)

PEOPLE = list("张王李刘陈黄马林")
CITIES = ["北京", "上海", "广州", "南京", "西安", "成都", "长沙", "东山"]


def _synthetic(n, seed=0):
    import random

    rng = random.Random(seed)
    rows = []
    for k in range(n):
        a, b = rng.sample(PEOPLE, 2)
        ca, cb = rng.sample(CITIES, 2)
        passage = f"{a}先生住在{ca}。{b}先生住在{cb}。"
        who, city = (a, ca) if rng.random() < 0.5 else (b, cb)
        rows.append({"passage": passage, "question": f"{city}住着谁？", "answer": city, "article": f"a{k}"})
    return rows


@pytest.fixture(scope="session")
def trained_qa(tmp_path_factory, tiny_bert_dir):
    """The tiny char BERT fine-tuned by `nlptool train qa-gen` on a synthetic who-lives-where task,
    trained once per session (6 s on an idle 2-core machine, one thread: tests/conftest.py) and
    shared by every test that generates with it; tests copy it before changing anything."""
    d = tmp_path_factory.mktemp("qa")
    data = d / "train.jsonl"
    data.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in _synthetic(400)) + "\n", encoding="utf-8")
    out = d / "model"
    r = CliRunner().invoke(app, [
        "train", "qa-gen", str(data), "--out", str(out), "--model", tiny_bert_dir, "--epochs", "20", "--no-mark-answer",
        "--batch-size", "32", "--learning-rate", "5e-3", "--max-passage-chars", "24", "--max-answer-len", "6",
        "--max-question-len", "12", "--holdout", "0.1", "--quiet",
    ])
    assert r.exit_code == 0, r.output
    return out


def test_training_learns_the_task_and_saves_settings(trained_qa):
    metrics = json.loads((trained_qa / "metrics.json").read_text())
    settings = json.loads((trained_qa / qagen.SETTINGS_FILE).read_text())
    assert settings["max_answer_len"] == 6 and settings["max_passage_chars"] == 24
    assert metrics["heldout_examples"] == 40 and metrics["train_examples"] == 360
    first, last = metrics["history"][0]["eval_loss"], metrics["validation_loss"]
    assert last < 0.6 * first  # it learned something (held-out articles)
    from nlptool.models import load_model

    lm = load_model(str(trained_qa))
    rows = _synthetic(30, seed=99)
    qs = qagen.generate_questions(lm, [(r["passage"], r["answer"]) for r in rows], beam_size=3, max_question_len=12)
    # given the answer, the question is about it (the task's questions start with the answer)
    right = sum(q.startswith(r["answer"]) for q, r in zip(qs, rows))
    assert right >= 20, qs


def test_generation_is_reproducible_and_filtered(trained_qa):
    from nlptool.models import load_model

    lm = load_model(str(trained_qa))
    passages = [r["passage"] for r in _synthetic(12, seed=5)] + ["", "   "]
    kw = dict(num_pairs=4, max_answer_len=6, max_question_len=12, max_passage_chars=24, beam_size=3)
    a = qagen.generate_qa_pairs(lm, passages, seed=7, batch_size=16, **kw)
    b = qagen.generate_qa_pairs(lm, passages[::-1], seed=7, batch_size=3, **kw)[::-1]
    assert [x.pairs for x in a] == [x.pairs for x in b]  # independent of batching and order
    c = qagen.generate_qa_pairs(lm, passages, seed=8, batch_size=16, **kw)
    assert [x.pairs for x in a] != [x.pairs for x in c] or all(not x.pairs for x in a)
    assert a[-1].pairs == [] and a[-2].pairs == [] and a[-1].candidates == 0
    kept = 0
    for p, x in zip(passages, a):
        assert x.candidates == len(x.pairs) + sum(x.filtered.values())  # every sample is accounted for
        qs = [pair["question"] for pair in x.pairs]
        assert len(set(qs)) == len(qs)
        for pair in x.pairs:
            kept += 1
            assert p[pair["answer_start"]: pair["answer_start"] + len(pair["answer"])] == pair["answer"]
            assert pair["question"] and pair["question"] != pair["answer"]
            assert -50 < pair["score"] <= 0 and math.isfinite(pair["score"])
        assert [pair["score"] for pair in x.pairs] == sorted((pair["score"] for pair in x.pairs), reverse=True)
    assert kept >= 12  # the trained model's answers are mostly found in the passage
    assert sum(x.filtered["answer_not_in_passage"] for x in a) == 0  # copy-constrained by default
    free = qagen.generate_qa_pairs(lm, passages, seed=7, copy_answers=False, **kw)
    for p, x in zip(passages, free):
        assert x.candidates == len(x.pairs) + sum(x.filtered.values())
        for pair in x.pairs:
            assert p[pair["answer_start"]: pair["answer_start"] + len(pair["answer"])] == pair["answer"]


def test_cli_qa_gen_file_stdin_jsonl_and_bad_lines(trained_qa, tmp_path):
    rows = _synthetic(3, seed=11)
    txt = tmp_path / "p.txt"
    txt.write_text("\n".join(r["passage"] for r in rows) + "\n\n", encoding="utf-8")
    jl = tmp_path / "p.jsonl"
    jl.write_text("\n".join(json.dumps({"id": i, "text": r["passage"]}, ensure_ascii=False) for i, r in enumerate(rows))
                  + "\n{bad json\n", encoding="utf-8")
    common = ["qa-gen", "--model", str(trained_qa), "--num-pairs", "3", "--seed", "1", "--quiet", "--no-round-trip"]
    runner = CliRunner()
    r1 = runner.invoke(app, [*common, str(txt)])
    assert r1.exit_code == 0, r1.output
    out1 = [json.loads(x) for x in r1.stdout.splitlines()]
    assert len(out1) == 4 and out1[-1]["qa_pairs"] == []
    r2 = runner.invoke(app, common, input=txt.read_text(encoding="utf-8"))
    assert r2.stdout == r1.stdout
    r3 = runner.invoke(app, [*common, str(jl)])
    out3 = [json.loads(x) for x in r3.stdout.splitlines()]
    assert [o["qa_pairs"] for o in out3[:3]] == [o["qa_pairs"] for o in out1[:3]]
    assert [o.get("id") for o in out3[:3]] == [0, 1, 2]
    assert "line 4" in out3[3]["error"]
    r4 = runner.invoke(app, [*common, "--strict", str(jl)])
    assert r4.exit_code == 3


# ---------------------------------------------------------------------------------------------
# source mask, answer marks, beam search controls, given answers, round trip, eval


def test_source_mask_overrides_segments_in_mask_and_loss():
    import torch.nn.functional as F

    types = torch.tensor([[0, 0, 1, 0, 1, 1, 1]])  # an answer mark (1) inside the source
    src = torch.tensor([[1, 1, 1, 1, 1, 0, 0]], dtype=torch.bool)
    allowed = unilm.unilm_allowed(types, None, src)
    for i in range(7):
        for j in range(7):
            assert bool(allowed[0, i, j]) == bool(src[0, j] or j <= i), (i, j)
    m = _tiny()
    ids = torch.tensor([[2, 10, 11, 3, 20, 21, 3]])
    att = torch.ones_like(ids)
    with torch.no_grad():
        loss = unilm.seq2seq_loss(m, ids, types, att, source_mask=src)
        logits = m.cls(unilm.hidden_states(m, ids, types, att, source_mask=src))[0]
        want = torch.stack([-F.log_softmax(logits[t], -1)[ids[0, t + 1]] for t in (4, 5)]).mean()
        smooth = unilm.seq2seq_loss(m, ids, types, att, source_mask=src, label_smoothing=0.2)
        sm = torch.stack([0.8 * -F.log_softmax(logits[t], -1)[ids[0, t + 1]] + 0.2 * -F.log_softmax(logits[t], -1).mean()
                          for t in (4, 5)]).mean()
    assert loss.item() == pytest.approx(want.item(), abs=1e-5)
    assert smooth.item() == pytest.approx(sm.item(), abs=1e-5)


def test_marked_examples_mark_exactly_the_answer(tiny_bert_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_bert_dir)
    passage, answer, question = "张先生住在北京。王先生住在上海。", "上海", "上海住着谁？"
    start = passage.index(answer)
    a_ex, q_ex = qagen.encode_marked_examples(tok, passage, start, answer, question)
    n = len(passage)
    assert a_ex["input_ids"] == [tok.cls_token_id, *tok(passage, add_special_tokens=False)["input_ids"], tok.sep_token_id,
                                 *tok(answer, add_special_tokens=False)["input_ids"], tok.sep_token_id]
    assert a_ex["source_len"] == n + 2
    marks = q_ex["token_type_ids"][1: n + 1]
    assert [i for i, t in enumerate(marks) if t] == [start, start + 1]  # one token per character here
    assert q_ex["source_len"] == n + 2 + len(answer) + 1
    assert len(q_ex["input_ids"]) - q_ex["source_len"] == len(question) + 1  # loss on the question and [SEP]


def test_block_repeated_ngrams_matches_brute_force():
    import random

    rng = random.Random(0)
    for _ in range(200):
        n = rng.randint(1, 4)
        seq = [rng.randint(0, 4) for _ in range(rng.randint(0, 9))]
        logp = torch.zeros(1, 5)
        unilm._block_repeated_ngrams(logp, [seq], n)
        for tok in range(5):
            ext = seq + [tok]
            grams = [tuple(ext[i: i + n]) for i in range(len(ext) - n + 1)]
            repeated = len(ext) >= n and grams[-1] in grams[:-1]
            assert (logp[0, tok] == float("-inf")) == repeated, (seq, n, tok)


def test_beam_search_blocking_and_length_penalty():
    m = _tiny(seed=1)
    srcs = [[2, 10, 11, 12, 3], [2, 13, 14, 3]]
    banned = [0, 1, 2, 4]
    with torch.no_grad():
        logits, st = unilm.prefill(m, [(s, [0] * len(s)) for s in srcs], "cpu")
        found = unilm.beam_search(m, st, logits, beam_size=4, max_len=12, end_id=3, banned=banned, no_repeat_ngram=2)
        for hyp in found:
            if hyp:
                grams = [tuple(hyp[0][i: i + 2]) for i in range(len(hyp[0]) - 1)]
                assert len(grams) == len(set(grams))
        # length penalty 0 ranks by the plain sum: the chosen one has the best sum among all finished
        # hypotheses that length penalty 1 would also have seen; at least never a lower sum than alpha 1's
        res = {}
        for alpha in (0.0, 1.0, 3.0):
            logits, st = unilm.prefill(m, [(s, [0] * len(s)) for s in srcs], "cpu")
            res[alpha] = unilm.beam_search(m, st, logits, beam_size=4, max_len=12, end_id=3, banned=banned,
                                           length_penalty=alpha)
        for r in range(2):
            if res[0.0][r] and res[1.0][r]:
                assert res[0.0][r][1] >= res[1.0][r][1] - 1e-6
                assert len(res[3.0][r][0]) >= len(res[1.0][r][0])


def test_settings_file_and_heads_are_checked(tiny_bert_dir, tmp_path, trained_qa):
    import shutil

    from nlptool.errors import ModelError
    from nlptool.models import load_model

    with pytest.raises(ModelError, match="not a question-answer generator"):
        qagen.check_generator(load_model(tiny_bert_dir))
    bad = tmp_path / "bad"
    shutil.copytree(trained_qa, bad)
    (bad / qagen.SETTINGS_FILE).write_text("{not json", encoding="utf-8")
    with pytest.raises(ModelError, match="invalid JSON"):
        qagen.load_settings(bad)
    r = CliRunner().invoke(app, ["qa-gen", "--model", str(bad), "--no-round-trip", "--quiet"], input="张先生住在北京。\n")
    assert r.exit_code == 1 and len(r.output.strip().splitlines()) == 1, r.output
    # an encoder without an MLM head is refused in one line, exit 1
    from transformers import BertConfig, BertModel

    enc = tmp_path / "enc"
    BertModel(BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=64, max_position_embeddings=64)).save_pretrained(enc)
    shutil.copy(bad / "tokenizer.json", enc / "tokenizer.json")
    shutil.copy(bad / "tokenizer_config.json", enc / "tokenizer_config.json")
    (enc / qagen.SETTINGS_FILE).write_text("{}", encoding="utf-8")
    r = CliRunner().invoke(app, ["qa-gen", "--model", str(enc), "--no-round-trip", "--quiet"], input="张先生住在北京。\n")
    assert r.exit_code == 1 and len(r.output.strip().splitlines()) == 1 and "head" in r.output, r.output


def test_given_answers_one_question_each_in_order(trained_qa, tmp_path):
    rows = _synthetic(4, seed=21)
    recs = []
    for r in rows:
        a, b = r["passage"][r["passage"].index("在") + 1: r["passage"].index("。")], r["answer"]
        recs.append({"text": r["passage"], "answers": [b, "火星", a]})
    inp = tmp_path / "a.jsonl"
    inp.write_text("\n".join(json.dumps(x, ensure_ascii=False) for x in recs) + '\n{"text": "北京。", "answers": "北京"}\n',
                   encoding="utf-8")
    r = CliRunner().invoke(app, ["qa-gen", "--model", str(trained_qa), "--no-round-trip", "--quiet", str(inp)])
    assert r.exit_code == 0, r.output
    out = [json.loads(x) for x in r.stdout.splitlines()]
    assert len(out) == 5 and "error" in out[4]
    for rec, o in zip(recs, out):
        pairs = o["qa_pairs"]
        assert [p["answer"] for p in pairs] == rec["answers"]
        assert "error" in pairs[1] and "question" not in pairs[1]
        for p in (pairs[0], pairs[2]):
            assert rec["text"][p["answer_start"]:].startswith(p["answer"]) and p["question"] and p["score"] <= 0
        assert pairs[0]["question"].startswith(pairs[0]["answer"])  # the task: questions start with their answer
    # the library call the CLI makes gives the same questions
    from nlptool.models import load_model

    lm = load_model(str(trained_qa))
    st = qagen.check_generator(lm)
    lib = qagen.questions_for_answers(lm, [(recs[0]["text"], recs[0]["answers"])], max_passage_chars=st["max_passage_chars"],
                                      max_answer_len=st["max_answer_len"], max_question_len=st["max_question_len"])
    assert [p.get("question") for p in lib[0]] == [p.get("question") for p in out[0]["qa_pairs"]]


def test_round_trip_drops_inconsistent_pairs(trained_qa, monkeypatch):
    from nlptool.qagen import reader
    from nlptool.models import load_model

    lm = load_model(str(trained_qa))
    passages = [r["passage"] for r in _synthetic(6, seed=5)]
    kw = dict(num_pairs=3, max_answer_len=6, max_question_len=12, max_passage_chars=24, beam_size=3, seed=3)
    plain = qagen.generate_qa_pairs(lm, passages, **kw)
    # a reader that answers every question with the chunk's first two characters
    monkeypatch.setattr(reader, "answer_questions", lambda rd, pairs, **k: [(c[:2], 0, 0.0) for c, _ in pairs])
    rt = qagen.generate_qa_pairs(lm, passages, reader=object(), min_consistency=0.5, **kw)
    total_dropped = 0
    for p, a, b in zip(passages, plain, rt):
        assert b.candidates == len(b.pairs) + sum(b.filtered.values())
        want = [x for x in a.pairs if reader.char_f1(p[:2], x["answer"]) >= 0.5]
        assert [x["question"] for x in b.pairs] == [x["question"] for x in want]
        assert b.filtered["round_trip_inconsistent"] == len(a.pairs) - len(want)
        total_dropped += b.filtered["round_trip_inconsistent"]
        assert all("_chunk" not in x and x["consistency"] >= 0.5 for x in b.pairs)
    assert total_dropped > 0


def test_rouge_and_template_against_references():
    import random

    assert qagen.template_question("长江很长。长江是中国第一长河。", 5, "长江") == "什么是中国第一长河。"
    assert qagen.rouge_l_chars("abcd", "acbd") == pytest.approx(0.75)
    rs = pytest.importorskip("rouge_score.rouge_scorer")

    class Chars:
        def tokenize(self, text):
            return [c for c in text if not c.isspace()]

    sc = rs.RougeScorer(["rougeL"], tokenizer=Chars())
    rng = random.Random(0)
    for _ in range(100):
        a = "".join(rng.choice("长江黄河是的什么") for _ in range(rng.randint(0, 12)))
        b = "".join(rng.choice("长江黄河是的什么") for _ in range(rng.randint(0, 12)))
        assert qagen.rouge_l_chars(a, b) == pytest.approx(sc.score(b, a)["rougeL"].fmeasure, abs=1e-9)


def test_cli_eval_qa_gen(trained_qa, tmp_path):
    pytest.importorskip("sacrebleu")
    import sacrebleu

    rows = _synthetic(10, seed=33)
    data = tmp_path / "gold.jsonl"
    data.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8")
    r = CliRunner().invoke(app, ["eval", "qa-gen", str(data), "--model", str(trained_qa), "--quiet"])
    assert r.exit_code == 0, r.output
    assert len(r.stdout.splitlines()) == 1  # one JSON line, like every other command
    rep = json.loads(r.stdout)
    assert rep["questions"] == 10
    tmpl = [qagen.template_question(x["passage"], x["passage"].find(x["answer"]), x["answer"]) for x in rows]
    want = sacrebleu.corpus_bleu(tmpl, [[x["question"] for x in rows]], tokenize="zh").score
    assert rep["template"]["bleu4"] == pytest.approx(round(want, 2))
    assert rep["model"]["rouge_l"] > rep["template"]["rouge_l"]  # the tiny model learned this task's question form


@pytest.mark.slow
def test_builtin_default_path_works_offline():
    """`echo 长江是中国第一长河。 | nlptool qa-gen`: the built-in generator and reader, no option."""
    r = CliRunner().invoke(app, ["qa-gen", "--quiet"], input="长江是中国第一长河。\n")
    assert r.exit_code == 0, r.output
    (out,) = [json.loads(x) for x in r.stdout.splitlines()]
    text = "长江是中国第一长河。"
    cand = sum(out["qa_filtered"].values()) + len(out["qa_pairs"])
    from nlptool.qagen.data import DEFAULTS

    assert cand == DEFAULTS["num_pairs"]  # every answer sample is kept or counted by a filter
    for p in out["qa_pairs"]:
        assert text[p["answer_start"]:].startswith(p["answer"]) and 0.5 <= p["consistency"] <= 1
    r = CliRunner().invoke(app, ["qa-gen", "--quiet"], input='{"text": "长江是中国第一长河。", "answers": ["长江"]}\n')
    (out,) = [json.loads(x) for x in r.stdout.splitlines()]
    assert [p["answer"] for p in out["qa_pairs"]] == ["长江"] and out["qa_pairs"][0]["question"]


def test_qa_generator_rules_are_the_parsers():
    """The option bounds and defaults live once in nlptool.qagen.command; the CLI's parser declares the same."""
    import typer.main

    from nlptool.errors import UsageError
    from nlptool.qagen.command import BOUNDS, OPTION_DEFAULTS, QAGenerator

    params = {p.name: p for p in typer.main.get_command(app).commands["qa-gen"].params}
    for name, (lo, hi) in BOUNDS.items():
        assert (params[name].min, params[name].max) == (lo, hi), name
        assert params[name].default == OPTION_DEFAULTS[name]
        with pytest.raises(UsageError, match="--" + name.replace("_", "-")):
            QAGenerator(**{name: lo - 1})
    with pytest.raises(UsageError, match="--top-p"):
        QAGenerator(top_p=float("nan"))
    assert list(QAGenerator().finish()) == ["0 pairs kept of 0 answer samples; removed: none"]


def test_answers_are_widened_to_whole_words():
    """A sampled answer that cuts a word (查尔斯·斯 of 查尔斯·斯图尔特) becomes the whole word; one
    that cannot be widened (no answer marks, or too long) is dropped."""
    from nlptool.qagen.generation import _Chunk, widen_to_words

    text = "查尔斯·斯图尔特是演员"
    words = ["查尔斯·斯图尔特", "是", "演员"]
    bounds = [0]
    for w in words:
        bounds.append(bounds[-1] + len(w))
    c = _Chunk(passage=0, start=0, text=text, ids=list(range(100, 100 + len(text))),
               offsets=[(i, i + 1) for i in range(len(text))], samples=1, bounds=bounds)
    assert widen_to_words(c, 0, 5, 32, True) == (0, 8, list(range(100, 108)))
    assert widen_to_words(c, 9, 11, 32, True) == (9, 11, None)  # 演员: already whole
    assert widen_to_words(c, 0, 5, 32, False) is None  # cannot re-decode without the answer marks
    assert widen_to_words(c, 0, 5, 4, True) is None  # the whole word is longer than the answer limit
    c.bounds = None
    assert widen_to_words(c, 0, 5, 32, True) == (0, 5, None)  # no segmenter: as sampled
